"""Timestamps as the API writes them (metav1.Time and metav1.MicroTime): RFC 3339, UTC."""

from __future__ import annotations

import datetime
import time


def now_rfc3339(*, micro: bool = False, at: float | None = None) -> str:
    """An RFC 3339 UTC timestamp for the API server: whole seconds (metav1.Time), or with microseconds."""
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp from the API server, or None."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
