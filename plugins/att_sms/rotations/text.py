"""Times and on-call answers as people read them, in a rotation's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["format_local"]


def format_local(instant: float, zone: ZoneInfo, now: float | None = None) -> str:
    """``Mon 7 Dec 09:00 CET`` (``Mon 7 Dec 2026 09:00 CET`` in another year than ``now``'s)."""
    when = datetime.fromtimestamp(instant, zone)
    year = ""
    if now is not None and datetime.fromtimestamp(now, zone).year != when.year:
        year = f" {when.year}"
    return f"{when:%a} {when.day} {when:%b}{year} {when:%H:%M} {when.tzname()}"
