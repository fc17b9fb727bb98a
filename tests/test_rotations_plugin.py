"""Rotations in errbot's test backend against the carrier sandbox, with the store's clock
under the test's control: the commands as they answer, pages and sends to whoever is on
call at each step, one handoff post per handoff (HANDOFF_SMS too)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from att_sms.text.formatting import neutralise
from botkit import Bot, sandbox_config

ALICE, BOB, CAROL = "tel:+12125550101", "tel:+12125550102", "tel:+12125550103"
BERLIN = ZoneInfo("Europe/Berlin")
USER = neutralise("gbin@localhost")
ROOM = "gbin@localhost"  # where a command typed to the bot in this backend is answered
SHOWN_ROOM = neutralise(ROOM)  # as answers show it (it cannot mention)


def berlin(*args: int) -> float:
    return datetime(*args, tzinfo=BERLIN).timestamp()


class Clock:
    """The store's clock, moved by the test (``Database.now`` is the one every time comes from)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class RotationBot(Bot):
    """Room posts stay off the reply queue, so that ``ask`` returns the command's reply."""

    def record(self, msg: Any) -> bool:
        super().record(msg)
        return str(msg.to) != "Err"

    def room_posts(self, needle: str) -> list[str]:
        return [body for to, body in self.posts_containing(needle) if to != "Err"]


@pytest.fixture
def make_bot(env: None, tmp_path: Path, sandbox, client_id: str) -> Iterator[Any]:
    bots: list[RotationBot] = []

    def make(now: float, **overrides: Any) -> tuple[RotationBot, Clock]:
        bot = RotationBot(data_dir=tmp_path / "data", STORAGE="Shelf")
        bots.append(bot)
        config = sandbox_config(
            sandbox, client_id, FOLLOW_UP=False, ESCALATE_AFTER=120, TIMEZONE="Europe/Berlin"
        )
        config.update(overrides)
        assert bot.configure(config) == "Plugin configuration done."
        clock = Clock(now)
        bot.plugin.services.runtime.store.database.now = clock  # the store's clock, for this test
        for name, tel in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
            assert bot.ask(f"!sms contact add {name} {tel[4:]}").startswith(f"Contact {name}")
        return bot, clock

    yield make
    for bot in bots:
        bot.stop()


def sent(sandbox) -> list[tuple[str, str]]:
    return [(a, s["message"]) for s in sandbox.state()["sent"] for a in s["addresses"]]


def test_commands_as_they_answer(make_bot, sandbox) -> None:
    bot, clock = make_bot(berlin(2026, 12, 6, 20, 0))  # a Sunday evening
    assert bot.ask("!sms rotation add primary alice,bob") == (
        "Rotation primary saved: alice, bob; 1w shifts from Mon 7 Dec 09:00 CET (Europe/Berlin),"
        f" handoffs posted in {SHOWN_ROOM}. Now: alice is on call until Mon 14 Dec 09:00 CET, then bob"
    )
    assert bot.ask("!sms oncall primary") == (
        "primary: alice is on call until Mon 14 Dec 09:00 CET, then bob"
    )
    # One clear line each, nothing stored.
    refused = {
        "!sms rotation add alice bob": "name 'alice' is already a contact",
        "!sms rotation add night bob --shift 30m": "shift '30m' is too short: a shift is at least 1h",
        "!sms rotation add night bob --tz Mars/Base": "unknown time zone 'Mars/Base'",
        "!sms rotation add night bob --start 7.12.2026": "start '7.12.2026' does not parse",
        "!sms rotation add night bob,zed": "'zed': unknown contact and not a phone number",
        "!sms rotation add night bob --colour red": "unknown option or missing value '--colour'",
    }
    for command, problem in refused.items():
        answer = bot.ask(command)
        assert answer.startswith("Rotation not saved: ") and problem in answer, answer
        assert "\n" not in answer
    assert bot.ask("!sms contact add primary 2125550109").startswith(
        "Contact not saved: contact name 'primary' is already a rotation"
    )
    assert bot.ask("!sms contact remove bob") == (
        "Nothing removed: contact 'bob' is in rotation primary: change or remove the rotation first"
    )
    answer = bot.ask(
        "!sms rotation add secondary carol,+12125550104 --shift 12h --start 2026-12-06T21:00"
        " --tz America/New_York --room #ops"
    )
    assert answer == (
        "Rotation secondary saved: carol, +1 212-555-0104; 12h shifts from Sun 6 Dec 21:00 EST"
        " (America/New_York), handoffs posted in #ops. Now: carol is on call until"
        " Mon 7 Dec 09:00 EST, then +1 212-555-0104"
    )
    assert bot.ask("!sms rotations").splitlines() == [
        "primary: alice is on call until Mon 14 Dec 09:00 CET, then bob"
        f" [1w shifts, Europe/Berlin, room {SHOWN_ROOM}]",
        "secondary: carol is on call until Mon 7 Dec 09:00 EST, then +1 212-555-0104"
        " [12h shifts, America/New_York, room #ops]",
    ]
    # Overrides: the newest wins, for exactly its window; remove ends the one in force.
    assert bot.ask("!sms override primary carol 2h") == (
        f"Override saved. primary: carol is on call (override by {USER}) until"
        " Sun 6 Dec 22:00 CET, then alice"
    )
    assert bot.ask("!sms override primary bob --until 2026-12-06T21:00").endswith(
        f"bob is on call (override by {USER}) until Sun 6 Dec 21:00 CET, then carol"
    )
    assert bot.ask("!sms override primary bob --until 2026-12-06T19:00") == (
        "Override not saved: --until 2026-12-06T19:00 (Europe/Berlin) is not in the future"
    )
    assert bot.ask("!sms override primary bob 1h30").startswith("Override not saved: duration")
    assert bot.ask("!sms override remove primary") == (
        "Override of primary ended (carol, bob). primary: alice is on call until"
        " Mon 14 Dec 09:00 CET, then bob"
    )
    assert bot.ask("!sms override remove primary") == "No override of primary is in force."
    log = bot.ask("!sms log 4")
    assert f"{ROOM} -> carol, tel:+12125550104 0 parts []: rotation secondary added: 12h" in log
    assert f"{ROOM} -> bob 0 parts []: override of rotation primary: bob until Sun 6 Dec" in log
    assert "override of rotation primary ended" in log
    # A member who opted out shows as such (pages to them fail and move on, as today).
    sandbox.inject_inbound("reg-ops", ALICE, "STOP")
    bot.ask("!sms inbox")
    assert bot.ask("!sms oncall primary") == (
        "primary: alice (opted out: texted STOP; pages to it fail) is on call until"
        " Mon 14 Dec 09:00 CET, then bob"
    )
    assert bot.ask("!sms page primary,secondary db1 down").splitlines() == [
        "Page P1: could not page alice (+1 212-555-0101) for primary (step 1/2): opted out"
        " (texted STOP); moving on.",
        "Page P1: paged carol (+1 212-555-0103) for secondary (step 2/2).",
    ]
    assert [a for a, _ in sent(sandbox)] == [CAROL]
    assert bot.ask("!sms rotation remove primary") == "Rotation primary removed."
    assert bot.ask("!sms oncall primary") == "No rotation primary."
    assert bot.ask("!sms contact remove bob") == "Contact bob removed."


