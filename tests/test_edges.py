"""Issue 15's edges, through the plugin in errbot's test backend against the sandbox:
odd inbound items, backlogs, a broken route, STOP at storage time, bad numbers in a page,
quotas that count only what is billed, exact replies, reconfiguration mid-send, echoes."""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botkit import REPO_ROOT, Bot, sandbox_config

SEND = "POST /sms/v3/messaging/outbox"
INBOX = "GET /sms/v3/messaging/inbox/{registrationId}"


@pytest.fixture
def bot(env: None, tmp_path: Path) -> Iterator[Bot]:
    b = Bot(data_dir=tmp_path / "data")
    yield b
    b.stop()


def configure(bot: Bot, sandbox, client_id: str, **overrides) -> None:
    config = sandbox_config(sandbox, client_id, FOLLOW_UP=False, **overrides)
    assert bot.configure(config) == "Plugin configuration done."


def sent(sandbox) -> list[dict]:
    return sandbox.state()["sent"]


# ------------------------------------------------------------------ 1. odd items, any type


def test_an_odd_item_does_not_cost_the_batch(bot: Bot, sandbox, client_id: str) -> None:
    configure(bot, sandbox, client_id)
    sandbox.add_registration("reg-ops")
    body = {
        "InboundSmsMessageList": {
            "InboundSmsMessage": [
                {"MessageId": "h-1", "Message": "first", "SenderAddress": "tel:+12125550101"},
                {"Message": "no id at all", "SenderAddress": "tel:2125550102"},
                "not an object",
                {"MessageId": "h-3"},  # neither text nor sender
                {"MessageId": "h-4", "Message": "fourth", "SenderAddress": "2125550104"},
            ],
            "NumberOfMessagesInThisBatch": "5",
            "TotalNumberOfPendingMessages": "0",
        }
    }
    sandbox.inject_raw_inbox("reg-ops", body, content_type="text/plain")
    answer = bot.ask("!sms inbox")
    assert "3 messages arrived" in answer, answer
    for text in ("first", "no id at all", "fourth"):
        assert len(bot.wait_for_posts(text)) == 1
    assert bot.plugin.services.runtime.store.counts() == {"pending": 0, "seen": 3}


def test_json_with_a_charset_or_no_type_is_read(bot: Bot, sandbox, client_id: str) -> None:
    configure(bot, sandbox, client_id)
    sandbox.add_registration("reg-ops")
    item = {"messageId": "c-1", "message": "charset", "senderAddress": "tel:+12125550101"}
    sandbox.inject_raw_inbox(
        "reg-ops", {"inboundSMSMessageList": {"inboundSMSMessage": [item]}},
        content_type="application/json;charset=UTF-8",
    )  # fmt: skip
    item2 = {**item, "messageId": "c-2", "message": "untyped"}
    sandbox.inject_raw_inbox(
        "reg-ops", {"inboundSMSMessageList": {"inboundSMSMessage": [item2]}}, content_type=None
    )
    assert "2 messages arrived" in bot.ask("!sms inbox")
    assert bot.wait_for_posts("charset") and bot.wait_for_posts("untyped")


# ------------------------------------------------------------------ 2. a backlog in one go


def test_a_backlog_is_drained_in_one_go(bot: Bot, sandbox_factory, client_id: str) -> None:
    box = sandbox_factory(inbox_batch=4)
    configure(bot, box, client_id)
    for i in range(18):
        box.inject_inbound("reg-ops", "tel:+12125559876", f"backlog {i:02d}")
    answer = bot.ask("!sms inbox")
    assert "18 messages arrived" in answer, answer
    assert box.state()["pendingInbound"].get("reg-ops", 0) == 0


# ------------------------------------------------------------------ 3. one broken route


def test_a_broken_route_backs_off_alone(bot: Bot, sandbox, client_id: str) -> None:
    sandbox.add_registration("reg-ops")  # reg-gone is unknown: the carrier answers 404
    configure(
        bot, sandbox, client_id, POLL_INTERVAL=1,
        INBOX_ROUTES={"reg-ops": "#ops", "reg-gone": "#gone"},
    )  # fmt: skip
    time.sleep(0.5)
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "healthy route")
    assert bot.wait_for_posts("healthy route", timeout=5)
    before = sandbox.state()["requests"].get(INBOX, 0)
    time.sleep(6)
    polls = sandbox.state()["requests"].get(INBOX, 0) - before
    # reg-ops: about 6 polls in 6 s; reg-gone: backing off (2, 4, 8 s...): at most 2
    routes = bot.plugin.services.inbound.routes
    assert routes["reg-gone"].failures >= 2 and routes["reg-ops"].failures == 0
    assert 5 <= polls <= 10, polls
    answer = bot.ask("!sms inbox reg-ops")
    assert "reg-ops: 0 new" in answer and "reg-gone is failing since" in answer


