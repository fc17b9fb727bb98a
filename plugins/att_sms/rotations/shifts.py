"""Who is on call: shift arithmetic on a zone's wall clock, and overrides.

A rotation hands off at the local wall times ``start + k * shift`` (k = 1, 2, ...), computed
on naive wall-clock datetimes and only then turned into instants with the zone, so a 09:00
handoff stays at 09:00 local across daylight-saving changes and a ``12h`` shift is 09:00 and
21:00 local (11 or 13 real hours on a change day). Member ``k mod n`` holds shift ``k``;
shift 0 also covers every time before ``start`` (the first member is on call until the
first handoff), so a new rotation always has someone on call.

Local times the zone does not have or has twice (``local_instant``):

* **Non-existent** (spring forward, e.g. 02:30 in Europe/Berlin on the last Sunday of
  March, or 02:15 in Australia/Lord_Howe whose clocks move by 30 minutes): the handoff
  happens at the transition itself, the first instant that exists after that wall time
  (03:00 CEST). A handoff is never moved past a later one: handoff instants never go
  backwards. The one case where two handoffs share an instant is a shift as short as the
  gap (a 1 h shift whose handoff is on the missing hour): that member's shift, the hour
  that does not exist, is empty and the next member takes over at the transition (one
  handoff, not two).
* **Ambiguous** (fall back, e.g. 02:30 in Europe/Berlin on the last Sunday of October):
  the first occurrence (``fold=0``, still summer time). When the clock shows that time
  again an hour later nothing happens: a handoff is never doubled.

Overrides put a member on call for ``[start, end)``; the newest (largest ``id``) covering
an instant wins over older ones and over the rotation.

Everything here is plain Python on epoch seconds (floats); no errbot, no store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "MIN_SHIFT",
    "OnCall",
    "Override",
    "Rotation",
    "local_instant",
    "local_time",
]

#: The shortest shift a rotation may have.
MIN_SHIFT = timedelta(hours=1)
#: Overrides and handoffs looked at when working out "until when" (bounds a pathological list).
_MAX_CHANGES = 1000


def local_time(instant: float, zone: ZoneInfo) -> datetime:
    """The zone's aware wall-clock time at ``instant`` (``fold`` set on a repeated hour)."""
    return datetime.fromtimestamp(instant, zone)


def local_instant(wall: datetime, zone: ZoneInfo) -> float:
    """The instant of naive wall time ``wall`` in ``zone``.

    Ambiguous: the first occurrence (``fold=0``). Non-existent: the transition instant
    (the first instant whose wall time is later than ``wall``); see the module docstring.
    """
    wall = wall.replace(tzinfo=None, fold=0)
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    if datetime.fromtimestamp(first, zone).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=0 reads the wall time with the offset before the change (an instant
    # after the transition) and fold=1 with the offset after it (an instant before it).
    lo = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = math.ceil(first)
    before = zone.utcoffset(datetime.fromtimestamp(lo, zone))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if zone.utcoffset(datetime.fromtimestamp(mid, zone)) == before:
            lo = mid
        else:
            hi = mid
    return float(hi)


@dataclass(frozen=True)
class Override:
    """``member`` on call for ``[start, end)`` (epoch seconds); larger ``id`` = newer."""

    id: int
    member: str
    start: float
    end: float
    created_by: str = ""

    def covers(self, instant: float) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True)
class OnCall:
    """Who is on call at ``at``: ``member`` since ``since`` until ``until``, then ``next``.

    ``until`` is ``math.inf`` when nobody else ever takes over (a one-member rotation).

    ``override`` is the override in force (None: the rotation's own shift); ``previous``
    is who was on call just before ``since``.
    """

    member: str
    at: float
    since: float | None
    until: float
    next: str
    previous: str | None
    override: Override | None = None


