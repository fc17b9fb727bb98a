"""Rotations: shift arithmetic on the zone's wall clock, overrides, parsing (no bot, no store).

The property tests compare ``Rotation`` with an independent reading of the wall clock
(``wall_clock_index``) at instants drawn around the daylight-saving changes of
Europe/Berlin, America/New_York, Australia/Lord_Howe (30-minute change) and UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from att_sms.pages import escalation as esc
from att_sms.pages import escalation_loop as loop
from att_sms.pages.escalation_text import event_text, list_line
from att_sms.rotations import (
    Override,
    Rotation,
    RotationError,
    default_start,
    format_local,
    format_shift,
    local_instant,
    parse_duration,
    parse_local,
    parse_shift,
    parse_zone,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]
MEMBERS = ("alice", "bob", "carol", "dave")
#: Kept short for CI: each property runs a bounded number of examples, with no deadline
#: (zone arithmetic on a loaded 2-core runner is slow now and then).
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SHIFTS = st.one_of(
    st.sampled_from([timedelta(hours=1), timedelta(minutes=90), timedelta(hours=12),
                     timedelta(days=1), timedelta(weeks=1), timedelta(hours=25)]),
    st.integers(60, 14 * 1440).map(lambda m: timedelta(minutes=m)),
)  # fmt: skip


@cache
def transitions(zone_name: str) -> tuple[float, ...]:
    """Every UTC-offset change of the zone in 2025-2027 (the instant the new offset starts);
    for UTC, a few arbitrary instants so that the strategies work the same way."""
    zone = ZoneInfo(zone_name)
    start = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(2028, 1, 1, tzinfo=UTC).timestamp()
    found: list[float] = []
    t = start
    offset = zone.utcoffset(datetime.fromtimestamp(t, zone))
    while t < end:
        nxt = t + 3600
        new = zone.utcoffset(datetime.fromtimestamp(nxt, zone))
        if new != offset:
            lo, hi = int(t), int(nxt)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if zone.utcoffset(datetime.fromtimestamp(mid, zone)) == offset:
                    lo = mid
                else:
                    hi = mid
            found.append(float(hi))
            offset = new
        t = nxt
    return tuple(found) or (start + 86400 * 80, start + 86400 * 300, start + 86400 * 500)


@st.composite
def rotations(draw: st.DrawFn) -> tuple[Rotation, float]:
    """A rotation starting some days before a DST change, and that change's instant."""
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    change = draw(st.sampled_from(transitions(zone_name)))
    local = datetime.fromtimestamp(change, zone).replace(tzinfo=None, second=0)
    start = local - timedelta(minutes=draw(st.integers(0, 20 * 1440)))
    if draw(st.booleans()):  # often on a round wall time, as people type them
        start = start.replace(minute=draw(st.sampled_from([0, 30])))
    members = MEMBERS[: draw(st.integers(1, len(MEMBERS)))]
    return Rotation("primary", members, start, draw(SHIFTS), zone), change


def near(change: float) -> st.SearchStrategy[float]:
    """Instants within a few days of ``change``, often right at it or at whole minutes."""
    return st.one_of(
        st.integers(-3 * 86400, 3 * 86400).map(lambda s: change + s),
        st.integers(-7200, 7200).map(lambda s: change + s),
        st.floats(-3 * 86400, 3 * 86400).map(lambda s: change + s),
    )


def _ambiguous(wall: datetime, zone: ZoneInfo) -> bool:
    return (
        wall.replace(tzinfo=zone, fold=0).utcoffset()
        != wall.replace(tzinfo=zone, fold=1).utcoffset()
    )


