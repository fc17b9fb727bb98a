"""Issue 23: SMS conversations as Slack threads, with the real slackv3 backend.

One world for this module (errbot as its own process, the carrier sandbox, the Slack
stand-in) with a short ``CONVERSATION_WINDOW`` so that the window's expiry can be seen.
What is checked is what reached ``chat.postMessage``: its channel, ``thread_ts`` and
``reply_broadcast``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_render import render_call
from slack_standin import PostAttempt
from slack_worlds import ALICE, World, build_world

pytestmark = pytest.mark.slack

WINDOW = 6  # seconds: CONVERSATION_WINDOW of this module's bot
ESCALATE_AFTER = 2  # seconds before a page moves on to its next person
CMDS = "C0CMDS001"  # commands typed here; inbound of reg-cmds is routed here too
RACE = "C0RACE001"
WINDOWED = "C0WNDW001"
GONE = "C0GONE001"
CHANNELS = {
    CMDS: ("sms-commands", True, False),
    RACE: ("sms-race", True, False),
    WINDOWED: ("sms-window", True, False),
    GONE: ("sms-gone", True, False),
}
ROUTES = {
    "reg-cmds": f"<#{CMDS}>",
    "reg-race": f"<#{RACE}>",
    "reg-window": f"<#{WINDOWED}>",
    "reg-gone": f"<#{GONE}>",
}
_MESSAGE_ID = re.compile(r"message id (\S+?)\.?(?:\s|$|;)")
#: chat.postMessage calls of one conversation, for the issue's transcript (written on demand).
TRANSCRIPT_ENV = "SLACK_THREADS_TRANSCRIPT"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(
        tmp_path_factory.mktemp("slack-threads"), CHANNELS, ROUTES,
        conversation_window=str(WINDOW), escalate_after=str(ESCALATE_AFTER),
    )  # fmt: skip
    try:
        built.start_bot()
        yield built
    finally:
        built.close()


def _shown(post: PostAttempt) -> str:
    return render_call(post.args).display


def _posts_with(world: World, channel: str, needle: str, count: int = 1, timeout: float = 20) -> list[PostAttempt]:  # fmt: skip
    """The accepted posts to ``channel`` that show ``needle`` (waits for ``count`` of them)."""
    standin = world.standin

    def found() -> list[PostAttempt]:
        posts = [p for p in standin.posts(channel) if needle in _shown(p)]
        return posts if len(posts) >= count else []

    return standin.wait_for(found, timeout, f"{count} post(s) with {needle!r} in {channel}")


def _sent_to(world: World) -> list[dict[str, Any]]:
    return world.carrier.call("GET", "/sandbox/state")["sent"]


def test_a_send_typed_in_the_channel_is_the_root_and_the_answer_comes_back_in_its_thread(
    world: World,
) -> None:
    """The whole conversation: send -> root; follow-up, first SMS reply (broadcast), a
    second reply and the reply typed in the thread all in that thread."""
    number, tel = "+12125550301", "tel:+12125550301"
    answer, _ = world.command(
        ALICE, CMDS, f"!sms send {number} db-1 is down, can you look?",
        expect=lambda text: "message id" in text,
    )  # fmt: skip
    assert answer.thread_ts is None  # the bot's answer is the conversation's root
    root = answer.ts
    assert root
    follow_up = _posts_with(world, CMDS, "Delivery of SMS")
    assert [p.thread_ts for p in follow_up] == [root]

    world.inject("reg-cmds", "on it, 10 min", sender=tel)
    first = _posts_with(world, CMDS, "on it, 10 min")
    assert [(p.thread_ts, p.broadcast) for p in first] == [(root, True)]
    world.inject("reg-cmds", "found it: disk full", sender=tel)
    second = _posts_with(world, CMDS, "found it: disk full")
    assert [(p.thread_ts, p.broadcast) for p in second] == [(root, False)]

    before = len(_sent_to(world))
    typed, _ = world.command(
        ALICE, CMDS, "!sms reply thanks, clearing the alert", thread_ts=root,
        expect=lambda text: "message id" in text,
    )  # fmt: skip
    assert typed.thread_ts == root
    sent = _sent_to(world)[before:]
    assert [(s["addresses"], s["message"]) for s in sent] == [([tel], "thanks, clearing the alert")]
    follow_ups = _posts_with(world, CMDS, "Delivery of SMS", count=2)
    assert {p.thread_ts for p in follow_ups} == {root}

    conversation = [p for p in world.standin.posts(CMDS) if root in (p.ts, p.thread_ts)]
    _write_transcript(conversation)
    assert len(conversation) == 6, [(p.thread_ts, p.text) for p in conversation]


def test_a_send_typed_in_a_thread_makes_that_thread_the_conversation(world: World) -> None:
    tel = "tel:+12125550302"
    thread = world.standin.say(ALICE, CMDS, "payments are failing, paging Bob")
    answer, _ = world.command(
        ALICE, CMDS, "!sms send +12125550302 payments failing, please check", thread_ts=thread,
        expect=lambda text: "message id" in text,
    )  # fmt: skip
    assert answer.thread_ts == thread
    follow_up = _posts_with(world, CMDS, "Delivery of SMS " + _message_id(answer.text))
    assert [p.thread_ts for p in follow_up] == [thread]
    world.inject("reg-cmds", "looking now", sender=tel)
    reply = _posts_with(world, CMDS, "looking now")
    assert [(p.thread_ts, p.broadcast) for p in reply] == [(thread, True)]


def test_a_page_lives_in_one_thread_and_its_acknowledgement_is_shown_in_the_channel(
    world: World,
) -> None:
    first, second = "tel:+12125550311", "tel:+12125550312"
    answer, _ = world.command(
        ALICE, CMDS, "!sms page +12125550311,+12125550312 checkout is down",
        expect=lambda text: text.startswith("Page P"),
    )  # fmt: skip
    assert answer.thread_ts is None
    root, page_id = answer.ts, answer.text.split()[1].rstrip(":")
    (moved,) = _posts_with(world, CMDS, "+1 212-555-0312", timeout=30)  # the second step
    assert (moved.thread_ts, moved.broadcast) == (root, False)
    world.inject("reg-cmds", "ack", sender=second)
    (acked,) = _posts_with(world, CMDS, f"Page {page_id} acknowledged")
    assert (acked.thread_ts, acked.broadcast) == (root, True)
    (reply,) = [p for p in world.standin.posts(CMDS) if p.thread_ts == root and "(acknowledges page" in p.text]
    assert reply.broadcast  # the person's first answer in this conversation

    def delivered() -> list[PostAttempt]:
        posts = [
            p for p in world.standin.posts(CMDS)
            if p.thread_ts == root and "Delivery of SMS" in p.text
        ]  # fmt: skip
        return posts if len(posts) >= 2 else []

    follow_ups = world.standin.wait_for(delivered, 20, "both steps' follow-ups in the thread")
    assert len(follow_ups) == 2
    # The first person answering later still lands in the page's thread.
    world.inject("reg-cmds", "sorry, was asleep", sender=first)
    (late,) = _posts_with(world, CMDS, "sorry, was asleep")
    assert late.thread_ts == root


def test_first_sms_of_twenty_new_numbers_open_twenty_threads(world: World) -> None:
    numbers = [f"tel:+1212555{n:04d}" for n in range(400, 420)]
    for round_ in (1, 2):
        for number in numbers:
            world.inject("reg-race", f"race {number[-4:]} round {round_}", sender=number)
    posts = _posts_with(world, RACE, "race ", count=40, timeout=40)
    time.sleep(1.5)  # a poll or two more: nothing twice
    posts = [p for p in world.standin.posts(RACE) if "race " in _shown(p)]
    assert len(posts) == 40
    roots = {p.ts: p for p in posts if p.thread_ts is None}
    assert len(roots) == 20
    for number in numbers:
        first = [p for p in posts if f"race {number[-4:]} round 1" in _shown(p)]
        second = [p for p in posts if f"race {number[-4:]} round 2" in _shown(p)]
        assert len(first) == len(second) == 1
        assert first[0].thread_ts is None  # the first SMS is its thread's root...
        assert second[0].thread_ts == first[0].ts  # ...and the next goes into it
        assert not second[0].broadcast  # a conversation the person started: not the bot's


def test_the_window_expires_and_the_next_sms_opens_a_new_thread(world: World) -> None:
    tel = "tel:+12125550303"
    world.inject("reg-window", "window one", sender=tel)
    (one,) = _posts_with(world, WINDOWED, "window one")
    world.inject("reg-window", "window two", sender=tel)
    (two,) = _posts_with(world, WINDOWED, "window two")
    assert (one.thread_ts, two.thread_ts) == (None, one.ts)
    time.sleep(WINDOW + 1)  # quiet for longer than the window, counted from "window two"
    world.inject("reg-window", "window three", sender=tel)
    (three,) = _posts_with(world, WINDOWED, "window three")
    assert three.thread_ts is None and three.ts != one.ts


def test_a_deleted_root_or_an_archived_channel_starts_a_new_conversation(world: World) -> None:
    standin, tel = world.standin, "tel:+12125550304"
    world.inject("reg-gone", "gone one", sender=tel)
    (one,) = _posts_with(world, GONE, "gone one")
    standin.delete_message(GONE, str(one.ts))
    world.inject("reg-gone", "gone two", sender=tel)
    (two,) = _posts_with(world, GONE, "gone two")
    refused = [a for a in standin.refused(GONE) if "gone two" in a.text]
    assert [(a.error, a.thread_ts) for a in refused] == [("thread_not_found", one.ts)]
    assert two.thread_ts is None  # posted once, as a new root

    standin.archive(GONE)
    world.inject("reg-gone", "gone three", sender=tel)
    standin.wait_for(
        lambda: [a for a in standin.refused(GONE) if "gone three" in a.text],
        20, "the post refused in the archived channel",
    )  # fmt: skip
    standin.invite_bot(GONE)  # unarchived
    (three,) = _posts_with(world, GONE, "gone three")
    assert three.thread_ts is None
    time.sleep(1.5)
    assert len([p for p in standin.posts(GONE) if "gone three" in p.text]) == 1


def test_reply_in_a_thread_goes_to_exactly_that_number_from_the_number_it_wrote_to(
    world: World,
) -> None:
    """Two people text in at once; the answer typed in one's thread reaches only them."""
    ann, bob, line = "tel:+12125550305", "tel:+12125550306", "tel:+12125550999"
    world.carrier.call("POST", "/sandbox/inbound", {
        "registrationId": "reg-race", "senderAddress": ann, "message": "ann asks",
        "messageId": "thr-ann-1", "destinationAddress": line,
    })  # fmt: skip
    world.inject("reg-race", "bob asks", sender=bob)
    (ann_post,) = _posts_with(world, RACE, "ann asks")
    _posts_with(world, RACE, "bob asks")
    before = len(_sent_to(world))
    answer, _ = world.command(
        ALICE, RACE, "!sms reply r2d2 is not a handle here", thread_ts=ann_post.ts,
        expect=lambda text: "message id" in text or "Not sent" in text,
    )  # fmt: skip
    assert answer.thread_ts == ann_post.ts
    sent = _sent_to(world)[before:]
    assert [(s["addresses"], s["message"]) for s in sent] == [([ann], "r2d2 is not a handle here")]
    assert sent[0]["senderAddress"] == line  # from the number Ann wrote to
    # Outside a conversation's thread the text needs a handle, as before.
    answer, _ = world.command(
        ALICE, RACE, "!sms reply hello there", expect=lambda text: "Not sent" in text
    )
    assert "no inbound SMS with handle" in answer.text


