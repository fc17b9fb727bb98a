"""The bot's health: a snapshot, its one-glance text, readiness, and the room alerts.

Everything here is plain logic with the time passed in: the plugin gathers a
:class:`HealthSnapshot` (carrier check, token, polls, store...) and these functions judge
it. Anything wrong leads the text, so that the on-call engineer reads it first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "CarrierCheck",
    "HealthSnapshot",
    "PollAlert",
    "PollAlerts",
    "PollTracker",
    "RegistrationHealth",
    "StoreHealth",
    "TokenState",
    "count_sends",
    "format_duration",
    "format_health",
    "readiness",
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


def format_duration(seconds: float) -> str:
    """``23 ms``, ``45 s``, ``14 min``, ``2 h 5 min``, ``3 d 4 h``."""
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


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value, unit = float(size), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):  # noqa: B007 - unit is used after the loop
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def _error(text: str | None) -> str:
    one = _BLANKS.sub(" ", str(text or "unknown error")).strip()
    return one if len(one) <= MAX_ERROR else one[: MAX_ERROR - 1] + "\u2026"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _name(reg: RegistrationHealth) -> str:
    return f"registration {reg.registration}" + (f" ({reg.room})" if reg.room else "")


def _carrier(check: CarrierCheck | None, problems: list[str], fine: list[str]) -> None:
    if check is None:
        fine.append("carrier not checked")
    elif not check.reachable:
        problems.append(f"carrier unreachable: {_error(check.error)}")
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
        problems.append(f"no valid token: {_error(token.error)}")
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
        detail = _plural(reg.consecutive_failures, "failure")
        if reg.backoff > 0:
            detail += f", retrying every {format_duration(reg.backoff)}"
        problems.append(f"{_name(reg)}: {what} ({detail}; last error: {_error(reg.last_error)})")
    elif stuck_after is not None and reg.stuck_for(now) > stuck_after:
        problems.append(f"{_name(reg)}: no poll for {age} (is the poller stuck?)")
    elif never:
        fine.append(f"{_name(reg)} not polled yet")
    else:
        fine.append(f"{_name(reg)} polled {age} ago")


def _waiting(snapshot: HealthSnapshot, now: float, problems: list[str], fine: list[str]) -> None:
    count = snapshot.waiting_posts
    text = f"{_plural(count, 'message')} waiting to be posted"
    oldest = snapshot.oldest_waiting
    if count > 0 and oldest is not None and now - oldest > WAITING_TOO_LONG:
        problems.append(f"{text}, oldest {format_duration(now - oldest)}")
    else:
        fine.append(text)


def _sends(sends: Mapping[str, int], problems: list[str], fine: list[str]) -> None:
    for outcome in TROUBLE_OUTCOMES:
        count = sends.get(outcome, 0)
        if count > 0:
            problems.append(f"{_plural(count, 'send')} {outcome} in the last hour (see !sms log)")
    shown = [f"{n} {o}" for o, n in sends.items() if n > 0 and o not in TROUBLE_OUTCOMES]
    fine.append("sends last hour: " + (", ".join(shown) if shown else "none"))


def _store(store: StoreHealth, problems: list[str], fine: list[str]) -> None:
    if store.usable:
        fine.append(f"store {store.kind} {_size(store.size_bytes)}")
    else:
        problems.append(f"store {store.kind} unusable: {_error(store.error)}")


def format_health(snapshot: HealthSnapshot, now: float, stuck_after: float | None = None) -> str:
    """The ``!sms health`` answer: a ``PROBLEMS:`` line when anything is wrong, then ``OK:``."""
    problems: list[str] = []
    fine: list[str] = []
    _carrier(snapshot.carrier, problems, fine)
    _token(snapshot.token, problems, fine)
    for reg in snapshot.registrations:
        _registration(reg, now, stuck_after, problems, fine)
    if not snapshot.registrations:
        fine.append("no inbox routes")
    _waiting(snapshot, now, problems, fine)
    fine.append(_plural(snapshot.follow_ups_open, "follow-up") + " open")
    if snapshot.escalations_open is not None:
        fine.append(_plural(snapshot.escalations_open, "escalation") + " open")
    _sends(snapshot.sends_last_hour, problems, fine)
    _store(snapshot.store, problems, fine)
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
        reasons.append(f"store {snapshot.store.kind} unusable: {_error(snapshot.store.error)}")
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
            outcome = str(entry.get("outcome", "")).split(":", 1)[0].strip().lower() or "unknown"
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# -------------------------------------------------------------------- polls


class PollTracker:
    """Per registration: last success, failures in a row, backoff, last error.

    Not thread-safe by itself: the poller (one thread) writes, readers take
    :meth:`snapshot`, whose tuples are immutable.
    """

    def __init__(self) -> None:
        self._regs: dict[str, RegistrationHealth] = {}
        self._failing_since: dict[str, float] = {}

    def watch(self, registrations: Iterable[str], now: float) -> None:
        """Track exactly these registrations from ``now`` on (keeping what is known)."""
        wanted = list(dict.fromkeys(registrations))
        self._regs = {r: self._regs.get(r) or RegistrationHealth(r, now) for r in wanted}
        self._failing_since = {r: t for r, t in self._failing_since.items() if r in self._regs}

    def succeeded(self, registration: str, now: float) -> None:
        """A poll of ``registration`` worked at ``now``."""
        self._regs[registration] = RegistrationHealth(
            registration, self._get(registration, now).watched_since, last_success=now
        )
        self._failing_since.pop(registration, None)

    def failed(self, registration: str, now: float, error: str, backoff: float = 0.0) -> None:
        """A poll of ``registration`` failed at ``now``; the poller now waits ``backoff`` s."""
        old = self._get(registration, now)
        self._regs[registration] = RegistrationHealth(
            registration,
            old.watched_since,
            old.last_success,
            old.consecutive_failures + 1,
            backoff,
            _error(error),
        )
        self._failing_since.setdefault(registration, now)

    def failing_since(self) -> dict[str, float | None]:
        """Per registration: when its current run of failures began (None when fine)."""
        return {r: self._failing_since.get(r) for r in self._regs}

    def snapshot(self, rooms: Mapping[str, str] | None = None) -> tuple[RegistrationHealth, ...]:
        """Every registration's health, by name; ``rooms`` adds each one's room."""
        rooms = rooms or {}
        return tuple(replace(reg, room=rooms.get(name)) for name, reg in sorted(self._regs.items()))

    def _get(self, registration: str, now: float) -> RegistrationHealth:
        return self._regs.get(registration) or RegistrationHealth(registration, now)


@dataclass(frozen=True)
class PollAlert:
    """One line to post in the registration's room: ``kind`` is "down" or "recovered"."""

    registration: str
    kind: str
    text: str