# ------------------------------------------------------------------ 4. STOP when stored


@pytest.mark.parametrize("sender", ["tel:2125550199", "2125550199", "tel:+12125550199"])
def test_stop_blocks_the_next_send_before_it_is_posted(
    bot: Bot, sandbox, client_id: str, sender: str
) -> None:
    configure(bot, sandbox, client_id)
    bot.fail_sends = lambda body: "SMS from" in body  # the room cannot be posted to
    sandbox.inject_inbound("reg-ops", sender, "STOP")
    bot.ask("!sms inbox")
    assert bot.plugin.services.runtime.store.counts()["pending"] == 1  # stored, not posted
    answer = bot.ask("!sms send 212-555-0199 are you there")
    assert answer.startswith("Not sent: every recipient opted out"), answer
    assert sent(sandbox) == []


# ------------------------------------------------------------------ 6. bad numbers, many recipients


def test_one_bad_number_does_not_stop_a_page(bot: Bot, sandbox, client_id: str) -> None:
    configure(bot, sandbox, client_id)
    bot.ask("!sms group add team +12125550101 +12125550000 +12125550102")
    answer = bot.ask("!sms send team db-1 is down")
    assert "Sent to tel:+12125550101, tel:+12125550102" in answer, answer
    assert "Not sent to tel:+12125550000: carrier refused it: SVC0001" in answer
    taken = sorted(a for s in sent(sandbox) for a in s["addresses"])
    assert taken == ["tel:+12125550101", "tel:+12125550102"]


def test_never_more_recipients_per_request_than_the_carrier_takes(
    bot: Bot, sandbox, client_id: str
) -> None:
    configure(bot, sandbox, client_id, MAX_RECIPIENTS=10)
    numbers = ",".join(f"+1212555{2000 + i}" for i in range(25))
    assert bot.ask(f"!sms send {numbers} all hands").startswith("Sent to")
    sizes = sorted(len(s["addresses"]) for s in sent(sandbox))
    assert sizes == [5, 10, 10]


# ------------------------------------------------------------------ 7. quotas count what is billed


def test_a_refused_send_counts_nothing(bot: Bot, sandbox, client_id: str) -> None:
    configure(bot, sandbox, client_id, RATE_LIMIT=1, DAILY_LIMIT=2)
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", status=429, count=1)
    assert bot.ask("!sms send +12125551234 during the outage").startswith("Not sent")
    assert bot.ask("!sms send +12125551234 after the outage").startswith("Sent to")


def test_daily_limit_counts_parts_times_recipients(bot: Bot, sandbox, client_id: str) -> None:
    configure(bot, sandbox, client_id, DAILY_LIMIT=3)
    answer = bot.ask("!sms send +12125550101,+12125550102,+12125550103,+12125550104 hello")
    assert answer.startswith("Not sent: daily limit of 3 parts"), answer
    assert bot.ask("!sms send +12125550101,+12125550102,+12125550103 hello").startswith("Sent")
    assert bot.ask("!sms send +12125550101 again").startswith("Not sent: daily limit reached")


# ------------------------------------------------------------------ 8. replies go to that sender


def test_reply_to_an_alphanumeric_sender_never_pages_a_group(
    bot: Bot, sandbox, client_id: str
) -> None:
    configure(bot, sandbox, client_id)
    bot.ask("!sms group add oncall +12125550101")
    sandbox.inject_inbound("reg-ops", "oncall", "hello from a sender id")
    bot.ask("!sms inbox")
    (post,) = bot.wait_for_posts("hello from a sender id")
    handle = re.search(r"\[#(r\w+)\]", post[1]).group(1)
    answer = bot.ask(f"!sms reply {handle} thanks")
    assert answer.startswith("Not sent: the sender") and "not a phone number" in answer
    assert sent(sandbox) == []


def test_reply_goes_from_the_number_the_inbound_was_sent_to(
    bot: Bot, sandbox, client_id: str
) -> None:
    configure(bot, sandbox, client_id, SENDER_ADDRESS="tel:+12125550900")
    sandbox.inject_inbound(
        "reg-ops", "tel:2125550123", "who is this", destination_address="tel:+12125550777"
    )
    bot.ask("!sms inbox")
    (post,) = bot.wait_for_posts("who is this")
    handle = re.search(r"\[#(r\w+)\]", post[1]).group(1)
    assert bot.ask(f"!sms reply {handle} the on-call bot").startswith("Sent to tel:+12125550123")
    assert post[1].startswith("SMS from +1 212-555-0123 at ")  # shown as a number, with +
    (message,) = sent(sandbox)
    assert message["addresses"] == ["tel:+12125550123"]
    assert message["senderAddress"] == "tel:+12125550777"


