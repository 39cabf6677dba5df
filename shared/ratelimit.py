"""Fixed-window rate limits whose state lives in PostgreSQL, so they hold across function instances.

One statement per check: an upsert on an UNLOGGED table (losing counters on a crash is harmless).
"""

from __future__ import annotations

from shared.db import Conn, Query
from shared.errors import RateLimited

HIT = Query(
    "rate_limit_hit",
    """
    INSERT INTO rate_limits AS r (bucket, window_start, hits)
    VALUES (:bucket, to_timestamp(floor(extract(epoch FROM now()) / :window) * :window), 1)
    ON CONFLICT (bucket) DO UPDATE
       SET hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
           window_start = EXCLUDED.window_start
    RETURNING hits, ceil(extract(epoch FROM r.window_start + make_interval(secs => :window) - now()))::int AS retry_after
    """,
)


def hit(conn: Conn, bucket: str, *, limit: int, window_s: int, message: str = "too many requests") -> None:
    """Counts one request against ``bucket``; raises RateLimited (429 + Retry-After) past ``limit``."""
    row = conn.one(HIT, bucket=bucket, window=window_s)
    assert row is not None
    if row["hits"] > limit:
        raise RateLimited(message, retry_after=max(1, int(row["retry_after"] or 1)))
