"""Acceptance on a real chat server: ngircd + errbot (IRC backend) + AttSms + carrier sandbox.

A second IRC client plays the person in #oncall. The tests run in file order on one stack;
the SIGKILL test is last because it restarts errbot.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import Counter

import pytest
from e2e_harness import BOT_NICK, CHANNEL, Stack
from e2e_ircclient import ChannelMessage

pytestmark = pytest.mark.e2e

POLL_INTERVAL = 1.0  # ATT_POLL_INTERVAL given to errbot
RECIPIENT = "+12125551234"
RECIPIENT_TEL = "tel:+12125551234"


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def marker(prefix: str) -> str:
    """A plain alphanumeric marker that no formatting or neutralising can alter."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def count_markers(messages: list[ChannelMessage], markers: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for message in messages:
        for m in markers:
            counts[m] += message.text.count(m)
    return counts


def test_core_commands_answer_in_channel(stack: Stack) -> None:
    """The harness itself: errbot is in #oncall and answers core commands there."""
    lines = stack.command("!echo hi", "hi")
    assert any(line.strip() == "hi" for line in lines), lines
    mark = stack.human.say(CHANNEL, "!status")
    found = stack.human.wait_for_messages(
        lambda ms: any("AttSms" in m.text for m in ms),
        15,
        "!status listing the AttSms plugin",
        since=mark,
        nick=BOT_NICK,
    )
    # errbot marks active plugins "A"; AttSms must be loaded and active (not C, D or B)
    rows = [m.text for m in found if "AttSms" in m.text]
    assert any(re.fullmatch(r"\s*A\s+AttSms\s*", row) for row in rows), rows


def test_send_then_status(stack: Stack) -> None:
    before = stack.sandbox.sent()
    lines = stack.command(f"!sms send {RECIPIENT} e2e hello", "message id")
    reply = "\n".join(lines)

    after = stack.sandbox.sent()
    new = after[len(before) :]
    assert len(new) == 1, f"expected exactly one send at the carrier, got {new!r}"
    sent = new[0]
    assert sent["message"] == "e2e hello", sent
    assert list(sent["addresses"]) == [RECIPIENT_TEL], sent
    message_id = str(sent["messageId"])
    assert message_id and message_id in reply, (message_id, reply)
    assert "12125551234" in digits(reply), reply  # the normalised recipient is shown

    time.sleep(2)  # no second send and no repeated reply
    assert len(stack.sandbox.sent()) == len(after)

    lines = stack.command(f"!sms status {message_id}", message_id)
    status = "\n".join(lines)
    assert "12125551234" in digits(status), status
    assert re.search(r"Delivered|Waiting|Impossible|delivered|waiting", status), status


def test_inbound_posted_once(stack: Stack) -> None:
    text = marker("inbound")
    sender = "+12125550142"
    mark = stack.human.mark()
    injected_at = time.monotonic()
    stack.inject(f"tel:{sender}", f"e2e {text}", text)
    deadline = POLL_INTERVAL + 5
    found = stack.human.wait_for_messages(
        lambda ms: any(text in m.text for m in ms),
        deadline,
        f"the inbound SMS {text!r} in {CHANNEL}",
        since=mark,
        nick=BOT_NICK,
    )
    took = time.monotonic() - injected_at
    line = next(m.text for m in found if text in m.text)
    assert digits(sender) in digits(line), line
    assert took <= deadline

    time.sleep(POLL_INTERVAL * 4)  # several more polls: it must not come back
    posted = stack.human.messages(mark, BOT_NICK)
    assert count_markers(posted, [text])[text] == 1, [m.text for m in posted]


def wait_for_quiet(stack: Stack, since: int, quiet: float, timeout: float) -> None:
    """Wait until the bot has said nothing for ``quiet`` seconds (it sits between two polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        said = stack.human.messages(since, BOT_NICK)
        if not said or time.time() - said[-1].at >= quiet:
            return
        time.sleep(0.02)
    raise AssertionError(f"the bot never paused for {quiet}s within {timeout}s")


def test_sigkill_during_inbound_stream_loses_and_repeats_nothing(stack: Stack) -> None:
    """SIGKILL errbot while inbound SMS keep arriving; after a restart each is posted once.

    The kill lands mid-stream, in a pause between two posting bursts (the bot idles between
    polls). Set E2E_KILL_ON_POST=1 to kill instead the instant a post is seen: that hits the
    window between a post and its ledger commit, which by design re-posts that one message
    after the restart (at-least-once), so the test then reports it as repeated.
    """
    kill_on_post = os.environ.get("E2E_KILL_ON_POST") == "1"
    total, span = 30, 10.0
    run = uuid.uuid4().hex[:6]
    markers = [f"kill{run}n{i:02d}" for i in range(total)]
    sender = "tel:+12125550177"
    mark = stack.human.mark()
    injected: list[str] = []
    failures: list[BaseException] = []

    def inject_steadily() -> None:
        try:
            for m in markers:
                stack.inject(sender, f"stream {m}", m)
                injected.append(m)
                time.sleep(span / total)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    injector = threading.Thread(target=inject_steadily, name="e2e-injector", daemon=True)
    injector.start()
    # Kill mid-stream, once the bot has demonstrably posted part of it.
    stack.human.wait_for_messages(
        lambda ms: sum(count_markers(ms, markers).values()) >= 5,
        POLL_INTERVAL + 15,
        "the first inbound messages of the stream",
        since=mark,
        nick=BOT_NICK,
    )
    if not kill_on_post:
        wait_for_quiet(stack, mark, quiet=0.3, timeout=5)
    stack.sigkill_errbot()
    killed_after = len(injected)
    restart_took = stack.start_errbot()
    injector.join(timeout=span + 30)
    assert not injector.is_alive(), "the injector thread hung"
    assert not failures, failures
    assert injected == markers
    assert killed_after < total, "the kill came after the whole stream was injected"

    stack.human.wait_for_messages(
        lambda ms: all(count_markers(ms, markers)[m] >= 1 for m in markers),
        POLL_INTERVAL + 30,
        "every injected message after the restart",
        since=mark,
        nick=BOT_NICK,
    )
    time.sleep(POLL_INTERVAL * 4)  # let any duplicate arrive
    counts = count_markers(stack.human.messages(mark, BOT_NICK), markers)
    repeated = {m: n for m, n in counts.items() if n > 1}
    missing = [m for m in markers if counts[m] == 0]
    assert not missing and not repeated, (
        f"missing={missing} repeated={repeated} (killed after {killed_after} injected,"
        f" restart took {restart_took:.1f}s)"
    )
    # nothing injected earlier on this stack was posted again by the restarted bot
    everything = count_markers(stack.human.messages(0, BOT_NICK), stack.injected)
    assert {m: n for m, n in everything.items() if n != 1} == {}, everything
