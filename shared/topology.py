"""The event topology (infra/topology.yaml): topics, push subscriptions and scheduler jobs.

One file, two readers: Terraform (infra/pubsub.tf and infra/scheduler.tf load it with
``yamldecode``) and the local platform (``python main.py serve``, shared/localplatform.py), which
creates the same topics and push subscriptions on the Pub/Sub emulator and publishes the same jobs
on the same schedules. The names derived here (``<topic>-push``, ``<topic>-dead-letter``,
``<topic>-dead-letter-hold``) are the ones pubsub.tf gives the production resources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import ROOT

DEFAULT_PATH = ROOT / "infra" / "topology.yaml"


@dataclass(frozen=True)
class Topic:
    """A topic and, when it has a consumer, the push subscription that delivers it."""

    name: str
    consumer: str | None
    ack_deadline: int
    max_delivery_attempts: int

    @property
    def subscription(self) -> str:
        return f"{self.name}-push"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.name}-dead-letter"

    @property
    def dead_letter_hold(self) -> str:
        return f"{self.name}-dead-letter-hold"


@dataclass(frozen=True)
class Job:
    """A Cloud Scheduler job: publishes ``body`` (JSON) to ``topic`` on a unix-cron ``schedule`` (UTC)."""

    name: str
    description: str
    schedule: str
    topic: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        """The message data, as Terraform's ``jsonencode(each.value.body)`` writes it (compact JSON)."""
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True).encode()

    @property
    def attributes(self) -> dict[str, str]:
        return {"source": "cloud-scheduler", "job": self.name}


@dataclass(frozen=True)
class Topology:
    topics: tuple[Topic, ...]
    jobs: tuple[Job, ...]
    minimum_backoff: str
    maximum_backoff: str

    def topic(self, name: str) -> Topic:
        for t in self.topics:
            if t.name == name:
                return t
        raise KeyError(name)

    def job(self, name: str) -> Job:
        for j in self.jobs:
            if j.name == name:
                return j
        raise KeyError(f"no scheduler job named {name!r} (jobs: {', '.join(j.name for j in self.jobs)})")


def load(path: Path = DEFAULT_PATH) -> Topology:
    """Reads and checks the topology file (a ValueError names what is wrong)."""
    import yaml

    with Path(path).open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    try:
        topics = tuple(
            Topic(
                name=str(name),
                consumer=None if cfg.get("consumer") is None else str(cfg["consumer"]),
                ack_deadline=int(cfg["ack_deadline"]),
                max_delivery_attempts=int(cfg["max_delivery_attempts"]),
            )
            for name, cfg in doc["topics"].items()
        )
        jobs = tuple(
            Job(
                name=str(name),
                description=str(cfg.get("description", "")),
                schedule=str(cfg["schedule"]),
                topic=str(cfg["topic"]),
                body=dict(cfg.get("body") or {}),
            )
            for name, cfg in doc["scheduler_jobs"].items()
        )
        retry = doc["retry_policy"]
        topology = Topology(topics, jobs, str(retry["minimum_backoff"]), str(retry["maximum_backoff"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid topology file ({exc!r})") from exc
    known = {t.name for t in topics}
    for job in jobs:
        if job.topic not in known:
            raise ValueError(f"{path}: job {job.name} publishes to unknown topic {job.topic}")
    return topology
