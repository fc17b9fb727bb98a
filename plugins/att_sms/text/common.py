"""Small text helpers every part shares: plurals, durations, UTC times (plain, no I/O)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

#: ``2026-04-19``
UTC_DAY = "%Y-%m-%d"
#: ``2026-04-19 10:00 UTC``
UTC_MINUTE = "%Y-%m-%d %H:%M UTC"
#: ``10:00 UTC``
UTC_CLOCK = "%H:%M UTC"
#: ``10:00:07 UTC``
UTC_CLOCK_SECONDS = "%H:%M:%S UTC"


def plural(count: int, word: str) -> str:
    """``1 message``, ``2 messages`` (an ``s`` appended)."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def utc_time(when: float, layout: str = UTC_MINUTE) -> str:
    """The Unix time ``when`` in UTC, laid out as ``layout`` (one of the ``UTC_*``)."""
    return datetime.fromtimestamp(when, UTC).strftime(layout)


def format_duration(seconds: float) -> str:
    """A rough duration, its largest unit or two: ``23 ms``, ``45 s``, ``14 min``,
    ``2 h 5 min``, ``3 d 4 h`` (health and room alerts)."""
    if math.isnan(seconds) or seconds < 0:
        return "?"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_elapsed(seconds: float) -> str:
    """Whole seconds down to the second under an hour: ``45 s``, ``3 min 12 s``, ``5 min``,
    ``1 h 5 min`` (pages and alerts: waits, ages)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
