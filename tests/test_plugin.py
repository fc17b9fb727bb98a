"""The AttSms plugin in errbot's test backend, over real HTTP against the carrier sandbox."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botkit import Bot, sandbox_config

SEND = "POST /sms/v3/messaging/outbox"


@pytest.fixture
def bot(env: None, tmp_path: Path) -> Iterator[Bot]:
    b = Bot(data_dir=tmp_path / "data")
    yield b
    b.stop()


@pytest.fixture
def ready(bot: Bot, sandbox, client_id: str) -> Bot:
    """A bot configured for the sandbox, poller off (tests drive the inbox)."""
    assert bot.configure(sandbox_config(sandbox, client_id)) == "Plugin configuration done."
    return bot


def sends(sandbox) -> list[dict]:
    return sandbox.state()["sent"]


# ------------------------------------------------------------------ loading and help


def test_help_lists_every_command(bot: Bot) -> None:
    answer = bot.ask("!help AttSms")
    for command in ("sms send", "sms status", "sms inbox"):
        assert command in answer
    assert "<to>" in answer and "<messageId>" in answer and "<registrationId>" in answer


def test_unconfigured_commands_say_how_to_configure(bot: Bot) -> None:
    commands = (
        "!sms send +12125551234 hi",
        "!sms status abc",
        "!sms inbox",
        "!sms reply r1 hi",
        "!sms contact add alice +12125550101",
        "!sms contacts",
        "!sms group add team alice",
        "!sms groups",
        "!sms optouts",
        "!sms log",
        "!sms page +12125551234 hi",
        "!sms ack P1",
        "!sms cancel P1",
        "!sms pages",
        "!sms health",
    )
    for command in commands:
        answer = bot.ask(command)
        assert "not configured" in answer
        assert "!plugin config AttSms" in answer
        assert "ATT_CLIENT_SECRET" in answer


def test_unknown_subcommand_lists_the_commands(ready: Bot) -> None:
    answer = ready.ask("!sms frobnicate")
    assert "Unknown sms command 'frobnicate'" in answer
    assert "!sms send" in answer and "!sms status" in answer


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"API_BASE_URL": "ftp://carrier"}, "API_BASE_URL", "http(s) URL"),
        ({"API_BASE_URL": 42}, "API_BASE_URL", "string"),
        ({"CLIENT_ID": ""}, "CLIENT_ID", "missing"),
        ({"INBOX_ROUTES": ["#ops"]}, "INBOX_ROUTES", "dict"),
        ({"INBOX_ROUTES": {"reg": 5}}, "INBOX_ROUTES", "room or person"),
        ({"POLL_INTERVAL": "often"}, "POLL_INTERVAL", "number"),
        ({"POLL_INTERVAL": -1}, "POLL_INTERVAL", "between"),
        ({"MAX_PARTS": 0}, "MAX_PARTS", "between"),
        ({"MAX_PARTS": 2.5}, "MAX_PARTS", "whole number"),
        ({"DEFAULT_REGION": "XX"}, "DEFAULT_REGION", "unknown region"),
        ({"ALLOWED_REGIONS": ["US", "ZZ"]}, "ALLOWED_REGIONS", "unknown region"),
        ({"CLIENT_SECRET": "hunter2"}, "CLIENT_SECRET", "ATT_CLIENT_SECRET"),
        ({"COLOUR": "blue"}, "COLOUR", "unknown key"),
    ],
)
def test_wrong_configuration_is_refused_naming_the_key(
    bot: Bot, sandbox, client_id: str, change: dict, key: str, words: str
) -> None:
    config = sandbox_config(sandbox, client_id)
    config.update(change)
    answer = bot.configure(config)
    assert answer.startswith("Incorrect plugin configuration")
    assert key in answer and words in answer
    assert "hunter2" not in answer
    # errbot leaves the plugin unconfigured; a corrected config brings it back.
    assert bot.configure(sandbox_config(sandbox, client_id)) == "Plugin configuration done."
    assert bot.ask("!sms send +12125551234 hi").startswith("Sent to")


def test_routes_with_any_keys_are_accepted(bot: Bot, sandbox, client_id: str) -> None:
    config = sandbox_config(sandbox, client_id, INBOX_ROUTES={"a": "#one", "b": "@person"})
    assert bot.configure(config) == "Plugin configuration done."


def test_plugin_config_never_shows_the_secret(ready: Bot, client_secret: str) -> None:
    answer = ready.ask("!plugin config AttSms")
    assert "API_BASE_URL" in answer
    assert client_secret not in answer


def test_missing_secret_is_reported(bot: Bot, sandbox, client_id: str, monkeypatch) -> None:
    monkeypatch.delenv("ATT_CLIENT_SECRET")
    assert bot.configure(sandbox_config(sandbox, client_id)) == "Plugin configuration done."
    answer = bot.ask("!sms send +12125551234 hi")
    assert "not configured" in answer and "ATT_CLIENT_SECRET" in answer


def test_configuration_from_the_environment(
    env: None, tmp_path: Path, sandbox, client_id: str, monkeypatch
) -> None:
    monkeypatch.setenv("ATT_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("ATT_CLIENT_ID", client_id)
    monkeypatch.setenv("ATT_INBOX_ROUTES", '{"reg-ops": "#ops"}')
    monkeypatch.setenv("ATT_POLL_INTERVAL", "0")
    bot = Bot(data_dir=tmp_path / "data")
    try:
        assert bot.ask("!sms send +12125551234 from env").startswith("Sent to tel:+12125551234")
    finally:
        bot.stop()


# ------------------------------------------------------------------ !sms send


def test_send_one(ready: Bot, sandbox) -> None:
    answer = ready.ask('!sms send +12125551234 "db-1 is down"')
    sent = sends(sandbox)
    assert len(sent) == 1
    assert sent[0]["addresses"] == ["tel:+12125551234"]
    assert sent[0]["message"] == "db-1 is down"
    assert answer == f"Sent to tel:+12125551234: message id {sent[0]['messageId']}"


def test_without_threads_a_send_opens_no_conversation(ready: Bot, sandbox) -> None:
    """Issue 23: errbot's test backend has no threads; the answer is errbot's, as before."""
    answer = ready.ask("!sms send +12125551234 no threads here")
    assert answer.startswith("Sent to tel:+12125551234: message id ")
    assert ready.plugin.services.runtime.store.conversation_count() == 0


def test_send_many_recipients_in_one_request(ready: Bot, sandbox) -> None:
    answer = ready.ask('!sms send +12125551234,"(212) 555-0199",tel:+442079460018 db-1 is down')
    sent = sends(sandbox)
    assert len(sent) == 1
    assert sent[0]["addresses"] == ["tel:+12125551234", "tel:+12125550199", "tel:+442079460018"]
    assert "tel:+12125550199" in answer and sent[0]["messageId"] in answer


def test_duplicate_recipients_are_sent_once(ready: Bot, sandbox) -> None:
    ready.ask("!sms send +12125551234,212-555-1234,(212)5551234 hi")
    assert sends(sandbox)[0]["addresses"] == ["tel:+12125551234"]


def test_long_text_goes_in_parts(ready: Bot, sandbox) -> None:
    text = " ".join(f"word{i}" for i in range(60))  # about 420 characters
    answer = ready.ask(f"!sms send +12125551234 {text}")
    sent = sends(sandbox)
    assert len(sent) == 3
    assert [s["message"][:6] for s in sent] == ["(1/3) ", "(2/3) ", "(3/3) "]
    for s in sent:
        assert s["messageId"] in answer
    assert "3 parts" in answer


def test_too_many_parts_refused(ready: Bot, sandbox) -> None:
    answer = ready.ask("!sms send +12125551234 " + "x " * 400)
    assert answer.startswith("Not sent:") and "limit is 4" in answer
    assert sends(sandbox) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ("", "usage: !sms send"),
        ("+12125551234", "no message text"),
        ("12 hello", "'12'"),
        ("+19005550100 hello", "premium"),
        ("+12125551234,,+12125550199 hi", "empty recipient"),
        ('"(212) 555-1234 hi', "unbalanced"),
        ("notanumber hello", "'notanumber'"),
    ],
)
def test_bad_send_input_gets_one_line_and_sends_nothing(
    ready: Bot, sandbox, args: str, words: str
) -> None:
    answer = ready.ask(f"!sms send {args}")
    assert "\n" not in answer and "Traceback" not in answer
    assert words in answer
    assert sends(sandbox) == []


def test_allowed_regions_enforced(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, ALLOWED_REGIONS=["US"]))
    answer = bot.ask("!sms send +12125551234,+442079460018 hi")
    assert answer.startswith("Not sent:") and "+442079460018" in answer
    assert sends(sandbox) == []


def test_sender_address_is_passed(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, SENDER_ADDRESS="tel:+12125550000"))
    bot.ask("!sms send +12125551234 hi")
    assert sends(sandbox)[0]["senderAddress"] == "tel:+12125550000"


# ------------------------------------------------------------------ carrier errors on send


def test_carrier_400_shows_message_id_and_filled_text(ready: Bot, sandbox) -> None:
    body = {
        "RequestError": {
            "ServiceException": {
                "MessageId": "SVC0002",
                "Text": "Invalid input value for message part %1",
                "Variables": "message",
            }
        }
    }
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", status=400, body=body)
    answer = ready.ask("!sms send +12125551234 hi")
    assert answer.startswith("Not sent to tel:+12125551234: carrier refused it")
    assert "SVC0002" in answer and "Invalid input value for message part message" in answer
    assert "%1" not in answer


def test_policy_exception_is_shown(ready: Bot, sandbox) -> None:
    body = {
        "RequestError": {
            "PolicyException": {
                "MessageId": "POL0003",
                "Text": "Too many addresses specified in message part %1",
                "Variables": "address",
            }
        }
    }
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", status=400, body=body)
    answer = ready.ask("!sms send +12125551234 hi")
    assert "POL0003" in answer and "Too many addresses specified in message part address" in answer


def test_server_error_after_taking_the_message_is_not_resent(ready: Bot, sandbox) -> None:
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", status=500, when="after")
    answer = ready.ask("!sms send +12125551234 hi")
    assert "may or may not have gone out" in answer
    assert "\n" not in answer
    assert len(sends(sandbox)) == 1
    assert sandbox.state()["requests"][SEND] == 1


@pytest.mark.parametrize("when", ["before", "after"])
def test_429_is_reported_not_repeated(ready: Bot, sandbox, when: str) -> None:
    sandbox.add_fault(
        "/sms/v3/messaging/outbox",
        method="POST",
        status=429,
        headers={"Retry-After": "30"},
        when=when,
    )
    answer = ready.ask("!sms send +12125551234 hi")
    assert answer.startswith("Not sent to tel:+12125551234")
    assert "rate limit" in answer and "try again in 30 s" in answer and "\n" not in answer
    assert sandbox.state()["requests"][SEND] == 1  # never repeated by the plugin
    assert len(sends(sandbox)) == (1 if when == "after" else 0)


@pytest.mark.parametrize("when", ["before", "after"])
def test_503_on_send_never_duplicates(ready: Bot, sandbox, when: str) -> None:
    sandbox.add_fault(
        "/sms/v3/messaging/outbox",
        method="POST",
        status=503,
        headers={"Retry-After": "0"},
        when=when,
    )
    answer = ready.ask("!sms send +12125551234 hi")
    assert "may or may not have gone out" in answer and "\n" not in answer
    assert len(sends(sandbox)) == (1 if when == "after" else 0)
    assert sandbox.state()["requests"][SEND] == 1


def test_expired_token_is_refreshed_transparently(ready: Bot, sandbox) -> None:
    assert ready.ask("!sms send +12125551234 one").startswith("Sent to")
    sandbox.expire_tokens()
    assert ready.ask("!sms send +12125551234 two").startswith("Sent to")
    state = sandbox.state()
    assert state["tokenRequests"] == 2
    assert [s["message"] for s in state["sent"]] == ["one", "two"]


def test_wrong_credentials(bot: Bot, sandbox) -> None:
    bot.configure(sandbox_config(sandbox, "not-the-client"))
    answer = bot.ask("!sms send +12125551234 hi")
    assert answer.startswith("Not sent") and "\n" not in answer
    assert sends(sandbox) == []


def test_carrier_down_is_one_plain_line(bot: Bot, sandbox_factory, client_id: str) -> None:
    box = sandbox_factory()
    url = box.base_url
    box.stop()
    bot.configure({"API_BASE_URL": url, "CLIENT_ID": client_id, "POLL_INTERVAL": 0})
    started = time.monotonic()
    answer = bot.ask("!sms send +12125551234 hi", timeout=30)
    assert answer.startswith("Not sent") and "\n" not in answer and "Traceback" not in answer
    assert time.monotonic() - started < 15
    assert "Status not available" in bot.ask("!sms status abc", timeout=30)


def test_slow_carrier_does_not_block_other_commands(ready: Bot, sandbox) -> None:
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", delay=3.0)
    ready.push("!sms send +12125551234 slow")
    started = time.monotonic()
    assert "AttSms" in ready.ask("!help AttSms", timeout=10)
    assert time.monotonic() - started < 2.5
    assert ready.pop(timeout=15).startswith("Sent to")


# ------------------------------------------------------------------ !sms status


def test_status_in_words_and_api_names(ready: Bot, sandbox) -> None:
    answer = ready.ask("!sms send +12125551234,+12125559999,+12125558888 hi")
    message_id = sends(sandbox)[0]["messageId"]
    assert message_id in answer
    time.sleep(0.6)  # the sandbox's delivery delay is 0.3 s in tests
    status = ready.ask(f"!sms status {message_id}")
    assert "+1 212-555-1234: delivered to the phone (DeliveredToTerminal)" in status
    assert "+1 212-555-9999: could not be delivered (DeliveryImpossible)" in status
    assert "(MessageWaiting)" in status


def test_status_unknown_id(ready: Bot) -> None:
    answer = ready.ask("!sms status no-such-id")
    assert answer.startswith("No message 'no-such-id'") and "\n" not in answer


def test_status_usage(ready: Bot) -> None:
    assert "usage: !sms status <messageId>" in ready.ask("!sms status")
    assert "usage: !sms status <messageId>" in ready.ask("!sms status a b")


# ------------------------------------------------------------------ !sms inbox and the poller


def test_inbox_posts_to_the_route_once(ready: Bot, sandbox) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "On it")
    sandbox.inject_inbound("reg-ops", "tel:+12125559877", "Me too")
    answer = ready.ask("!sms inbox")
    assert answer.startswith("Inbox: 2 messages arrived")
    posts = ready.posts_containing("SMS from")
    assert [p[0] for p in posts] == ["#ops", "#ops"]
    assert "On it" in posts[0][1] and "+1 212-555-9876" in posts[0][1]
    assert ready.ask("!sms inbox reg-ops").startswith("Inbox: 0 messages arrived")
    assert len(ready.posts_containing("SMS from")) == 2


def test_inbox_unknown_registration(ready: Bot) -> None:
    answer = ready.ask("!sms inbox nope")
    assert "No route for registration 'nope'" in answer and "reg-ops" in answer


def test_inbox_carrier_404_reported(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, INBOX_ROUTES={"unknown-reg": "#ops"}))
    answer = bot.ask("!sms inbox")
    assert "unknown-reg" in answer and "\n" not in answer


def test_inbound_mentions_and_markup_are_neutralised(ready: Bot, sandbox) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "@channel <!everyone> *wake* \x07up")
    ready.ask("!sms inbox")
    (post,) = ready.posts_containing("SMS from")
    body = post[1]
    assert "@channel" not in body and "<!everyone>" not in body and "\x07" not in body


def test_poller_posts_each_message_once(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, POLL_INTERVAL=1))
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "poller one")
    assert len(bot.wait_for_posts("poller one", timeout=10)) == 1
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "poller two")
    assert len(bot.wait_for_posts("poller two", timeout=10)) == 1
    time.sleep(1.5)
    assert len(bot.posts_containing("poller one")) == 1
    assert len(bot.posts_containing("poller two")) == 1


def test_redelivered_message_is_not_posted_again(ready: Bot, sandbox) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "first copy", message_id="dup-1")
    ready.ask("!sms inbox")
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "first copy", message_id="dup-1")
    ready.ask("!sms inbox")
    assert len(ready.posts_containing("first copy")) == 1


def test_failing_poll_backs_off_and_recovers(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, POLL_INTERVAL=1))
    sandbox.add_fault("/sms/v3/messaging/inbox", status=500, count=40)
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "after the outage")
    time.sleep(2)
    assert bot.posts_containing("after the outage") == []
    requests_during_outage = sandbox.state()["requests"].get(
        "GET /sms/v3/messaging/inbox/{registrationId}", 0
    )
    # 2 s at 0.2 s would be 10 polls x 4 tries without backoff.
    assert 1 <= requests_during_outage < 30
    sandbox.clear_faults()
    assert len(bot.wait_for_posts("after the outage", timeout=20)) == 1


def test_unreachable_room_keeps_messages_until_it_works(ready: Bot, sandbox) -> None:
    ready.fail_sends = lambda body: "SMS from" in body
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "kept safe")
    answer = ready.ask("!sms inbox")
    assert "1 message arrived" in answer and "1 still waiting" in answer
    assert ready.posts_containing("kept safe") == []
    ready.fail_sends = None
    answer = ready.ask("!sms inbox")
    assert len(ready.posts_containing("kept safe")) == 1


def test_many_replies_are_combined(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, COMBINE_ABOVE=5))
    for i in range(12):
        sandbox.inject_inbound("reg-ops", f"tel:+1212555{1000 + i}", f"ack {i}")
    assert "12 messages arrived" in bot.ask("!sms inbox")
    posts = bot.posts_containing("SMS replies:")
    assert len(posts) == 1
    assert all(f"ack {i}" in posts[0][1] for i in range(12))


# ------------------------------------------------------------------ restart and concurrency


def test_restart_posts_stored_messages_once(
    env: None, tmp_path: Path, sandbox, client_id: str, monkeypatch
) -> None:
    monkeypatch.setenv("ATT_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("ATT_CLIENT_ID", client_id)
    monkeypatch.setenv("ATT_INBOX_ROUTES", '{"reg-ops": "#ops"}')
    monkeypatch.setenv("ATT_POLL_INTERVAL", "0")
    data = tmp_path / "shared-data"
    first = Bot(data_dir=data)
    try:
        first.fail_sends = lambda body: "SMS from" in body  # the chat is down
        sandbox.inject_inbound("reg-ops", "tel:+12125559876", "survives restart")
        assert "1 still waiting" in first.ask("!sms inbox")
        assert sandbox.state()["pendingInbound"].get("reg-ops", 0) == 0  # the carrier forgot it
    finally:
        first.stop()
    second = Bot(data_dir=data)
    try:
        assert len(second.wait_for_posts("survives restart", timeout=10)) == 1
        second.ask("!sms inbox")
        time.sleep(0.5)
        assert len(second.posts_containing("survives restart")) == 1
    finally:
        second.stop()


def test_concurrent_sends_and_poller_keep_storage_consistent(
    bot: Bot, sandbox, client_id: str
) -> None:
    bot.configure(sandbox_config(sandbox, client_id, POLL_INTERVAL=1))
    injector_done = threading.Event()

    def inject() -> None:
        for i in range(30):
            sandbox.inject_inbound("reg-ops", "tel:+12125559876", f"stream {i:02d}")
            time.sleep(0.02)
        injector_done.set()

    thread = threading.Thread(target=inject)
    thread.start()
    for i in range(20):
        bot.push(f"!sms send +12125551234 page {i}")
    bot.push("!sms inbox")
    replies = [bot.pop(timeout=30) for _ in range(21)]
    thread.join()
    assert sum(r.startswith("Sent to") for r in replies) == 20
    assert len(sends(sandbox)) == 20
    for i in range(30):
        assert len(bot.wait_for_posts(f"stream {i:02d}", timeout=10)) == 1
    counts = bot.plugin.services.runtime.store.counts()
    assert counts == {"pending": 0, "seen": 30}


def test_quick_reactivation_during_a_slow_poll_leaves_one_poller(
    bot: Bot, sandbox, client_id: str
) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "creates the registration")
    bot.configure(sandbox_config(sandbox, client_id, POLL_INTERVAL=1, FOLLOW_UP=False))
    sandbox.add_fault("/sms/v3/messaging/inbox", method="GET", delay=1.5, count=1)
    time.sleep(0.8)  # a poll is now stuck in the slow request
    assert "deactivated" in bot.ask("!plugin deactivate AttSms").lower()
    assert "activated" in bot.ask("!plugin activate AttSms").lower()
    time.sleep(1.5)
    path = "GET /sms/v3/messaging/inbox/{registrationId}"
    before = sandbox.state()["requests"].get(path, 0)
    time.sleep(4)
    polls = sandbox.state()["requests"].get(path, 0) - before
    assert 2 <= polls <= 6, polls  # one poll a second (POLL_INTERVAL 1)
    poll_tick = bot.plugin.services.inbound.tick
    pollers = [p for p in bot.plugin.current_pollers if p[1][1] == poll_tick]
    assert len(pollers) == 1
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "after reactivation")
    assert len(bot.wait_for_posts("after reactivation", timeout=5)) == 1
    time.sleep(1)
    assert len(bot.posts_containing("after reactivation")) == 1


def test_inbox_still_works_when_no_fetch_child_can_run(ready: Bot, sandbox, monkeypatch) -> None:
    from att_sms.inbound import fetcher

    monkeypatch.setattr(fetcher, "CHILD_COMMAND", [sys.executable, "-c", "raise SystemExit(3)"])
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "fetched in-process")
    assert "1 message arrived" in ready.ask("!sms inbox")
    assert len(ready.posts_containing("fetched in-process")) == 1
