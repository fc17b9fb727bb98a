"""Where a conversation's post goes (issue 23): the plain rules and their settings."""

from __future__ import annotations

import pytest
from att_sms.chat.conversations import (
    DEFAULT_THREAD_BROADCAST,
    EVERY_REPLY,
    FIRST_REPLY,
    PAGE_ACK,
    Placement,
    ack_mark,
    group_by_number,
    inbound_placement,
    pick_reply_number,
    reply_broadcast,
    thread_gone,
)
from att_sms.setting_values import SettingsError
from att_sms.settings import parse_settings

BASE = {"API_BASE_URL": "http://127.0.0.1:8080", "CLIENT_ID": "id"}
ENV = {"ATT_CLIENT_SECRET": "s"}
DEFAULT = frozenset(DEFAULT_THREAD_BROADCAST)


def test_an_inbound_sms_without_an_active_thread_is_a_new_root() -> None:
    assert inbound_placement(None, 0, DEFAULT) == Placement(None)
    assert Placement(None).root


def test_the_first_answer_to_the_bot_is_shown_in_the_channel_the_rest_stay_in_the_thread() -> None:
    assert inbound_placement("1.1", 0, DEFAULT) == Placement("1.1", True)
    assert inbound_placement("1.1", 1, DEFAULT) == Placement("1.1", False)
    assert inbound_placement("1.1", 0, frozenset()) == Placement("1.1", False)
    assert inbound_placement("1.1", 5, frozenset({EVERY_REPLY})) == Placement("1.1", True)
    assert reply_broadcast(PAGE_ACK, DEFAULT) and not reply_broadcast("follow_up", DEFAULT)


def test_slack_errors_that_end_a_thread() -> None:
    for code in ("thread_not_found", "message_not_found", "is_archived"):
        assert thread_gone(code)
    for code in ("not_in_channel", "ratelimited", "channel_not_found", ""):
        assert not thread_gone(code)


def test_messages_are_grouped_by_number_in_order() -> None:
    messages = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
    assert group_by_number(messages, lambda m: m[0]) == [
        ("a", [("a", 1), ("a", 3)]), ("b", [("b", 2), ("b", 5)]), ("c", [("c", 4)]),
    ]  # fmt: skip


def test_a_reply_in_a_thread_needs_exactly_one_number() -> None:
    assert pick_reply_number(["tel:+1", "tel:+1"]) == ("tel:+1", None)
    number, problem = pick_reply_number([])
    assert number is None and "not an SMS conversation" in str(problem)
    number, problem = pick_reply_number(["tel:+1", "tel:+2"])
    assert number is None and "2 numbers" in str(problem)
    assert ack_mark("P1", "x") == ack_mark("P1", "x") != ack_mark("P1", "y")


def test_settings_defaults_and_refusals() -> None:
    settings = parse_settings(BASE, ENV)
    assert settings.conversation_window == 86400
    assert settings.thread_broadcast == {FIRST_REPLY, PAGE_ACK}
    off = parse_settings({**BASE, "CONVERSATION_WINDOW": 0, "THREAD_BROADCAST": []}, ENV)
    assert off.conversation_window == 0 and off.thread_broadcast == frozenset()
    from_env = parse_settings(BASE, {**ENV, "ATT_THREAD_BROADCAST": "every_reply, page_ack"})
    assert from_env.thread_broadcast == {EVERY_REPLY, PAGE_ACK}
    assert parse_settings(BASE, {**ENV, "ATT_THREAD_BROADCAST": "none"}).thread_broadcast == set()
    assert parse_settings(BASE, {**ENV, "ATT_THREAD_BROADCAST": "[]"}).thread_broadcast == set()
    with pytest.raises(SettingsError, match="THREAD_BROADCAST"):
        parse_settings({**BASE, "THREAD_BROADCAST": ["everything"]}, ENV)
    with pytest.raises(SettingsError, match="CONVERSATION_WINDOW"):
        parse_settings({**BASE, "CONVERSATION_WINDOW": -1}, ENV)