def wall_clock_index(rotation: Rotation, instant: float) -> int:
    """The shift number the wall clock gives, computed independently of ``Rotation``.

    Shift k has started once the wall clock has shown ``start + k * shift`` (or jumped over
    it). On the second pass of a repeated hour the clock has already shown every time up to
    the end of that hour, so every handoff before that end has happened.
    """
    shown = datetime.fromtimestamp(instant, rotation.zone)
    wall = shown.replace(tzinfo=None)
    if shown.fold == 1:
        end = wall.replace(second=0, microsecond=0)
        while _ambiguous(end, rotation.zone):
            end += timedelta(minutes=1)
        k = -((rotation.start - end) // rotation.shift) - 1  # the last k with start + k*shift < end
    else:
        k = (wall - rotation.start) // rotation.shift
    return max(0, k)


def gap_length(rotation: Rotation, k: int) -> timedelta:
    """How much wall time the zone skips around handoff k (0 where it skips none)."""
    wall = rotation.handoff_wall(k)
    zone = rotation.zone
    return abs(
        wall.replace(tzinfo=zone, fold=1).utcoffset()
        - wall.replace(tzinfo=zone, fold=0).utcoffset()
    )


# ------------------------------------------------------------------ properties


@FAST
@given(st.data())
def test_on_call_is_the_wall_clock_shift(data: st.DataObject) -> None:
    rotation, change = data.draw(rotations())
    instant = data.draw(near(change))
    expected = wall_clock_index(rotation, instant)
    assert rotation.shift_index(instant) == expected
    assert rotation.scheduled(instant) == rotation.members[expected % len(rotation.members)]


@FAST
@given(st.data())
def test_handoffs_are_never_skipped_or_doubled(data: st.DataObject) -> None:
    rotation, change = data.draw(rotations())
    first = rotation.shift_index(change - 3 * 86400)
    last = rotation.shift_index(change + 3 * 86400)
    previous = rotation.handoff_at(first)
    for k in range(first + 1, last + 2):
        when = rotation.handoff_at(k)
        wall = rotation.handoff_wall(k)
        shown = datetime.fromtimestamp(when, rotation.zone)
        if local_instant(wall, rotation.zone) == wall.replace(
            tzinfo=rotation.zone
        ).timestamp() and (shown.replace(tzinfo=None) == wall):
            assert shown.fold == 0  # a repeated wall time hands off at its first occurrence only
        else:  # the wall time does not exist: at the jump, right after the last earlier instant
            assert datetime.fromtimestamp(when - 1, rotation.zone).replace(tzinfo=None) < wall
            assert shown.replace(tzinfo=None) > wall
        # Never backwards; equal only when a 1 h shift's wall hour does not exist.
        assert when >= previous
        if when == previous:
            assert rotation.shift <= gap_length(rotation, k - 1)
        previous = when
    # Walking from handoff to handoff meets every shift once, in order (empty ones passed over).
    seen = [first]
    at = change - 3 * 86400
    while True:
        k, when = rotation.next_handoff(at)
        if when > change + 3 * 86400:
            break
        skipped = range(seen[-1] + 1, k)
        assert all(rotation.handoff_at(j) == when for j in skipped)  # only empty shifts
        assert rotation.shift_index(when) == k and rotation.shift_index(when - 1e-3) == seen[-1]
        seen.append(k)
        at = when
    assert seen[-1] == last


@FAST
@given(st.data())
def test_overrides_win_for_exactly_their_window(data: st.DataObject) -> None:
    rotation, change = data.draw(rotations())
    windows = data.draw(
        st.lists(
            st.tuples(
                st.integers(-86400, 86400), st.integers(60, 2 * 86400), st.sampled_from(MEMBERS)
            ),
            max_size=4,
        )
    )
    overrides = [
        Override(i + 1, member, change + offset, change + offset + length)
        for i, (offset, length, member) in enumerate(windows)
    ]
    probes = [data.draw(near(change)) for _ in range(5)]
    probes += [t for o in overrides for t in (o.start, o.end, o.start - 1e-3, o.end - 1e-3)]
    for instant in probes:
        covering = [o for o in overrides if o.start <= instant < o.end]
        member, override = rotation.who(instant, overrides)
        if covering:
            assert override == covering[-1] and member == covering[-1].member  # the newest
        else:
            assert override is None and member == rotation.scheduled(instant)


@FAST
@given(st.data())
def test_until_and_next_are_the_next_change(data: st.DataObject) -> None:
    rotation, change = data.draw(rotations())
    overrides = (
        [Override(1, "erin", change - 3600, change + 5400)] if data.draw(st.booleans()) else []
    )
    instant = data.draw(near(change))
    now = rotation.on_call(instant, overrides)
    assert (now.member, now.override) == rotation.who(instant, overrides)
    if math.isinf(now.until):
        assert len(rotation.members) == 1 and all(o.end <= instant for o in overrides)
        assert now.next == now.member
        return
    assert now.until > instant
    assert rotation.who(now.until, overrides)[0] == now.next != now.member
    for fraction in (0.25, 0.5, 0.999):
        assert rotation.who(instant + (now.until - instant) * fraction, overrides)[0] == now.member
    if now.since is not None:
        assert now.since <= instant and rotation.who(now.since, overrides)[0] == now.member
        assert now.previous == rotation.who(now.since - 1e-3, overrides)[0] != now.member
    else:
        assert now.previous is None


# ------------------------------------------------------------------ the DST cases, spelled out


def _shown(rotation: Rotation, k: int) -> str:
    return format_local(rotation.handoff_at(k), rotation.zone)


def test_a_nine_oclock_handoff_stays_at_nine_across_both_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = Rotation("p", MEMBERS, datetime(2026, 3, 27, 9, 0), timedelta(days=1), berlin)
    assert [_shown(spring, k) for k in range(4)] == [
        "Fri 27 Mar 09:00 CET", "Sat 28 Mar 09:00 CET", "Sun 29 Mar 09:00 CEST", "Mon 30 Mar 09:00 CEST",
    ]  # fmt: skip
    assert spring.handoff_at(3) - spring.handoff_at(2) == 86400
    assert spring.handoff_at(2) - spring.handoff_at(1) == 23 * 3600  # the short day
    new_york = ZoneInfo("America/New_York")
    weekly = Rotation("p", MEMBERS, datetime(2026, 10, 26, 9, 0), timedelta(weeks=1), new_york)
    assert [_shown(weekly, k) for k in range(2)] == ["Mon 26 Oct 09:00 EDT", "Mon 2 Nov 09:00 EST"]
    assert weekly.handoff_at(1) - weekly.handoff_at(0) == 7 * 86400 + 3600


def test_a_handoff_in_the_missing_hour_happens_at_the_jump() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    rotation = Rotation("p", MEMBERS, datetime(2026, 3, 28, 2, 30), timedelta(days=1), berlin)
    assert _shown(rotation, 1) == "Sun 29 Mar 03:00 CEST"  # 02:30 does not exist that day
    assert _shown(rotation, 2) == "Mon 30 Mar 02:30 CEST"
    hourly = Rotation("p", ("a", "b"), datetime(2026, 3, 29, 0, 0), timedelta(hours=1), berlin)
    # 02:00-03:00 does not exist: the 02:00 shift is empty, one handoff at the jump.
    assert hourly.handoff_at(2) == hourly.handoff_at(3)
    assert hourly.next_handoff(hourly.handoff_at(1)) == (3, hourly.handoff_at(3))
    assert hourly.scheduled(hourly.handoff_at(3)) == "b"


def test_a_handoff_in_the_repeated_hour_happens_once() -> None:
    new_york = ZoneInfo("America/New_York")
    rotation = Rotation("p", MEMBERS, datetime(2026, 10, 31, 1, 30), timedelta(days=1), new_york)
    first = rotation.handoff_at(1)
    assert _shown(rotation, 1) == "Sun 1 Nov 01:30 EDT"  # the first 01:30, not the second
    assert (
        rotation.scheduled(first + 3600) == rotation.scheduled(first) == "bob"
    )  # 01:30 EST: no new handoff
    assert rotation.handoff_at(2) - first == 25 * 3600


def test_lord_howe_moves_by_thirty_minutes() -> None:
    zone = ZoneInfo("Australia/Lord_Howe")
    rotation = Rotation("p", MEMBERS, datetime(2026, 10, 3, 2, 15), timedelta(days=1), zone)
    assert _shown(rotation, 1) == "Sun 4 Oct 02:30 +11"  # 02:00-02:30 is skipped
    assert rotation.handoff_at(1) - rotation.handoff_at(0) == 86400 - 900
    back = Rotation("p", MEMBERS, datetime(2026, 4, 4, 1, 45), timedelta(days=1), zone)
    assert _shown(back, 1) == "Sun 5 Apr 01:45 +11"  # the first of two 01:45s
    assert back.handoff_at(2) - back.handoff_at(1) == 86400 + 1800


def test_before_the_start_the_first_member_is_on_call() -> None:
    rotation = Rotation(
        "p", ("alice", "bob"), datetime(2026, 12, 7, 9, 0), timedelta(weeks=1), ZoneInfo("UTC")
    )
    before = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()
    now = rotation.on_call(before)
    assert (now.member, now.next, now.previous, now.since) == ("alice", "bob", None, None)
    assert format_local(now.until, rotation.zone) == "Mon 14 Dec 09:00 UTC"


def test_on_call_answer_with_an_override() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    rotation = Rotation(
        "p", ("alice", "bob"), datetime(2026, 11, 30, 9, 0), timedelta(weeks=1), berlin
    )
    at = local_instant(datetime(2026, 12, 8, 12, 0), berlin)
    cover = Override(1, "carol", at - 3600, at + 86400)
    now = rotation.on_call(at, [cover])
    assert (now.member, now.override, now.next, now.previous) == ("carol", cover, "bob", "bob")
    assert format_local(now.until, berlin) == "Wed 9 Dec 12:00 CET"


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1w", timedelta(weeks=1)), ("1d", timedelta(days=1)), ("12h", timedelta(hours=12)),
     ("90m", timedelta(minutes=90)), ("1d12h", timedelta(hours=36)), (" 2H ", timedelta(hours=2))],
)  # fmt: skip
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_shift(expected)) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "1.5h", "-1h", "1h 30m", "0h", "400d"])
def test_bad_durations_are_one_line(text: str) -> None:
    with pytest.raises(RotationError) as info:
        parse_duration(text)
    assert "\n" not in str(info.value) and "duration" in str(info.value)


