"""Reading what people type for rotations: durations, local times, zone names.

Each parser returns the value or raises ``RotationError`` whose text is one line saying
what was wrong and how to write it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .shifts import MIN_SHIFT, local_instant

__all__ = [
    "MAX_SHIFT",
    "RotationError",
    "default_start",
    "format_shift",
    "parse_duration",
    "parse_local",
    "parse_shift",
    "parse_zone",
]

#: The longest shift or override accepted (a year: anything longer is a typo).
MAX_SHIFT = timedelta(days=366)

_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
          "m": timedelta(minutes=1)}  # fmt: skip
_PART = re.compile(r"(\d{1,5})([wdhm])")
_LOCAL = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})")
_MAX_SHOWN = 40


class RotationError(ValueError):
    """A rotation, override or one of their arguments was refused; ``str(e)`` is one line."""


def _q(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "\u2026")


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """``1w``, ``1d``, ``12h``, ``90m``, ``1d12h``: weeks, days, hours, minutes."""
    raw = (text or "").strip().lower()
    pos, total = 0, timedelta()
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += int(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if not raw or pos != len(raw):
        raise RotationError(
            f"{what} {_q(text)} is not a duration: write e.g. 1w, 1d, 12h, 90m or 1d12h"
        )
    if total <= timedelta() or total > MAX_SHIFT:
        raise RotationError(f"{what} {_q(text)} must be more than 0 and at most 366 days")
    return total


def parse_shift(text: str) -> timedelta:
    """A rotation's shift length: a duration of at least 1 hour."""
    shift = parse_duration(text, "shift")
    if shift < MIN_SHIFT:
        raise RotationError(f"shift {_q(text)} is too short: a shift is at least 1h")
    return shift


def format_shift(shift: timedelta) -> str:
    """The shortest spelling ``parse_duration`` reads back (``1w``, ``1d12h``, ``90m``)."""
    minutes = int(shift.total_seconds() // 60)
    parts = []
    for unit, size in (("w", 7 * 1440), ("d", 1440), ("h", 60), ("m", 1)):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0m"


def parse_local(text: str, what: str = "start") -> datetime:
    """``YYYY-MM-DDTHH:MM`` (a naive local wall time; a blank may replace the ``T``)."""
    raw = (text or "").strip()
    match = _LOCAL.fullmatch(raw)
    if match is None:
        raise RotationError(
            f"{what} {_q(raw)} does not parse: write YYYY-MM-DDTHH:MM, e.g. 2026-12-07T09:00"
        )
    try:
        year, month, day, hour, minute = (int(g) for g in match.groups())
        return datetime(year, month, day, hour, minute)
    except ValueError as exc:
        raise RotationError(f"{what} {_q(raw)} is not a real date and time ({exc})") from None


def parse_zone(text: str) -> ZoneInfo:
    """An IANA zone name (``Europe/Berlin``, ``UTC``)."""
    raw = (text or "").strip()
    if not raw or len(raw) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", raw) or ".." in raw:
        raise RotationError(f"time zone {_q(raw)} is not an IANA zone name such as Europe/Berlin")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RotationError(
            f"unknown time zone {_q(raw)}: use an IANA name such as Europe/Berlin or UTC"
        ) from None


def default_start(now: float, zone: ZoneInfo) -> datetime:
    """The next Monday 09:00 in ``zone`` after ``now`` (naive local wall time)."""
    today = datetime.fromtimestamp(now, zone).replace(tzinfo=None)
    day = today.replace(hour=9, minute=0, second=0, microsecond=0)
    day += timedelta(days=(7 - day.weekday()) % 7)
    if local_instant(day, zone) <= now:
        day += timedelta(days=7)
    return day