@dataclass(frozen=True)
class Rotation:
    """Members in order, the first shift's local start (naive), the shift length, the zone."""

    name: str
    members: tuple[str, ...]
    start: datetime
    shift: timedelta
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a rotation needs at least one member")
        if self.shift < MIN_SHIFT:
            raise ValueError("a shift is at least 1 hour")
        if self.start.tzinfo is not None:
            raise ValueError("the start is a naive local wall time")

    # -- the rotation's own shifts ---------------------------------------------------

    def handoff_wall(self, k: int) -> datetime:
        """The local wall time shift ``k`` starts at."""
        return self.start + k * self.shift

    def handoff_at(self, k: int) -> float:
        """The instant shift ``k`` starts at (shift 0: the start)."""
        return local_instant(self.handoff_wall(k), self.zone)

    def shift_index(self, instant: float) -> int:
        """The shift in force at ``instant``: the largest k >= 0 with ``handoff_at(k) <= instant``."""
        seconds = self.shift.total_seconds()
        k = max(0, math.floor((instant - self.handoff_at(0)) / seconds))
        while self.handoff_at(k + 1) <= instant:
            k += 1
        while k > 0 and self.handoff_at(k) > instant:
            k -= 1
        return k

    def member_of(self, k: int) -> str:
        return self.members[k % len(self.members)]

    def scheduled(self, instant: float) -> str:
        """The rotation's member at ``instant``, overrides aside."""
        return self.member_of(self.shift_index(instant))

    def last_handoff(self, instant: float) -> tuple[int, float] | None:
        """The latest handoff (k >= 1) at or before ``instant``: ``(k, when)``; None before any."""
        k = self.shift_index(instant)
        return (k, self.handoff_at(k)) if k >= 1 else None

    def next_handoff(self, instant: float) -> tuple[int, float]:
        """The first handoff after ``instant``: ``(k, when)`` (an empty shift is passed over)."""
        k = self.shift_index(instant) + 1
        when = self.handoff_at(k)
        while self.handoff_at(k + 1) == when:
            k += 1
        return k, when

    # -- with overrides ----------------------------------------------------------------

    def who(
        self, instant: float, overrides: Iterable[Override] = ()
    ) -> tuple[str, Override | None]:
        """Who is on call at ``instant``: the newest covering override's member, else the shift's."""
        found = newest_override(overrides, instant)
        if found is not None:
            return found.member, found
        return self.scheduled(instant), None

    def on_call(self, instant: float, overrides: Sequence[Override] = ()) -> OnCall:
        """Who is on call at ``instant``, since and until when, who is next and who was before."""
        member, override = self.who(instant, overrides)
        until = instant
        following = member
        for _ in range(_MAX_CHANGES):
            until = self._next_change(until, overrides)
            following, _ = self.who(until, overrides)
            if following != member:
                break
        else:  # one member and no override to come: on call for good
            until, following = math.inf, member
        since: float | None = None
        previous: str | None = None
        bound = instant
        for _ in range(_MAX_CHANGES):
            change = self._previous_change(bound, overrides)
            if change is None:  # on call since before anything changed
                since = None
                break
            since = change
            before, _ = self.who(change - 1e-3, overrides)
            if before != member:
                previous = before
                break
            bound = change - 1e-3
        return OnCall(member, instant, since, until, following, previous, override)

    def _next_change(self, after: float, overrides: Sequence[Override]) -> float:
        """The first instant after ``after`` where a shift or an override starts or ends."""
        candidates = [self.next_handoff(after)[1]]
        candidates += [t for o in overrides for t in (o.start, o.end) if t > after]
        return min(candidates)

    def _previous_change(self, at: float, overrides: Sequence[Override]) -> float | None:
        """The last instant at or before ``at`` where a shift or an override starts or ends."""
        candidates = [t for o in overrides for t in (o.start, o.end) if t <= at]
        last = self.last_handoff(at)
        if last is not None:
            candidates.append(last[1])
        return max(candidates) if candidates else None


def newest_override(overrides: Iterable[Override], instant: float) -> Override | None:
    """The newest override covering ``instant``, if any."""
    covering = [o for o in overrides if o.covers(instant)]
    return max(covering, key=lambda o: o.id) if covering else None
