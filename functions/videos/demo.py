"""The demo video catalogue loaded by ``seed-demo`` and ``serve`` (idempotent: keyed by slug)."""

from __future__ import annotations

from functions.videos.service import ensure_video
from shared.db import Conn

# Realistic lengths (30 s to 10 min) and rewards of a quarter cent to five cents.
DEMO_VIDEOS: tuple[dict[str, object], ...] = (
    {"slug": "demo-welcome", "title": "Welcome to EarnPay", "duration_seconds": 30, "reward_micros": 2_500},
    {"slug": "demo-how-payouts-work", "title": "How payouts work", "duration_seconds": 75, "reward_micros": 5_000},
    {"slug": "demo-budget-basics", "title": "Budgeting basics in five minutes", "duration_seconds": 300, "reward_micros": 20_000},
    {"slug": "demo-coffee-review", "title": "Cold brew vs espresso: a taste test", "duration_seconds": 180, "reward_micros": 12_500},
    {"slug": "demo-phone-tips", "title": "Ten battery tips for your phone", "duration_seconds": 240, "reward_micros": 15_000},
    {"slug": "demo-travel-packing", "title": "Packing a carry-on for two weeks", "duration_seconds": 420, "reward_micros": 30_000},
    {
        "slug": "demo-home-workout",
        "title": "A ten-minute home workout",
        "duration_seconds": 600,
        "reward_micros": 50_000,
        "required_watch_pct": 80,
    },
    {"slug": "demo-cooking-pasta", "title": "Fresh pasta from scratch", "duration_seconds": 510, "reward_micros": 40_000},
)


def seed_demo(conn: Conn) -> int:
    """Loads the demo catalogue (existing slugs are left as they are) in the caller's transaction;
    returns how many demo videos exist."""
    for video in DEMO_VIDEOS:
        fields = dict(video)
        slug = str(fields.pop("slug"))
        ensure_video(conn, slug=slug, description="An EarnPay demo video.", **fields)
    return len(DEMO_VIDEOS)
