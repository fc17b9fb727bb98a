"""Acceptance on a real chat server: a page to a rotation whose handoff falls between two
steps pages the new person, and the handoff is posted in the channel once.

errbot runs as its own process with the real clock, so the rotation is set up with a real
handoff a little ahead: 1 h shifts starting an hour before the next whole minute, the page
started just before that minute, its second step (ESCALATE_AFTER later) just after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from e2e_harness import (
    BOT_NICK,
    CHANNEL,
    HOST,
    HUMAN_NICK,
    Proc,
    Sandbox,
    Stack,
    make_errbot,
    start_ngircd,
    start_sandbox,
)
from e2e_ircclient import IrcClient

pytestmark = pytest.mark.e2e

ESCALATE_AFTER = 12  # seconds between the page's steps
ALICE, BOB = "+12125550161", "+12125550162"


@pytest.fixture(scope="module")
def rotation_stack(ngircd_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: errbot with a short ESCALATE_AFTER, two rounds (a page to one
    rotation has two steps)."""
    workdir = tmp_path_factory.mktemp("e2e-rotations")
    procs: list[Proc] = []
    human: IrcClient | None = None
    try:
        ngircd, irc_port = start_ngircd(workdir, ngircd_path)
        procs.append(ngircd)
        sandbox_proc, sandbox_url = start_sandbox(workdir)
        procs.append(sandbox_proc)
        errbot = make_errbot(workdir, irc_port, sandbox_url)
        assert errbot.env is not None
        errbot.env.update(
            {"ATT_ESCALATE_AFTER": str(ESCALATE_AFTER), "ATT_ESCALATE_ROUNDS": "2",
             "ATT_FOLLOW_UP": "false"}
        )  # fmt: skip
        procs.append(errbot)
        human = IrcClient(HOST, irc_port, HUMAN_NICK)
        human.connect()
        human.join(CHANNEL)
        stack = Stack(workdir, ngircd, irc_port, sandbox_proc, Sandbox(sandbox_url), errbot, human)
        stack.start_errbot()
        yield stack
    finally:
        if human is not None:
            human.close()
        for proc in reversed(procs):
            proc.stop()
            proc.assert_ports_free()


def test_a_page_step_after_a_real_handoff_pages_the_new_person(rotation_stack: Stack) -> None:
    stack = rotation_stack
    deadline = time.monotonic() + 30  # AttSms may still be opening its store after the probe
    while not any("No rotations yet" in line for line in stack.command("!sms rotations", "")):
        assert time.monotonic() < deadline, "AttSms never answered !sms rotations"
        time.sleep(1)
    stack.command(f"!sms contact add alice {ALICE}", "Contact alice")
    stack.command(f"!sms contact add bob {BOB}", "Contact bob")
    # The handoff: the first whole minute at least 20 s ahead (the store's clock is this
    # machine's: SQLite). Shifts of 1 h (the shortest) that started an hour before it.
    handoff = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (handoff - datetime.now(UTC)).total_seconds() < 20:
        handoff += timedelta(minutes=1)
    start = (handoff - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    lines = stack.command(
        f"!sms rotation add primary alice,bob --shift 1h --start {start} --tz UTC", "Rotation"
    )
    assert any("Now: alice is on call until" in line for line in lines), lines
    # Page a few seconds before the handoff: step 1 is alice's, step 2 (12 s later) bob's.
    time.sleep(max(0.0, handoff.timestamp() - 4 - time.time()))
    before = len(stack.sandbox.sent())
    mark = stack.human.mark()
    lines = stack.command("!sms page primary db1 down", "Page P1")
    assert time.time() < handoff.timestamp(), "the page started after the handoff: too slow"
    assert any("paged alice" in line and "for primary" in line for line in lines), lines
    found = stack.human.wait_for_messages(
        lambda ms: any("Page P1: nobody acknowledged" in m.text for m in ms),
        ESCALATE_AFTER * 2 + 20,
        "the page's second step and its end",
        since=mark,
        nick=BOT_NICK,
    )
    texts = [m.text for m in found]
    assert any("paged bob" in t and "for primary" in t for t in texts), texts
    sent = stack.sandbox.sent()[before:]
    pages = [list(s["addresses"]) for s in sent if s["message"].startswith("P1:")]
    assert pages == [[f"tel:{ALICE}"], [f"tel:{BOB}"]], sent
    # The handoff is posted in the channel once.
    stack.human.wait_for_messages(
        lambda ms: any("primary: bob is on call until" in m.text for m in ms),
        15,
        "the handoff post",
        since=mark,
        nick=BOT_NICK,
    )
    time.sleep(3)
    posts = [m.text for m in stack.human.messages(mark, BOT_NICK)]
    assert sum("primary: bob is on call until" in t and "(was alice)" in t for t in posts) == 1
