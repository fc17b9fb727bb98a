"""Sending policy: opt-out keywords and senders' quotas, as pure functions.

* Opt-out: ``opt_keyword`` tells whether an inbound text is exactly one STOP-like
  (``OPT_OUT_WORDS``) or START-like (``OPT_IN_WORDS``) word; the store records it.
* Quotas: ``check_quota`` decides from a plain state dict the store builds from its
  send history (``store.quotas._quota_state``)::

      {"users": {user: [send_epoch, ...]}, "days": {"YYYY-MM-DD": parts}}

  -- the user's sends in the last hour (the rate limit counts sends) and the parts
  sent per UTC day by everyone (the daily limit counts parts). The caller passes the
  time (``now``, epoch seconds) explicitly.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from att_sms.text.common import UTC_DAY, plural, utc_time

__all__ = [
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "RATE_WINDOW",
    "QuotaError",
    "check_quota",
    "opt_keyword",
]

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})

#: The rate limit's sliding window, in seconds.
RATE_WINDOW = 3600.0


# -- opt-out -----------------------------------------------------------------


def opt_keyword(text: object) -> str | None:
    """``"out"`` or ``"in"`` if ``text`` is exactly one opt-out / opt-in word, else ``None``.

    Case and surrounding blanks or newlines are ignored; anything else in the text
    (other words, punctuation, non-ASCII look-alikes) means it is not a keyword.
    """
    if not isinstance(text, str):
        return None
    word = text.strip()
    if not word.isascii():
        return None
    word = word.upper()
    if word in OPT_OUT_WORDS:
        return "out"
    if word in OPT_IN_WORDS:
        return "in"
    return None


# -- quotas ------------------------------------------------------------------


def _ceil_minute(when: float) -> datetime:
    return datetime.fromtimestamp(math.ceil(when / 60) * 60, UTC)


def _clock(resets_at: float, now: float) -> tuple[str, int]:
    """``("10:42 UTC", 17)``: the minute shown is never before ``resets_at``."""
    minutes = max(1, math.ceil((resets_at - now) / 60))
    return f"{_ceil_minute(resets_at):%H:%M} UTC", minutes


def _when(resets_at: float, now: float) -> str:
    """``"10:42 UTC (in 17 min)"``."""
    clock, minutes = _clock(resets_at, now)
    return f"{clock} (in {minutes} min)"


class QuotaError(ValueError):
    """A send was refused by a quota.

    ``resets_at`` is when (epoch seconds) that limit stops refusing this send;
    ``limit`` is ``"rate"`` or ``"daily"``. ``str(e)`` is one line.
    """

    def __init__(self, message: str, *, resets_at: float, limit: str) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.limit = limit


def _day(now: float) -> str:
    return utc_time(now, UTC_DAY)


def _next_midnight(now: float) -> float:
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today + timedelta(days=1)).timestamp()


def _rate_error(state: dict[str, Any], user: str, now: float, rate_limit: int) -> QuotaError | None:
    if rate_limit <= 0:
        return None
    sends = (state.get("users") or {}).get(user) or []
    recent = sorted(t for t in sends if t > now - RATE_WINDOW)
    if len(recent) < rate_limit:
        return None
    resets_at = recent[len(recent) - rate_limit] + RATE_WINDOW
    return QuotaError(
        f"rate limit reached: {user} sent {plural(len(recent), 'message')} in the last hour"
        f" (limit {rate_limit} an hour); resets at {_when(resets_at, now)}",
        resets_at=resets_at,
        limit="rate",
    )


def _daily_error(
    state: dict[str, Any], parts: int, now: float, daily_limit: int
) -> QuotaError | None:
    if daily_limit <= 0:
        return None
    used = int((state.get("days") or {}).get(_day(now), 0))
    if used + parts <= daily_limit:
        return None
    resets_at = _next_midnight(now)
    if parts > daily_limit:
        clock, minutes = _clock(resets_at, now)
        message = (
            f"daily limit of {plural(daily_limit, 'part')}: this message needs "
            f"{plural(parts, 'part')}, more than a whole day allows (even after the "
            f"reset at {clock}, in {minutes} min)"
        )
    else:
        message = (
            f"daily limit reached: {used} of {plural(daily_limit, 'part')} sent today, "
            f"{plural(parts, 'more part')} would exceed it; resets at {_when(resets_at, now)}"
        )
    return QuotaError(message, resets_at=resets_at, limit="daily")


def _check_int(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, not {value!r}")
    return value


def check_quota(
    state: dict[str, Any],
    user: str,
    parts: int,
    now: float,
    rate_limit: int,
    daily_limit: int,
) -> None:
    """Raise ``QuotaError`` if ``user`` may not send a message of ``parts`` parts now.

    ``rate_limit``: sends per user in the last hour (0 = no limit); it resets when
    the oldest of those sends leaves the window. ``daily_limit``: parts per UTC day
    for everyone (0 = no limit); it resets at the next UTC midnight. If both refuse,
    the error is the one that resets later. Changes nothing.
    """
    _check_int(parts, "parts", 1)
    _check_int(rate_limit, "rate_limit", 0)
    _check_int(daily_limit, "daily_limit", 0)
    errors = [
        e
        for e in (
            _rate_error(state, user, now, rate_limit),
            _daily_error(state, parts, now, daily_limit),
        )
        if e is not None
    ]
    if errors:
        raise max(errors, key=lambda e: e.resets_at)
