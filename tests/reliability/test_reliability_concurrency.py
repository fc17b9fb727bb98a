"""Concurrency: many simultaneous sends on a cold token cache; sends while the poller runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliakit
from botkit import sandbox_config
from reliakit import RecBot, one_clear_line, unhandled_errors

from carrier_sandbox import Sandbox

SENDS = 50
INBOUND = 120


@pytest.fixture
def make_bot(env: None, tmp_path: Path) -> Iterator[Any]:
    bots: list[RecBot] = []

    def make(**config: Any) -> RecBot:
        bot = RecBot(data_dir=tmp_path / f"data{len(bots)}", **config)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.stop()


def test_fifty_simultaneous_sends_one_token(
    make_bot: Any, sandbox: Sandbox, client_id: str
) -> None:
    bot = make_bot(BOT_ASYNC_POOLSIZE=SENDS)
    assert bot.configure(sandbox_config(sandbox, client_id, FOLLOW_UP=False)) == (
        "Plugin configuration done."
    )
    assert sandbox.state()["tokenRequests"] == 0  # cold: no token fetched yet
    mark = reliakit.CAPTURE.mark()
    started = time.monotonic()
    for i in range(SENDS):
        bot.push(f"!sms send +1212555{1000 + i} concurrent page {i:02d}")
    replies = [bot.pop(timeout=60) for _ in range(SENDS)]
    seconds = time.monotonic() - started
    state = sandbox.state()
    sent = state["sent"]
    audit = bot.plugin.services.runtime.store.last_audit(1000)
    with bot.plugin.services.runtime.store.transaction() as tx:
        billed = tx.scalar("SELECT SUM(units) FROM att_sends", default=0)
    audit_ids = sorted(i for entry in audit for i in entry["message_ids"])
    reply_ids = sorted(r.rsplit(" ", 1)[1] for r in replies if r.startswith("Sent to"))
    reliakit.FIGURES.setdefault("concurrency", {})["simultaneous_sends"] = {
        "sends": SENDS,
        "token_requests": state["tokenRequests"],
        "carrier_sends": len(sent),
        "sent_to_replies": sum(r.startswith("Sent to") for r in replies),
        "connections": state["connections"],
        "audit_entries": len(audit),
        "seconds": round(seconds, 2),
    }
    assert all(one_clear_line(r) for r in replies)
    assert all(r.startswith("Sent to") for r in replies), [r for r in replies if "Sent" not in r]
    assert state["tokenRequests"] == 1
    assert len(sent) == SENDS
    assert sorted(s["message"] for s in sent) == sorted(
        f"concurrent page {i:02d}" for i in range(SENDS)
    )
    carrier_ids = sorted(s["messageId"] for s in sent)
    assert reply_ids == carrier_ids  # every reply names its own message
    assert audit_ids == carrier_ids and len(audit) == SENDS  # no lost read-modify-write
    assert billed == SENDS  # one part x one recipient each, counted once
    assert unhandled_errors(mark) == []


def test_sends_while_the_poller_streams_inbound(
    make_bot: Any, sandbox: Sandbox, client_id: str
) -> None:
    bot = make_bot(BOT_ASYNC_POOLSIZE=20)
    config = sandbox_config(sandbox, client_id, POLL_INTERVAL=1, FOLLOW_UP=False)
    assert bot.configure(config) == "Plugin configuration done."
    mark = reliakit.CAPTURE.mark()
    done = threading.Event()

    def inject() -> None:
        for i in range(INBOUND):
            sandbox.inject_inbound("reg-ops", f"tel:+1212555{2000 + i % 50}", f"stream {i:03d}")
            time.sleep(0.01)
        done.set()

    started = time.monotonic()
    thread = threading.Thread(target=inject)
    thread.start()
    for i in range(SENDS):
        bot.push(f"!sms send +12125551234 during polling {i:02d}")
        if i % 10 == 9:
            bot.push("!sms inbox")  # manual fetches race the poller too
    replies = [bot.pop(timeout=60) for _ in range(SENDS + SENDS // 10)]
    thread.join()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(bot.posts_containing(f"stream {i:03d}") for i in range(INBOUND)):
            break
        time.sleep(0.1)
    time.sleep(1.0)  # a few more polls: nothing may be posted twice
    counts = [len(bot.posts_containing(f"stream {i:03d}")) for i in range(INBOUND)]
    ledger = bot.plugin.services.runtime.store.counts()
    seconds = time.monotonic() - started
    reliakit.FIGURES.setdefault("concurrency", {})["sends_during_polling"] = {
        "sends": SENDS,
        "inbox_commands": SENDS // 10,
        "inbound": INBOUND,
        "posted_once": counts.count(1),
        "posted_more": sum(c > 1 for c in counts),
        "missing": counts.count(0),
        "carrier_sends": len(sandbox.state()["sent"]),
        "ledger": ledger,
        "seconds": round(seconds, 2),
    }
    assert all(one_clear_line(r) for r in replies)
    assert sum(r.startswith("Sent to") for r in replies) == SENDS
    assert sum(r.startswith("Inbox:") for r in replies) == SENDS // 10
    assert len(sandbox.state()["sent"]) == SENDS
    assert counts == [1] * INBOUND
    assert ledger == {"pending": 0, "seen": INBOUND}
    assert unhandled_errors(mark) == []