def test_a_page_step_after_a_handoff_pages_the_new_person(make_bot, sandbox) -> None:
    handoff = berlin(2026, 12, 7, 9, 0)
    bot, clock = make_bot(handoff - 60, ESCALATE_ROUNDS=2, DEDUP_WINDOW=0)
    bot.ask("!sms rotation add primary alice,bob --shift 1d --start 2026-12-06T09:00")
    bot.ask("!sms rotation add secondary carol --start 2026-12-06T09:00")
    assert bot.ask("!sms send primary db1 is slow").startswith("Sent")
    answer = bot.ask("!sms page primary db1 down")
    assert answer == "Page P1: paged alice (+1 212-555-0101) for primary (step 1/2, round 1/2)."
    clock.advance(121)  # the wait is over, and it is past 09:00: bob is on call now
    bot.wait_for_posts("(step 2/2, round 2/2)")
    assert bot.room_posts("Page P1:") == [
        "Page P1: alice (+1 212-555-0101) for primary did not acknowledge within 2 min; moving on.",
        "Page P1: paged bob (+1 212-555-0102) for primary (step 2/2, round 2/2).",
    ]
    # Both rotations in one page: an escalation policy across them.
    assert bot.ask("!sms page primary,secondary db2 down").startswith(
        "Page P2: paged bob (+1 212-555-0102) for primary (step 1/4, round 1/2)."
    )
    clock.advance(121)
    bot.wait_for_posts("Page P2: paged carol")
    assert [to for to, _ in sent(sandbox)] == [ALICE, ALICE, BOB, BOB, CAROL]
    # bob acknowledges by SMS: the page knows it texted him (through the rotation).
    sandbox.inject_inbound("reg-ops", BOB, "ack P2")
    bot.ask("!sms inbox")
    assert bot.wait_for_posts("Page P2 acknowledged by bob (+1 212-555-0102)")


def test_each_handoff_is_posted_once_and_the_incoming_person_texted(make_bot, sandbox) -> None:
    handoff = berlin(2026, 12, 7, 9, 0)
    bot, clock = make_bot(handoff - 10, HANDOFF_SMS=True)
    bot.ask("!sms rotation add primary alice,bob,carol --shift 1d --start 2026-12-06T09:00")
    clock.advance(20)
    (post,) = bot.wait_for_posts("(was ")
    assert post == (ROOM, "primary: bob is on call until Tue 8 Dec 09:00 CET (was alice)")
    deadline = time.monotonic() + 5
    while len(sandbox.state()["sent"]) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent(sandbox) == [(BOB, "primary: you are on call until Tue 8 Dec 09:00 CET")]
    time.sleep(2.5)  # more poller runs: no second post, no second SMS
    assert len(bot.room_posts("(was ")) == 1
    clock.advance(3 * 86400)  # the bot "slept" through three handoffs: the current one, once
    bot.wait_for_posts("(was ", count=2)
    time.sleep(2.5)
    assert bot.room_posts("(was ")[1:] == [
        "primary: bob is on call until Fri 11 Dec 09:00 CET (was alice)"  # shift 4, not 2, 3, 4
    ]
    assert [to for to, _ in sent(sandbox)] == [BOB, BOB]