# ------------------------------------------------------------------ 9. deactivation mid-send


def test_a_send_in_flight_through_a_deactivation_gets_its_reply_and_audit(
    bot: Bot, sandbox, client_id: str
) -> None:
    configure(bot, sandbox, client_id)
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", when="after", delay=1.5)
    bot.push("!sms send +12125551234 slow page")
    time.sleep(0.5)
    bot.push("!plugin deactivate AttSms")
    answers = [bot.pop(timeout=20), bot.pop(timeout=20)]
    reply = next(a for a in answers if "slow page" in a or "Sent to" in a or "Not sent" in a)
    assert reply.startswith("Sent to tel:+12125551234: message id"), answers
    assert "Computer says" not in " ".join(answers)
    assert "activated" in bot.ask("!plugin activate AttSms").lower()
    (entry,) = bot.plugin.services.runtime.store.last_audit(5)
    assert entry["outcome"] == "sent" and entry["message_ids"] == [sent(sandbox)[0]["messageId"]]


@pytest.fixture
def own_modules() -> Iterator[None]:
    """Give back the package's modules and sys.path as they were: the test loads another
    copy of the package, and later tests hold references to this process's modules."""
    saved = {n: m for n, m in sys.modules.items() if n == "att_sms" or n.startswith("att_sms.")}
    path = list(sys.path)
    yield
    for name in [n for n in sys.modules if n == "att_sms" or n.startswith("att_sms.")]:
        del sys.modules[name]
    sys.modules.update(saved)
    sys.path[:] = path


def test_plugin_reload_loads_the_whole_package(
    env: None, tmp_path: Path, sandbox, client_id: str, own_modules: None
) -> None:
    copy = tmp_path / "plugin"
    shutil.copytree(
        REPO_ROOT / "plugins", copy / "plugins", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO_ROOT / "plugin.plug", copy / "plugin.plug")
    b = Bot(data_dir=tmp_path / "data", plugin_dir=copy)
    try:
        assert b.configure(sandbox_config(sandbox, client_id)) == "Plugin configuration done."
        assert "Unknown sms command" in b.ask("!sms nothing")
        module = copy / "plugins" / "att_sms" / "text" / "formatting.py"
        text = module.read_text()
        module.write_text(
            text.replace(
                "def echo(text: str, limit: int = 60) -> str:\n",
                'def echo(text: str, limit: int = 60) -> str:\n    return "RELOADED"\n',
                1,
            )
        )
        time.sleep(0.05)
        assert "reloaded" in b.ask("!plugin reload AttSms").lower()
        assert "RELOADED" in b.ask("!sms nothing")
    finally:
        b.stop()


# ------------------------------------------------------------------ 10. echoes are inert


def test_user_input_echoed_in_errors_is_neutralised(bot: Bot, sandbox, client_id: str) -> None:
    configure(bot, sandbox, client_id)
    answer = bot.ask("!sms <!channel>")
    assert "<!channel>" not in answer and "Unknown sms command" in answer
    answer = bot.ask("!sms send <!here>,+12125551234 hi")
    assert answer.startswith("Not sent") and "<!here>" not in answer
    answer = bot.ask("!sms reply <@U0123ABCD> hi")
    assert "<@U0123ABCD>" not in answer


# ------------------------------------------------------------------ 12. requirements fit the bot


def test_requirements_are_ranges_and_pins_live_in_constraints() -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
    ]
    lines = [line for line in lines if line]
    assert lines and not any(line.lower().startswith("errbot") for line in lines)
    assert not any("==" in line for line in lines), lines
    pins = (REPO_ROOT / "constraints.txt").read_text()
    assert "errbot==6.2.1" in pins
    for line in lines:
        name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        assert re.search(rf"^{re.escape(name)}==", pins.lower().replace("_", "-"), re.M), name


def test_concurrent_sends_and_a_reconfiguration_lose_nothing(
    bot: Bot, sandbox, client_id: str
) -> None:
    configure(bot, sandbox, client_id)
    done = threading.Event()
    for i in range(5):
        bot.push(f"!sms send +1212555{3000 + i} reconfigured {i}")
    bot.push(f"!plugin config AttSms {sandbox_config(sandbox, client_id, FOLLOW_UP=False)!r}")
    answers = [bot.pop(timeout=30) for _ in range(6)]
    done.set()
    sends = [a for a in answers if a.startswith(("Sent to", "Not sent"))]
    assert len(sends) == 5
    ok = [a for a in sends if a.startswith("Sent to")]
    assert len(ok) == len(sent(sandbox))  # every send the carrier took was reported as sent
