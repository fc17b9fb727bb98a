"""Tests for att_sms.pages.escalation and att_sms.pages.escalation_text: escalating pages on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from att_sms.pages import ack_matching as acks
from att_sms.pages import escalation as esc
from att_sms.pages import escalation_loop as loop
from att_sms.pages.escalation import EscalationError, Page
from att_sms.pages.escalation_loop import SendOutcome
from att_sms.pages.escalation_text import (
    acked_text,
    cancelled_text,
    event_text,
    interrupted_text,
    list_line,
    sms_text,
)
from att_sms.text.common import format_elapsed
from att_sms.text.formatting import neutralise
from hypothesis import event, given, settings
from hypothesis import strategies as st

ALICE, BOB, CAROL = "tel:+12125550101", "tel:+12125550102", "tel:+12125550103"
NAMES = {ALICE: "Alice", BOB: "Bob", CAROL: "Carol"}
T0 = 1_000_000.0


def make(recipients: list[str] | None = None, **kwargs) -> Page:
    kwargs.setdefault("escalate_after", 300)
    return esc.new_page(
        7,
        "#ops",
        "db1 disk full",
        recipients or [ALICE, BOB, CAROL],
        T0,
        created_by="@ann",
        **kwargs,
    )


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A fake carrier and store around ``run_due``; the store keeps JSON text."""

    clock: Clock = field(default_factory=Clock)
    outcomes: list[SendOutcome] = field(default_factory=list)
    sends: list[tuple[float, str, int]] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)

    def save(self, page: Page) -> None:
        if self.rows:
            assert page.version > json.loads(self.rows[-1])["version"]
        self.rows.append(json.dumps(page.to_row()))

    def send(self, page: Page, recipient: str) -> SendOutcome:
        assert json.loads(self.rows[-1])["send_state"] == "sending"  # saved before sending
        self.sends.append((self.clock.now, recipient, page.number))
        self.clock.now += 1  # a send takes a second
        return (
            self.outcomes.pop(0) if self.outcomes else SendOutcome("sent", (f"m{len(self.sends)}",))
        )

    def run(self, page: Page) -> tuple[Page, list[str], esc.Action]:
        page, events, action = loop.run_due(page, self.clock, save=self.save, send=self.send)
        return page, [event_text(e, NAMES) for e in events], action

    def stored(self) -> Page:
        return Page.from_row(json.loads(self.rows[-1]))


# -- ids, creation, rows -------------------------------------------------------------


def test_page_ids() -> None:
    assert esc.page_id(7) == "P7"
    for text in ["P7", "p7", "#P7", " P07 "]:
        assert esc.parse_page_id(text) == "P7"
    assert esc.parse_page_id("7") is None
    assert esc.parse_page_id("7", bare=True) == "P7"
    for bad in ["P", "P0", "Px", "PP7", "P-1", "", "P1234567890"]:
        assert esc.parse_page_id(bad, bare=True) is None
    with pytest.raises(ValueError):
        esc.page_id(0)


def test_new_page_keeps_order_and_drops_repeats() -> None:
    page = make([BOB, ALICE, BOB, CAROL, ALICE])
    assert page.recipients == [BOB, ALICE, CAROL]
    assert (page.id, page.state, page.send_state, page.step, page.round) == (
        "P7", "open", "pending", 0, 0,
    )  # fmt: skip
    assert page.total_steps == 3 and page.number == 1 and page.recipient == BOB


@pytest.mark.parametrize("bad", [{"rounds": 0}, {"escalate_after": -1}])
def test_new_page_refuses_bad_settings(bad: dict) -> None:
    with pytest.raises(EscalationError):
        make(**bad)
    with pytest.raises(EscalationError, match="no recipients"):
        esc.new_page(1, "#ops", "x", [], T0, created_by="@ann")


def test_row_round_trip_is_json() -> None:
    harness = Harness()
    page, _, _ = harness.run(make())
    row = json.loads(json.dumps(page.to_row()))
    assert Page.from_row(row) == page
    assert set(row) >= {
        "id", "room", "text", "recipients", "created_at", "step", "round", "step_started_at",
        "state", "acked_by", "acked_at", "send_state", "message_ids", "version",
    }  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"state": "done"},
        {"send_state": "maybe"},
        {"step": 3},
        {"round": 1},
        {"recipients": "tel:+1"},
        {"recipients": []},
        {"id": "7"},
        {"step": "0"},
    ],
)
def test_from_row_refuses_bad_rows(change: dict) -> None:
    row = make().to_row() | change
    with pytest.raises(EscalationError):
        Page.from_row(row)
    with pytest.raises(EscalationError, match="fields"):
        Page.from_row({k: v for k, v in make().to_row().items() if k != "history"})