def _message_id(text: str) -> str:
    match = _MESSAGE_ID.search(text)
    assert match, text
    return match.group(1)


def _write_transcript(posts: list[PostAttempt]) -> None:
    """The conversation as Slack received it, when ``$SLACK_THREADS_TRANSCRIPT`` names a file."""
    path = os.environ.get(TRANSCRIPT_ENV)
    if not path:
        return
    calls = [
        {
            "method": "chat.postMessage",
            "channel": p.channel,
            "thread_ts": p.thread_ts,
            "reply_broadcast": p.broadcast or None,
            "text": p.text,
            "answered_ts": p.ts,
        }
        for p in posts
    ]
    Path(path).write_text(json.dumps(calls, indent=2) + "\n")


def test_reply_in_a_thread_of_several_numbers_sends_nothing_and_says_why(world: World) -> None:
    answer, _ = world.command(
        ALICE, CMDS, "!sms send +12125550321,+12125550322 rollback done",
        expect=lambda text: "message id" in text,
    )  # fmt: skip
    before = len(_sent_to(world))
    refused, _ = world.command(
        ALICE, CMDS, "!sms reply who is on it?", thread_ts=answer.ts,
        expect=lambda text: text.startswith("Not sent"),
    )  # fmt: skip
    assert refused.thread_ts == answer.ts
    assert "2 numbers" in refused.text and "!sms reply <handle>" in refused.text
    assert len(_sent_to(world)) == before


def test_a_short_code_conversation_is_threaded_but_cannot_be_answered_by_sms(
    world: World,
) -> None:
    world.inject("reg-race", "your code is 4411", sender="ACMEBANK")
    (root,) = _posts_with(world, RACE, "your code is 4411")
    before = len(_sent_to(world))
    refused, _ = world.command(
        ALICE, RACE, "!sms reply thanks", thread_ts=root.ts,
        expect=lambda text: text.startswith("Not sent"),
    )  # fmt: skip
    assert "not a phone number" in refused.text and refused.thread_ts == root.ts
    assert len(_sent_to(world)) == before
