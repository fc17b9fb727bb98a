"""On-call paging features in errbot's test backend against the sandbox: contacts, groups,
replies, delivery follow-up, opt-out, quotas, audit, and their state across a restart."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botkit import Bot, sandbox_config


def start_bot(data: Path, sandbox, client_id: str, **overrides) -> Bot:
    """A bot on persistent (shelf) storage, so state can be checked across restarts."""
    bot = Bot(data_dir=data, STORAGE="Shelf")
    config = sandbox_config(sandbox, client_id, FOLLOW_UP=False)
    config.update(overrides)
    assert bot.configure(config) == "Plugin configuration done."
    return bot


@pytest.fixture
def bot(env: None, tmp_path: Path, sandbox, client_id: str) -> Iterator[Bot]:
    b = start_bot(tmp_path / "data", sandbox, client_id)
    yield b
    b.stop()


def sent(sandbox) -> list[dict]:
    return sandbox.state()["sent"]


# ------------------------------------------------------------------ contacts and groups


def test_contacts_and_groups_resolve_and_deduplicate(bot: Bot, sandbox) -> None:
    assert bot.ask("!sms contact add alice +1 212 555 0101").startswith(
        "Contact alice is tel:+12125550101"
    )
    assert bot.ask("!sms contact add bob (212) 555-0102").startswith(
        "Contact bob is tel:+12125550102"
    )
    assert "alice" in bot.ask("!sms group add oncall alice bob +12125550103")
    contacts = bot.ask("!sms contacts")
    assert "alice +1 212-555-0101" in contacts and "bob +1 212-555-0102" in contacts
    assert "oncall: alice, bob" in bot.ask("!sms groups")
    answer = bot.ask("!sms send oncall,alice,212-555-0103 db-1 is down")
    assert answer.startswith("Sent to")
    (message,) = sent(sandbox)
    assert message["addresses"] == ["tel:+12125550101", "tel:+12125550102", "tel:+12125550103"]


def test_contact_refusals(bot: Bot, sandbox) -> None:
    assert bot.ask("!sms contact add").startswith("usage: !sms contact add")
    assert bot.ask("!sms contact add 12345 +12125550101").startswith("Contact not saved")
    assert "premium" in bot.ask("!sms contact add pay +19005550100")
    assert bot.ask("!sms contact remove nobody").startswith("Nothing removed")
    assert bot.ask("!sms group add team ghost").startswith("Group not changed")
    assert bot.ask("!sms send ghost hi").startswith("Not sent")
    assert sent(sandbox) == []


def test_group_remove_members_and_whole_group(bot: Bot) -> None:
    bot.ask("!sms contact add alice +12125550101")
    bot.ask("!sms group add team alice +12125550103")
    assert "Removed alice" in bot.ask("!sms group remove team alice")
    assert "team: tel:+12125550103" in bot.ask("!sms groups")
    assert bot.ask("!sms group remove team") == "Group team removed."
    assert bot.ask("!sms groups").startswith("No groups yet")
    assert "also removed" not in bot.ask("!sms contact remove alice")


def test_allowed_regions_apply_to_contacts_and_groups(bot: Bot, sandbox, client_id: str) -> None:
    bot.ask("!sms contact add london +442079460018")
    bot.ask("!sms group add intl london")
    assert bot.configure(
        sandbox_config(sandbox, client_id, ALLOWED_REGIONS=["US"], FOLLOW_UP=False)
    ) == ("Plugin configuration done.")
    for recipient in ("london", "intl"):
        answer = bot.ask(f"!sms send {recipient} hi")
        assert answer.startswith("Not sent") and "GB" in answer
    assert sent(sandbox) == []


def test_inbound_post_shows_the_contact_name(bot: Bot, sandbox) -> None:
    bot.ask("!sms contact add alice +12125559876")
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "on it")
    bot.ask("!sms inbox")
    (post,) = bot.posts_containing("on it")
    assert "(alice)" in post[1] and "+1 212-555-9876" in post[1]


# ------------------------------------------------------------------ replies


def test_reply_by_handle(bot: Bot, sandbox) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "is it down?")
    bot.ask("!sms inbox")
    (post,) = bot.posts_containing("is it down?")
    handle = re.search(r"\[#?(r[0-9a-z]+)\]", post[1]).group(1)
    answer = bot.ask(f"!sms reply {handle} yes, rolling back")
    assert answer.startswith("Sent to tel:+12125559876")
    assert sent(sandbox)[-1]["message"] == "yes, rolling back"
    assert "no inbound SMS with handle" in bot.ask("!sms reply rzzzz hello")
    assert bot.ask("!sms reply").startswith("usage: !sms reply")


# ------------------------------------------------------------------ delivery follow-up


def test_follow_up_posts_once_when_final(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, FOLLOW_UP=True))
    answer = bot.ask("!sms send +12125551234,+12125559999 db-1 is down")
    message_id = sent(sandbox)[0]["messageId"]
    assert message_id in answer
    updates = bot.wait_for_posts(f"Delivery of SMS {message_id}", timeout=15)
    assert len(updates) == 1
    target, text = updates[0]
    assert target == "gbin@localhost"  # where the send came from
    assert "delivered to the phone (DeliveredToTerminal)" in text
    assert "could not be delivered (DeliveryImpossible)" in text
    time.sleep(2.5)
    assert len(bot.posts_containing(f"Delivery of SMS {message_id}")) == 1


def test_follow_up_gives_up(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, FOLLOW_UP=True, FOLLOW_UP_LIMIT=3))
    bot.ask("!sms send +12125558888 are you there")
    message_id = sent(sandbox)[0]["messageId"]
    (update,) = bot.wait_for_posts(f"Stopped following SMS {message_id}", timeout=20)
    assert "(MessageWaiting)" in update[1]


def test_follow_up_off(bot: Bot, sandbox) -> None:
    bot.ask("!sms send +12125551234 hi")
    time.sleep(3)
    assert bot.posts_containing("Delivery of SMS") == []


# ------------------------------------------------------------------ opt-out


@pytest.mark.parametrize(
    "word", ["STOP", " stop ", "Unsubscribe", "cancel\n", "END", "quit", "STOPALL"]
)
def test_opt_out_words(bot: Bot, sandbox, word: str) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", word)
    bot.ask("!sms inbox")
    assert "+1 212-555-9876" in bot.ask("!sms optouts")


def test_opted_out_number_is_refused_others_still_get_it(bot: Bot, sandbox) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "STOP")
    bot.ask("!sms inbox")
    (post,) = bot.posts_containing("STOP")
    assert "opted out" in post[1]
    answer = bot.ask("!sms send +12125559876,+12125551234 page")
    assert answer.startswith("Sent to tel:+12125551234")
    assert "Not sent to tel:+12125559876: opted out" in answer
    assert sent(sandbox)[-1]["addresses"] == ["tel:+12125551234"]
    assert "every recipient opted out" in bot.ask("!sms send +12125559876 again")
    assert len(sent(sandbox)) == 1
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "start")
    bot.ask("!sms inbox")
    assert bot.ask("!sms optouts") == "No number has opted out."
    assert bot.ask("!sms send +12125559876 welcome back").startswith("Sent to")


def test_stop_inside_a_sentence_is_not_an_opt_out(bot: Bot, sandbox) -> None:
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "please stop the deploy")
    bot.ask("!sms inbox")
    assert bot.ask("!sms optouts") == "No number has opted out."


# ------------------------------------------------------------------ quotas


def test_rate_limit_per_user(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, RATE_LIMIT=2, FOLLOW_UP=False))
    assert bot.ask("!sms send +12125551234 one").startswith("Sent")
    assert bot.ask("!sms send +12125551234 two").startswith("Sent")
    answer = bot.ask("!sms send +12125551234 three")
    assert answer.startswith("Not sent") and "UTC" in answer and "\n" not in answer
    assert len(sent(sandbox)) == 2


def test_daily_limit_counts_parts(bot: Bot, sandbox, client_id: str) -> None:
    bot.configure(sandbox_config(sandbox, client_id, DAILY_LIMIT=3, FOLLOW_UP=False, DEDUP_WINDOW=0))
    long_text = " ".join(f"word{i}" for i in range(40))  # two parts
    assert "2 parts" in bot.ask(f"!sms send +12125551234 {long_text}")
    answer = bot.ask(f"!sms send +12125551234 {long_text}")
    assert answer.startswith("Not sent") and "resets" in answer.lower()
    assert bot.ask("!sms send +12125551234 short").startswith("Sent")
    assert len(sent(sandbox)) == 3


# ------------------------------------------------------------------ audit


def test_audit_log(bot: Bot, sandbox) -> None:
    bot.ask("!sms send +12125551234 first")
    sandbox.add_fault("/sms/v3/messaging/outbox", method="POST", status=500, when="after")
    bot.ask("!sms send +12125551234 second")
    log = bot.ask("!sms log 5")
    lines = log.splitlines()
    assert len(lines) == 2
    first_id = sent(sandbox)[0]["messageId"]
    assert "gbin" in lines[0] and "tel:+12125551234" in lines[0] and first_id in lines[0]
    assert lines[0].endswith("sent")
    assert "uncertain" in lines[1]
    assert bot.ask("!sms log x").startswith("usage: !sms log")


# ------------------------------------------------------------------ state survives a restart


def test_state_survives_restart(env: None, tmp_path: Path, sandbox, client_id: str) -> None:
    data = tmp_path / "data"
    first = start_bot(data, sandbox, client_id)
    try:
        first.ask("!sms contact add alice +12125550101")
        first.ask("!sms group add oncall alice")
        sandbox.inject_inbound("reg-ops", "tel:+12125559876", "STOP")
        first.ask("!sms inbox")
        first.ask("!sms send oncall before restart")
    finally:
        first.stop()
    second = Bot(data_dir=data, STORAGE="Shelf")  # config comes back from storage too
    try:
        assert "alice +1 212-555-0101" in second.ask("!sms contacts")
        assert "oncall: alice" in second.ask("!sms groups")
        assert "+1 212-555-9876" in second.ask("!sms optouts")
        assert "before restart" not in second.ask("!sms log")  # texts are not logged
        assert "tel:+12125550101" in second.ask("!sms log")
        assert second.ask("!sms send oncall after restart").startswith("Sent to tel:+12125550101")
    finally:
        second.stop()


def test_senders_without_plus_still_opt_out_and_show_names(bot: Bot, sandbox) -> None:
    """Historical carriers sent national-looking ``tel:2125559876`` sender addresses."""
    bot.ask("!sms contact add alice +12125559876")
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "hello")
    sandbox.add_fault(
        "/sms/v3/messaging/inbox",
        method="GET",
        status=200,
        body={
            "InboundSmsMessageList": {
                "InboundSmsMessage": [
                    {"MessageId": "h1", "Message": "STOP", "SenderAddress": "tel:2125559876"}
                ],
                "NumberOfMessagesInThisBatch": "1",
                "TotalNumberOfPendingMessages": "0",
            }
        },
    )
    bot.ask("!sms inbox")
    (post,) = bot.posts_containing("STOP")
    assert "(alice)" in post[1] and "opted out" in post[1]
    assert "+1 212-555-9876" in bot.ask("!sms optouts")
    assert "every recipient opted out" in bot.ask("!sms send alice hi")