# -- escalation on a fake clock ------------------------------------------------------


def test_nobody_acknowledges_one_round() -> None:
    harness = Harness()
    page, events, action = harness.run(make())
    assert harness.sends == [(T0, ALICE, 1)]
    assert events == ["Page P7: paged Alice (+1 212-555-0101) (step 1/3)."]
    assert action == esc.Action("wait", at=T0 + 1 + 300)
    assert page.message_ids == ["m1"] and page.send_state == "sent"

    harness.clock.now = T0 + 300  # not yet: the wait counts from the send's end
    page, events, action = harness.run(page)
    assert events == [] and action.kind == "wait" and len(harness.sends) == 1

    harness.clock.now = T0 + 301
    page, events, action = harness.run(page)
    assert events == [
        "Page P7: Alice (+1 212-555-0101) did not acknowledge within 5 min; moving on.",
        "Page P7: paged Bob (+1 212-555-0102) (step 2/3).",
    ]
    harness.clock.now += 10_000  # one late tick: one step, never two at once
    page, events, action = harness.run(page)
    assert [s[1:] for s in harness.sends] == [(ALICE, 1), (BOB, 2), (CAROL, 3)]
    assert action.kind == "wait"

    harness.clock.now += 300
    page, events, action = harness.run(page)
    assert page.state == "exhausted" and page.ended_at == harness.clock.now
    assert events[-1] == "Page P7: nobody acknowledged after 3 steps; the page is closed."
    assert action.kind == "none" and len(harness.sends) == 3
    assert harness.stored() == page


def test_rounds_pass_through_the_list_again() -> None:
    harness = Harness()
    page = make([ALICE, BOB], rounds=2, escalate_after=60)
    texts = []
    for _ in range(10):
        page, events, _ = harness.run(page)
        texts += events
        harness.clock.now += 61
    assert [s[1:] for s in harness.sends] == [(ALICE, 1), (BOB, 2), (ALICE, 3), (BOB, 4)]
    assert "Page P7: paged Alice (+1 212-555-0101) (step 3/4, round 2/2)." in texts
    assert texts[-1] == "Page P7: nobody acknowledged after 4 steps; the page is closed."


def test_acknowledged_page_stops() -> None:
    harness = Harness()
    page, _, _ = harness.run(make())
    harness.clock.now = T0 + 301
    page, _, _ = harness.run(page)  # Bob paged
    ok, named = acks.is_ack("OK, on it", acks.DEFAULT_ACK_WORDS)
    assert ok and named is None
    assert acks.ack_target([page], BOB) is page
    page = esc.acknowledge(page, BOB, T0 + 425)
    assert acked_text(page, NAMES, "OK, on it") == (
        "Page P7 acknowledged by Bob (+1 212-555-0102) after 7 min 5 s: OK, on it"
    )
    harness.clock.now += 10_000
    page, events, action = harness.run(page)
    assert events == [] and action.kind == "none" and len(harness.sends) == 2
    with pytest.raises(EscalationError, match="P7 is acknowledged: cannot cancel"):
        esc.cancel(page, "@ann", T0 + 500)


def test_cancel_from_chat() -> None:
    page = esc.cancel(make(), "@ann", T0 + 5)
    assert page.state == "cancelled" and page.cancelled_by == "@ann"
    assert cancelled_text(page) == "Page P7 cancelled by @\u2060ann."
    assert esc.next_action(page, T0 + 9999).kind == "none"
    assert acked_text(esc.acknowledge(make(), "@bob", T0 + 61)) == (
        "Page P7 acknowledged by @\u2060bob after 1 min 1 s"
    )


def test_failed_step_moves_on_at_once() -> None:
    harness = Harness(outcomes=[SendOutcome("failed", detail="opted out (texted STOP)")])
    page, events, action = harness.run(make())
    assert [s[1] for s in harness.sends] == [ALICE, BOB]
    assert events == [
        "Page P7: could not page Alice (+1 212-555-0101) (step 1/3): opted out (texted STOP);"
        " moving on.",
        "Page P7: paged Bob (+1 212-555-0102) (step 2/3).",
    ]
    assert action.kind == "wait"


