"""Event entry of the ``maintenance`` area (CloudEvents from Pub/Sub topic ``maintenance-tasks``).

A message is ``{"task": NAME, ...options}`` (Cloud Scheduler sends them; see docs/maintenance.md).
An unknown task or bad options is dead-lettered; a task that fails is raised, so Pub/Sub retries it.
"""

from __future__ import annotations

from typing import Any

from functions.maintenance.service import run_task
from shared.events import Message, handle

TOPIC = "maintenance-tasks"


def _apply(message: Message) -> None:
    options = dict(message.data)
    run_task(options.pop("task", None), options)


def run_maintenance(event: Any) -> None:
    handle("run_maintenance", TOPIC, event, _apply)