def test_a_shift_is_at_least_an_hour() -> None:
    assert parse_shift("60m") == timedelta(hours=1)
    with pytest.raises(RotationError, match="too short: a shift is at least 1h"):
        parse_shift("59m")


def test_local_times_and_zones() -> None:
    assert parse_local("2026-12-07T09:00") == datetime(2026, 12, 7, 9, 0)
    for bad in ("2026-12-07", "07/12/2026 09:00", "2026-12-07T9:00", "tomorrow"):
        with pytest.raises(RotationError, match="does not parse: write YYYY-MM-DDTHH:MM"):
            parse_local(bad)
    with pytest.raises(RotationError, match="not a real date"):
        parse_local("2026-02-30T09:00")
    assert parse_zone("Australia/Lord_Howe") == ZoneInfo("Australia/Lord_Howe")
    for bad in ("Mars/Olympus", "Europe/Berlinn", "../etc/passwd", "CET "[:0]):
        with pytest.raises(RotationError, match="zone"):
            parse_zone(bad)


def test_default_start_is_the_next_monday_nine() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    sunday = local_instant(datetime(2026, 12, 6, 20, 0), berlin)
    assert default_start(sunday, berlin) == datetime(2026, 12, 7, 9, 0)
    monday_late = local_instant(datetime(2026, 12, 7, 9, 1), berlin)
    assert default_start(monday_late, berlin) == datetime(2026, 12, 14, 9, 0)


