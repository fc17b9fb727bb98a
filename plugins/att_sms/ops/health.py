"""The bot's health: a snapshot, its one-glance text and readiness.

Everything here is plain logic with the time passed in: the plugin gathers a
:class:`HealthSnapshot` (carrier check, token, polls, store...) and these functions judge
it. Anything wrong leads the text, so that the on-call engineer reads it first. The room
alerts about polling are in :mod:`att_sms.ops.poll_alerts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from att_sms.text.common import format_duration, plural

__all__ = [
    "CarrierCheck",
    "HealthSnapshot",
    "RegistrationHealth",
    "StoreHealth",
    "TokenState",
    "count_sends",
    "format_health",
    "readiness",
    "short_error",
    "stuck_bound",
]

#: A carrier round trip above this many seconds is reported as a problem.
SLOW_CARRIER = 2.0
#: Messages waiting to be posted for longer than this many seconds are a problem.
WAITING_TOO_LONG = 120.0
#: Send outcomes that need a person to look (the rest are shown as information).
TROUBLE_OUTCOMES = ("uncertain", "partial")
#: Longest error text shown for one item.
MAX_ERROR = 120
SENDS_WINDOW = 3600.0
#: The audit outcomes of sends; other entries (contact, group, rotation changes) are not sends.
SEND_OUTCOMES = frozenset({"sent", "partial", "uncertain", "failed", "refused"})

_BLANKS = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class CarrierCheck:
    """The result of one round trip to the carrier (``error`` when it failed)."""

    reachable: bool
    round_trip: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class TokenState:
    """The cached OAuth token: ``valid`` None when none was fetched yet."""

    valid: bool | None = None
    seconds_left: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class RegistrationHealth:
    """One inbound registration's polling, as the poller last saw it."""

    registration: str
    watched_since: float
    last_success: float | None = None
    consecutive_failures: int = 0
    backoff: float = 0.0
    last_error: str | None = None
    room: str | None = None

    def stuck_for(self, now: float) -> float:
        """Seconds without a successful poll (since watching began, if none ever was)."""
        since = self.last_success if self.last_success is not None else self.watched_since
        return max(0.0, now - since)


@dataclass(frozen=True)
class StoreHealth:
    """The plugin's store: its kind (``sqlite``, ``postgresql``...) and size."""

    kind: str
    size_bytes: int | None = None
    usable: bool = True
    error: str | None = None


@dataclass(frozen=True)
class HealthSnapshot:
    """Everything ``!sms health`` shows; ``carrier`` None when it was not checked."""

    store: StoreHealth
    carrier: CarrierCheck | None = None
    token: TokenState = field(default_factory=TokenState)
    registrations: tuple[RegistrationHealth, ...] = ()
    waiting_posts: int = 0
    oldest_waiting: float | None = None
    follow_ups_open: int = 0
    escalations_open: int | None = None
    sends_last_hour: Mapping[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------- text


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value, unit = float(size), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):  # noqa: B007 - unit is used after the loop
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def short_error(text: str | None) -> str:
    """``text`` on one line, cut to :data:`MAX_ERROR` characters ("unknown error" if empty)."""
    one = _BLANKS.sub(" ", str(text or "unknown error")).strip()
    return one if len(one) <= MAX_ERROR else one[: MAX_ERROR - 1] + "\u2026"


def _name(reg: RegistrationHealth) -> str:
    return f"registration {reg.registration}" + (f" ({reg.room})" if reg.room else "")


def _carrier(
    check: CarrierCheck | None, blocking: list[str], problems: list[str], fine: list[str]
) -> None:
    if check is None:
        fine.append("carrier not checked")
    elif not check.reachable:
        blocking.append(f"carrier unreachable: {short_error(check.error)}")
    elif check.round_trip is not None and check.round_trip > SLOW_CARRIER:
        problems.append(f"carrier slow ({format_duration(check.round_trip)} round trip)")
    elif check.round_trip is not None:
        fine.append(f"carrier reachable ({format_duration(check.round_trip)})")
    else:
        fine.append("carrier reachable")


def _token(token: TokenState, problems: list[str], fine: list[str]) -> None:
    if token.valid is None:
        fine.append("no token fetched yet")
    elif not token.valid:
        problems.append(f"no valid token: {short_error(token.error)}")
    elif token.seconds_left is None:
        fine.append("token valid")
    elif token.seconds_left > 0:
        fine.append(f"token valid {format_duration(token.seconds_left)}")
    else:
        fine.append("token expired (a new one is fetched on the next call)")


def _registration(
    reg: RegistrationHealth,
    now: float,
    stuck_after: float | None,
    problems: list[str],
    fine: list[str],
) -> None:
    age = format_duration(reg.stuck_for(now))
    never = reg.last_success is None
    if reg.consecutive_failures > 0:
        what = f"no successful poll for {age}"
        if never:
            what = f"no successful poll since watching began {age} ago"
        detail = plural(reg.consecutive_failures, "failure")
        if reg.backoff > 0:
            detail += f", retrying every {format_duration(reg.backoff)}"
        error = short_error(reg.last_error)
        problems.append(f"{_name(reg)}: {what} ({detail}; last error: {error})")
    elif stuck_after is not None and reg.stuck_for(now) > stuck_after:
        problems.append(f"{_name(reg)}: no poll for {age} (is the poller stuck?)")
    elif never:
        fine.append(f"{_name(reg)} not polled yet")
    else:
        fine.append(f"{_name(reg)} polled {age} ago")