class PollAlerts:
    """Decides when to say in the room that replies stopped, and when they came back.

    Per run of failures: one "down" line once it has lasted ``alert_after`` seconds,
    and one "recovered" line when it ends, only if "down" was said.
    """

    def __init__(self, alert_after: float = 600.0) -> None:
        if not alert_after >= 0:
            raise ValueError(f"alert_after must be a number >= 0, not {alert_after!r}")
        self.alert_after = alert_after
        self._alerted: dict[str, float] = {}

    def check(
        self,
        registration: str,
        failing_since: float | None,
        now: float,
        error: str | None = None,
    ) -> PollAlert | None:
        """The line to post now for ``registration``, if any (each at most once per run)."""
        if failing_since is None:
            since = self._alerted.pop(registration, None)
            if since is None:
                return None
            return PollAlert(
                registration,
                "recovered",
                f"SMS replies to registration {registration} are coming in again "
                f"(polling the carrier failed for {format_duration(now - since)}).",
            )
        if registration in self._alerted or now - failing_since < self.alert_after:
            return None
        self._alerted[registration] = failing_since
        reason = f" Last error: {_error(error)}." if error else ""
        return PollAlert(
            registration,
            "down",
            f"SMS replies to registration {registration} are not coming in: polling the "
            f"carrier has failed for {format_duration(now - failing_since)}.{reason} The bot "
            "keeps trying and will say so here when replies come in again.",
        )

    def check_all(
        self,
        failing_since: Mapping[str, float | None],
        now: float,
        errors: Mapping[str, str] | None = None,
    ) -> list[PollAlert]:
        """:meth:`check` for every registration; forgets those no longer listed."""
        for gone in set(self._alerted) - set(failing_since):
            del self._alerted[gone]
        alerts = [
            self.check(reg, since, now, (errors or {}).get(reg))
            for reg, since in sorted(failing_since.items())
        ]
        return [alert for alert in alerts if alert is not None]

    def alerted(self) -> frozenset[str]:
        """Registrations whose "down" line was said and not yet followed by "recovered"."""
        return frozenset(self._alerted)