def test_times_show_the_zone_abbreviation_and_other_years() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    at = local_instant(datetime(2026, 12, 7, 9, 0), berlin)
    assert format_local(at, berlin) == "Mon 7 Dec 09:00 CET"
    assert format_local(at, berlin, now=at - 40 * 86400 * 10) == "Mon 7 Dec 2026 09:00 CET"
    assert math.isclose(at, datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp())


# ------------------------------------------------------------------ a page to a rotation


def test_a_rotation_step_records_whom_it_texted() -> None:
    page = esc.new_page(1, "#ops", "db1 down", ["rotation:primary"], 1000.0, created_by="ann")
    clock = [1000.0]
    whom = {"rotation:primary": "tel:+12125550102"}

    def send(step: esc.Page, recipient: str) -> loop.SendOutcome:
        return loop.SendOutcome(esc.SENT, ("id1",), to=whom[recipient])

    page, events, _ = loop.run_due(page, lambda: clock[0], save=lambda p: None, send=send)
    assert page.history[-1]["to"] == "tel:+12125550102"
    assert esc.paged_numbers(page) == ["tel:+12125550102"]  # an SMS ack from bob finds it
    names = {"tel:+12125550102": "bob"}
    assert event_text(events[0], names) == (
        "Page P1: paged bob (+1 212-555-0102) for primary (step 1/1)."
    )
    assert "paged bob (+1 212-555-0102) 0 s ago" in list_line(page, 1000.0, names)
    # Not resolved (the rotation was removed): the post says so.
    fresh = esc.begin_send(
        esc.new_page(2, "#ops", "x", ["rotation:primary"], 0.0, created_by="a"), 0.0
    )
    failed = esc.record_send(fresh, esc.FAILED, 0.0, detail="rotation 'primary' no longer exists")
    assert event_text(loop.Event(esc.FAILED, failed, failed.history[-1]["detail"])) == (
        "Page P2: could not page whoever is on call for primary (step 1/1): rotation 'primary'"
        " no longer exists; that was the last step."
    )
