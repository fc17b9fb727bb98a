"""Item 6 of issue 16: errbot killed (SIGKILL) with inbound messages pending; all posted once.

Two ways to have messages pending at the kill: the bot is stuck in a ``chat.postMessage``
that Slack never answers (the stand-in holds it: it is never taken), or Slack refuses the
posts (``not_in_channel``) and the bot is invited while errbot is down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from slack_render import render_call
from slack_worlds import World

pytestmark = pytest.mark.slack

CHANNEL = "C0RESTRT1"


def _tags(world: World) -> list[str]:
    found: list[str] = []
    for post in world.standin.posts(CHANNEL):
        found += re.findall(r"\brst\d\d\b", render_call(post.args).display)
    return found


@pytest.mark.parametrize("pending_because", ["post-unanswered", "not-in-channel"])
def test_pending_inbound_survives_a_sigkill_and_is_posted_once(
    start_world: Callable[..., World], pending_because: str
) -> None:
    member = pending_because == "post-unanswered"
    world = start_world({CHANNEL: ("sms-restart", member, False)}, {"reg-restart": f"<#{CHANNEL}>"})
    standin = world.standin
    world.start_bot()
    if member:
        standin.stall(CHANNEL)
    tags = [f"rst{n:02d}" for n in range(1, 4)]
    for tag in tags:
        world.inject("reg-restart", f"{tag} call me")
    if member:
        standin.wait_for(lambda: standin.stalled, 15, "the bot's (held) post")
    else:
        standin.wait_for(lambda: len(standin.refused(CHANNEL)) >= 2, 15, "refused posts")
    world.bot.sigkill()
    assert standin.posts(CHANNEL) == []

    standin.release_stalls()
    standin.invite_bot(CHANNEL)
    world.start_bot()
    standin.wait_for(lambda: len(_tags(world)) >= len(tags), 20, "the pending messages")
    time.sleep(1.5)  # a poll or two more: nothing may be posted twice
    assert _tags(world) == tags