def _waiting(snapshot: HealthSnapshot, now: float, problems: list[str], fine: list[str]) -> None:
    count = snapshot.waiting_posts
    text = f"{plural(count, 'message')} waiting to be posted"
    oldest = snapshot.oldest_waiting
    if count > 0 and oldest is not None and now - oldest > WAITING_TOO_LONG:
        problems.append(f"{text}, oldest {format_duration(now - oldest)}")
    else:
        fine.append(text)


def _sends(sends: Mapping[str, int], problems: list[str], fine: list[str]) -> None:
    for outcome in TROUBLE_OUTCOMES:
        count = sends.get(outcome, 0)
        if count > 0:
            problems.append(f"{plural(count, 'send')} {outcome} in the last hour (see !sms log)")
    shown = [f"{n} {o}" for o, n in sends.items() if n > 0 and o not in TROUBLE_OUTCOMES]
    fine.append("sends last hour: " + (", ".join(shown) if shown else "none"))


def _store(store: StoreHealth, problems: list[str], fine: list[str]) -> None:
    if store.usable:
        fine.append(f"store {store.kind} {_size(store.size_bytes)}")
    else:
        problems.append(f"store {store.kind} unusable: {short_error(store.error)}")


def format_health(
    snapshot: HealthSnapshot,
    now: float,
    stuck_after: float | None = None,
    *,
    more_problems: Sequence[str] = (),
    note: str = "",
) -> str:
    """The ``!sms health`` answer: a ``PROBLEMS:`` line when anything is wrong, then ``OK:``.

    ``more_problems`` (the caller's own findings) follow the snapshot's problems; ``note``
    ends the ``OK:`` line.
    """
    # Problems are listed by what blocks sending first: credentials, then whether the
    # carrier answers, then the store every send is recorded in; the rest after.
    credentials: list[str] = []
    blocking: list[str] = []
    problems: list[str] = []
    fine: list[str] = []
    _carrier(snapshot.carrier, blocking, problems, fine)
    _token(snapshot.token, credentials, fine)
    store_fine: list[str] = []
    _store(snapshot.store, blocking, store_fine)
    for reg in snapshot.registrations:
        _registration(reg, now, stuck_after, problems, fine)
    if not snapshot.registrations:
        fine.append("no inbox routes")
    _waiting(snapshot, now, problems, fine)
    fine.append(plural(snapshot.follow_ups_open, "follow-up") + " open")
    if snapshot.escalations_open is not None:
        fine.append(plural(snapshot.escalations_open, "escalation") + " open")
    _sends(snapshot.sends_last_hour, problems, fine)
    fine.extend(store_fine)  # the store reads last among the good news
    if note:
        fine.append(note)
    problems = credentials + blocking + problems + list(more_problems)
    lines = [f"PROBLEMS: {'; '.join(problems)}"] if problems else []
    lines.append(f"OK: {', '.join(fine)}")
    return "\n".join(lines)


# ----------------------------------------------------------------- readiness


def stuck_bound(poll_interval: float, max_backoff: float) -> float:
    """How long a registration may go without a successful poll before the bot is unready.

    The longest the poller waits between two tries, plus three normal intervals: a
    registration that missed that many chances is stuck, not merely unlucky.
    """
    return max(poll_interval, max_backoff) + 3 * poll_interval


def readiness(snapshot: HealthSnapshot, now: float, stuck_after: float) -> tuple[bool, str]:
    """``(True, "ready")``, or ``(False, why)`` when the store is unusable or polling is stuck."""
    reasons: list[str] = []
    if not snapshot.store.usable:
        store = snapshot.store
        reasons.append(f"store {store.kind} unusable: {short_error(store.error)}")
    for reg in snapshot.registrations:
        stuck = reg.stuck_for(now)
        if stuck > stuck_after:
            reasons.append(
                f"registration {reg.registration}: no successful poll for "
                f"{format_duration(stuck)} (limit {format_duration(stuck_after)})"
            )
    return (False, "; ".join(reasons)) if reasons else (True, "ready")


def count_sends(
    entries: Iterable[Mapping[str, Any]], now: float, window: float = SENDS_WINDOW
) -> dict[str, int]:
    """Sends per outcome in the last ``window`` seconds, from audit log entries.

    An entry's outcome is its first word (``"uncertain: carrier timed out"`` counts as
    ``uncertain``); entries without a readable time are skipped.
    """
    counts: dict[str, int] = {}
    for entry in entries:
        try:
            when = float(entry["when"])
        except (KeyError, TypeError, ValueError):
            continue
        if now - window <= when <= now:
            outcome = str(entry.get("outcome", "")).split(":", 1)[0].strip().lower()
            if outcome in SEND_OUTCOMES:
                counts[outcome] = counts.get(outcome, 0) + 1
    return counts