def test_every_step_failing_closes_with_a_note() -> None:
    harness = Harness(outcomes=[SendOutcome("failed", detail="quota")] * 3)
    page, events, _ = harness.run(make())
    assert page.state == "exhausted" and len(harness.sends) == 3
    assert events[-2].endswith("quota; that was the last step.")
    assert events[-1] == (
        "Page P7: nobody acknowledged after 3 steps (3 could not be sent); the page is closed."
    )


def test_uncertain_step_waits_and_is_not_resent() -> None:
    harness = Harness(outcomes=[SendOutcome("uncertain", detail="read timeout")])
    page, events, action = harness.run(make())
    assert events == [
        "Page P7: the SMS to Alice (+1 212-555-0101) (step 1/3) may or may not have gone out"
        " (read timeout); it is not sent again. Moving on in 5 min unless acknowledged."
    ]
    assert action == esc.Action("wait", at=T0 + 301)
    assert esc.paged_numbers(page) == [ALICE]  # Alice may have it: her ack counts
    harness.clock.now = T0 + 301
    page, _, _ = harness.run(page)
    assert [s[1] for s in harness.sends] == [ALICE, BOB]


class Crash(Exception):
    """The process dies in the middle of a send."""


def test_restart_mid_send_never_resends() -> None:
    harness = Harness()

    def dying_send(page: Page, recipient: str) -> SendOutcome:
        harness.send(page, recipient)
        raise Crash

    with pytest.raises(Crash):
        loop.run_due(make(), harness.clock, save=harness.save, send=dying_send)
    # Start-up: the stored step is "sending"; it becomes uncertain, never resent.
    harness.clock.now = T0 + 120
    page = harness.stored()
    assert page.send_state == "sending" and esc.next_action(page, T0 + 120).kind == "busy"
    page = esc.recover_interrupted(page, harness.clock.now)
    harness.save(page)
    assert page.send_state == "uncertain" and page.step_started_at == T0
    assert page.history[-1]["detail"] == "interrupted"
    assert interrupted_text(page, NAMES) == (
        "Page P7: the bot stopped while paging Alice (+1 212-555-0101) (step 1/3); that SMS"
        " may or may not have gone out and is not sent again."
    )
    assert esc.recover_interrupted(page, T0 + 130) is page  # nothing else to recover
    page, events, action = harness.run(page)
    assert events == [] and action == esc.Action("wait", at=T0 + 300)
    harness.clock.now = T0 + 300
    page, events, _ = harness.run(page)
    assert [s[1] for s in harness.sends] == [ALICE, BOB]


def test_restart_between_steps_resumes_from_the_store() -> None:
    harness = Harness()
    harness.run(make())
    harness.clock.now = T0 + 400  # the bot was down; the store's clock says it is time
    page, events, _ = harness.run(harness.stored())
    assert [s[1] for s in harness.sends] == [ALICE, BOB]
    assert len(events) == 2


def test_transitions_refused_out_of_order() -> None:
    page = make()
    for wrong in (
        lambda: esc.advance(page, T0),
        lambda: esc.exhaust(page, T0),
        lambda: esc.record_send(page, "sent", T0),
        lambda: esc.begin_send(esc.begin_send(page, T0), T0),
    ):
        with pytest.raises(EscalationError):
            wrong()
    sent = esc.record_send(esc.begin_send(page, T0), "sent", T0 + 1)
    with pytest.raises(EscalationError, match="cannot move on yet"):
        esc.advance(sent, T0 + 100)
    with pytest.raises(EscalationError, match="has steps or time left"):
        esc.exhaust(sent, T0 + 1000)
    with pytest.raises(EscalationError, match="unknown send outcome"):
        esc.record_send(esc.begin_send(page, T0), "delivered", T0)


def test_send_result_recorded_after_an_ack_during_the_send() -> None:
    sending = esc.begin_send(make(), T0)
    acked = esc.acknowledge(sending, ALICE, T0 + 0.5)
    done = esc.record_send(acked, "sent", T0 + 1, message_ids=["m1"])
    assert done.state == "acknowledged" and done.message_ids == ["m1"]
    assert done.version == sending.version + 2


