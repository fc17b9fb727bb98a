"""``att_sms.chat.chat_posting`` with a real slackv3 backend object, its Web API at the Slack stand-in.

In-process and fast: the backend object is slackv3's own ``SlackBackend`` with a real
slack_sdk ``WebClient`` (base URL: the stand-in), its identifiers built by the backend's own
``build_identifier``. What reaches ``chat.postMessage`` and what Slack answered are checked
on the stand-in's records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from att_sms.chat.chat_posting import PostFailed, post_confirmed, slack_escape
from errbot.backends.base import Message
from slack_render import render_call
from slack_standin import SlackStandIn
from slack_worlds import slack_backend

pytestmark = pytest.mark.slack

ALICE = "U0ALICE01"


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    box = SlackStandIn().start()
    box.add_user(ALICE, "alice")
    box.add_channel("C0OPEN001", "open")
    box.add_channel("C0CLOSED1", "closed", member=False)
    box.add_channel("C0ARCHIV1", "archived", archived=True)
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def backend(standin: SlackStandIn, tmp_path: Path) -> Any:
    return slack_backend(standin, tmp_path)


def test_a_channel_post_is_confirmed_and_reaches_slack_escaped_and_inert(
    standin: SlackStandIn, backend: Any
) -> None:
    room = backend.build_identifier("<#C0OPEN001>")
    text = "SMS from +1 212-555-0142: a & b <!channel> [x](https://evil.example) *bold* > q"
    post_confirmed(backend, room, text)
    (post,) = standin.posts("C0OPEN001")
    assert post.text == slack_escape(text)
    assert post.args["unfurl_links"] is False and post.args["unfurl_media"] is False
    rendering = render_call(post.args)
    assert rendering.entities == ()
    assert rendering.display == text  # what a reader sees: the characters, nothing hidden


def test_a_named_channel_a_person_and_a_thread(standin: SlackStandIn, backend: Any) -> None:
    post_confirmed(backend, backend.build_identifier("#open"), "by name")
    post_confirmed(backend, backend.build_identifier(f"<@{ALICE}>"), "to alice")
    post_confirmed(
        backend, backend.build_identifier("<#C0OPEN001>"), "in a thread", thread_ts="17.000001"
    )
    by_name, threaded = standin.posts("C0OPEN001")
    assert (by_name.text, by_name.thread_ts) == ("by name", None)
    assert (threaded.text, threaded.thread_ts) == ("in a thread", "17.000001")
    (direct,) = standin.posts(standin.im_channel(ALICE))
    assert direct.text == "to alice"


@pytest.mark.parametrize(
    ("route", "code"),
    [("<#C0CLOSED1>", "not_in_channel"), ("<#C0ARCHIV1>", "is_archived")],
)
def test_a_refused_post_raises_with_slacks_reason(
    standin: SlackStandIn, backend: Any, route: str, code: str
) -> None:
    with pytest.raises(PostFailed) as failure:
        post_confirmed(backend, backend.build_identifier(route), "kept for later")
    assert failure.value.code == code
    assert code in failure.value.reason and failure.value.retry_after is None
    assert standin.posts() == [] and [a.error for a in standin.refused()] == [code]


def test_a_rate_limited_post_raises_with_retry_after(standin: SlackStandIn, backend: Any) -> None:
    standin.rate_limit(1, retry_after=7, channel="C0OPEN001")
    room = backend.build_identifier("<#C0OPEN001>")
    with pytest.raises(PostFailed) as failure:
        post_confirmed(backend, room, "first")
    assert (failure.value.code, failure.value.retry_after) == ("ratelimited", 7.0)
    post_confirmed(backend, room, "second")  # the limit is over: taken
    assert [p.text for p in standin.posts("C0OPEN001")] == ["second"]


def test_slack_out_of_reach_raises_without_secrets(standin: SlackStandIn, backend: Any) -> None:
    room = backend.build_identifier("<#C0OPEN001>")
    standin.stop()
    with pytest.raises(PostFailed) as failure:
        post_confirmed(backend, room, "nobody listens")
    assert "C0OPEN001" in failure.value.reason
    assert standin.bot_token not in str(failure.value)


def test_the_backends_own_send_swallows_what_post_confirmed_reports(
    standin: SlackStandIn, backend: Any
) -> None:
    """Why chat_posting exists: slackv3's send_message returns normally on not_in_channel."""
    message = Message(
        "lost", frm=backend.bot_identifier, to=backend.build_identifier("<#C0CLOSED1>")
    )
    backend.send_message(message)  # no exception...
    assert [a.error for a in standin.refused("C0CLOSED1")] == ["not_in_channel"]  # ...yet refused


def test_other_backends_go_through_send_and_raise_on_its_errors() -> None:
    class Backend:
        def __init__(self) -> None:
            self.sent: list[tuple[Any, str]] = []

        def send(self, identifier: Any, text: str) -> None:
            if identifier == "#gone":
                raise RuntimeError("no such room")
            self.sent.append((identifier, text))

    bot = Backend()
    post_confirmed(bot, "#ops", "hello")
    assert bot.sent == [("#ops", "hello")]
    with pytest.raises(PostFailed, match="no such room"):
        post_confirmed(bot, "#gone", "hello")


def test_slack_ids_are_what_bot_admins_and_acls_compare(backend: Any) -> None:
    """BOT_ADMINS / ACCESS_CONTROLS match ``aclattr``: the bare user id, not ``@U…``/``<@U…>``."""
    person = backend.build_identifier(f"<@{ALICE}>")
    room = backend.build_identifier("<#C0OPEN001>")
    assert (person.aclattr, str(person)) == (ALICE, f"<@{ALICE}>")
    assert (room.aclattr, str(room)) == ("C0OPEN001", "<#C0OPEN001|open>")