# -- acknowledgement by SMS --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ack", (True, None)),
        ("ACK", (True, None)),
        ("Ok!", (True, None)),
        ("(yes)", (True, None)),
        ("y.", (True, None)),
        ("1", (True, None)),
        ("  ok  on my way", (True, None)),
        ("ok 5 min", (True, None)),
        ("ack P7", (True, "P7")),
        ("Ack, p12.", (True, "P12")),
        ("ack:P3", (True, "P3")),
        ("ACK #P7 rebooting", (True, "P7")),
        ("\U0001f44d ok", (False, None)),
        ("okay", (False, None)),
        ("acknowledged", (False, None)),
        ("I ack", (False, None)),
        ("y'all ok?", (False, None)),
        ("no", (False, None)),
        ("", (False, None)),
        ("  \n ", (False, None)),
        ("STOP", (False, None)),
    ],
)
def test_is_ack(text: str, expected: tuple[bool, str | None]) -> None:
    assert acks.is_ack(text, acks.DEFAULT_ACK_WORDS) == expected


def test_is_ack_custom_words() -> None:
    assert acks.is_ack("Roger that", ["roger", "ROGER!"]) == (True, None)
    assert acks.is_ack("ack", ["roger"]) == (False, None)
    assert acks.is_ack("ack", ["", "!!"]) == (False, None)


def sent_page(number: int, recipients: list[str], created: float) -> Page:
    page = esc.new_page(number, "#ops", "x", recipients, created, created_by="@ann")
    return esc.record_send(esc.begin_send(page, created), "sent", created + 1)


def test_ack_target_newest_open_page_that_paged_the_sender() -> None:
    older = sent_page(3, [ALICE, BOB], T0)
    newer = sent_page(4, [ALICE], T0 + 60)
    other = sent_page(5, [CAROL, ALICE], T0 + 120)  # Alice not paged yet
    assert acks.ack_target([older, newer, other], ALICE) is newer
    assert acks.ack_target([older, newer, other], ALICE, "P3") is older
    assert acks.ack_target([older, newer, other], ALICE, "P5") is None
    assert acks.ack_target([older, newer, other], BOB) is None  # paged nowhere yet
    closed = esc.acknowledge(newer, ALICE, T0 + 70)
    assert acks.ack_target([older, closed], ALICE) is older
    failed = esc.record_send(esc.begin_send(make([BOB]), T0), "failed", T0)
    assert acks.ack_target([failed], BOB) is None
    in_flight = esc.begin_send(make([BOB]), T0)
    assert acks.ack_target([in_flight], BOB) is in_flight


# -- texts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (45.9, "45 s"), (60, "1 min"), (192, "3 min 12 s"), (3600, "1 h"),
     (3900, "1 h 5 min"), (-5, "0 s")],
)  # fmt: skip
def test_format_elapsed(seconds: float, shown: str) -> None:
    assert format_elapsed(seconds) == shown


def test_inbound_parts_are_neutralised() -> None:
    names = {ALICE: "<!channel> *Alice*"}
    reply = "ok @here\n<!everyone> `x`"
    page = esc.acknowledge(sent_page(2, [ALICE], T0), ALICE, T0 + 30)
    text = acked_text(page, names, reply)
    assert text == (
        f"Page P2 acknowledged by {neutralise(names[ALICE], max_length=60)} (+1 212-555-0101)"
        f" after 30 s: {neutralise(reply, max_length=160)}"
    )
    for raw in ("<!", "@here", "\n", "*Alice*", "`x`"):
        assert raw not in text
    detail = loop.Event("failed", sent_page(2, [ALICE], T0), "bad\nnumber @all")
    assert neutralise("bad\nnumber @all", max_length=200) in event_text(detail)
    assert "@all" not in event_text(detail)
    with pytest.raises(ValueError, match="unknown event kind"):
        event_text(loop.Event("odd", page))


def test_list_line_and_sms_text() -> None:
    harness = Harness()
    page, _, _ = harness.run(make())
    harness.clock.now = T0 + 301
    page, _, _ = harness.run(page)
    assert list_line(page, T0 + 402, NAMES) == (
        "P7 (step 2/3, open 6 min 42 s): paged Alice (+1 212-555-0101) 6 min 41 s ago,"
        " Bob (+1 212-555-0102) 1 min 40 s ago; next step in 3 min 20 s. Text: db1 disk full"
    )
    fresh = make()
    assert list_line(fresh, T0, NAMES).endswith(
        "nobody paged yet; sending now. Text: db1 disk full"
    )
    assert sms_text(page) == "P7: db1 disk full (Reply ACK P7 to acknowledge)"


# -- property: never twice, never skipped, across crashes ---------------------------------

OUTCOMES = st.sampled_from(["sent", "sent", "uncertain", "failed", "crash_before", "crash_after"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.floats(0, 700), st.lists(OUTCOMES, max_size=4)),
        st.tuples(st.just("ack"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 3)),
    ),
    max_size=25,
)


class World:
    """A store of JSON rows, a carrier log and a process that may die mid-send."""

    def __init__(self, recipients: list[str], rounds: int, after: float) -> None:
        self.now = T0
        self.row = ""
        self.attempts: list[tuple[int, str, float]] = []  # (step number, to, time)
        self.finished: dict[int, tuple[str, float]] = {}  # step number -> (outcome, time)
        self.outcomes: Iterator[str] = iter(())
        self.save(
            esc.new_page(
                1, "#ops", "x", recipients, T0, created_by="@a", escalate_after=after, rounds=rounds
            )
        )

    def clock(self) -> float:
        return self.now

    def save(self, page: Page) -> None:
        if self.row:
            assert page.version > json.loads(self.row)["version"]
        self.row = json.dumps(page.to_row())
        if page.history:
            last = page.history[-1]
            number = last["round"] * len(page.recipients) + last["step"] + 1
            self.finished.setdefault(number, (last["outcome"], last["at"]))

    def load(self) -> Page:
        return Page.from_row(json.loads(self.row))

    def send(self, page: Page, recipient: str) -> SendOutcome:
        kind = next(self.outcomes, "sent")
        self.attempts.append((page.number, recipient, self.now))
        self.now += 0.5
        if kind.startswith("crash"):
            raise Crash(kind)
        return SendOutcome(kind, ("m",) if kind == "sent" else ())

    def tick(self, outcomes: list[str]) -> esc.Action | None:
        self.outcomes = iter(outcomes)
        try:
            _, _, action = loop.run_due(self.load(), self.clock, save=self.save, send=self.send)
        except Crash:
            event("crash and restart")
            page = esc.recover_interrupted(self.load(), self.now)  # start-up
            assert page.send_state == "uncertain"
            self.save(page)
            return None
        return action


def check_schedule(world: World, page: Page, after: float) -> None:
    numbers = [a[0] for a in world.attempts]
    assert numbers == list(range(1, len(numbers) + 1)), "a step was sent twice or skipped"
    assert [a[1] for a in world.attempts] == [
        page.recipients[(n - 1) % len(page.recipients)] for n in numbers
    ]
    for (n, _, at), (_, _, next_at) in zip(world.attempts, world.attempts[1:], strict=False):
        outcome, done = world.finished[n]
        assert next_at >= (
            at if outcome == "failed" else done + after if outcome == "sent" else at + after
        )
    if page.state == "exhausted":
        assert numbers == list(range(1, page.total_steps + 1))


@settings(max_examples=300, deadline=None)
@given(
    recipients=st.lists(st.sampled_from([ALICE, BOB, CAROL]), min_size=1, max_size=3, unique=True),
    rounds=st.integers(1, 3),
    after=st.sampled_from([0.0, 30.0, 300.0]),
    operations=OPERATIONS,
)
def test_fuzz_never_twice_never_skipped(
    recipients: list[str], rounds: int, after: float, operations: list[tuple]
) -> None:
    world = World(recipients, rounds, after)
    for op in operations:
        page = world.load()
        if op[0] == "tick":
            world.now += op[1]
            closed_before = page.state != "open"
            before = len(world.attempts)
            action = world.tick(op[2])
            if closed_before:
                assert len(world.attempts) == before
            if action is not None:
                assert action.kind in ("wait", "none")
                assert action.kind == "none" or action.at > world.now
        elif op[0] == "ack":
            sender = (recipients + [CAROL])[op[1] % (len(recipients) + 1)]
            target = acks.ack_target([page], sender, page.id if op[2] else None)
            if target is not None:
                event("acknowledged")
                assert any(a[1] == sender for a in world.attempts)
                world.save(esc.acknowledge(target, sender, world.now))
        elif page.state == "open" and op[1] == 0:
            world.save(esc.cancel(page, "@a", world.now))
        check_schedule(world, world.load(), after)
    # Liveness: with time and a working carrier every page ends.
    for _ in range(2 * rounds * len(recipients) + 2):
        world.now += after + 1
        world.tick([])
    final = world.load()
    assert final.state != "open"
    event(final.state)
    check_schedule(world, final, after)
