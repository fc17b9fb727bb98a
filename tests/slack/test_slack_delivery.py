"""Items 4 and 5 of issue 16: a post counts as done only when Slack took it.

slackv3's ``send_message`` swallows Slack's refusals, so these fail for a plugin that trusts
``send()``: the messages are marked posted and lost.
"""

from __future__ import annotations

import re
import time

import pytest
from slack_render import render_call
from slack_worlds import ALICE, COMBINE_ABOVE, World

pytestmark = pytest.mark.slack

_PLUGIN_LOG_LINE = re.compile(r"^\S+ \S+ \w+\s+errbot\.plugins\.AttSms\s")
_PROBLEM_LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\s")


def _plugin_log_lines(world: World, *needles: str) -> list[str]:
    """Lines the plugin logged (any level) that mention every one of ``needles``."""
    lines = [line for line in world.bot.log().splitlines() if _PLUGIN_LOG_LINE.match(line)]
    return [line for line in lines if all(n in line for n in needles)]


def _problem_log_lines(world: World, channel: str) -> list[str]:
    """Warnings and errors from any logger (the backend's too) naming ``channel``."""
    name = world.standin.channels[channel].name
    lines = world.bot.log().splitlines()
    return [ln for ln in lines if _PROBLEM_LOG_LINE.match(ln) and (channel in ln or name in ln)]


def _tags_in_posts(world: World, channel: str, prefix: str) -> list[str]:
    """Tags ``<prefix>NN`` in the order they appear across the accepted posts to ``channel``."""
    pattern = re.compile(rf"\b{prefix}\d\d\b")
    found: list[str] = []
    for post in world.standin.posts(channel):
        found += pattern.findall(render_call(post.args).display)
    return found


@pytest.mark.parametrize(
    ("registration", "channel", "code"),
    [("reg-closed", "C0CLOSED1", "not_in_channel"), ("reg-archived", "C0ARCHIV1", "is_archived")],
    ids=["not-in-channel", "archived"],
)
def test_refused_posts_stay_pending_and_go_out_once_the_bot_is_invited(
    slack_world: World, registration: str, channel: str, code: str
) -> None:
    standin = slack_world.standin
    prefix = "nic" if code == "not_in_channel" else "arc"
    tags = [f"{prefix}{n:02d}" for n in range(1, COMBINE_ABOVE + 1)]  # posted one by one
    for tag in tags:
        slack_world.inject(registration, f"{tag} please call back")
    standin.wait_for(
        lambda: (
            len(standin.refused(channel)) >= 3
            and time.monotonic() - standin.refused(channel)[0].at >= 2.5
        ),
        15,
        f"three polls' worth of refused posts to {channel}",
    )
    assert {a.error for a in standin.refused(channel)} == {code}
    assert standin.posts(channel) == []

    answer, _ = slack_world.command(
        ALICE, "C0CMDS001", f"!sms inbox {registration}", expect=lambda t: t.startswith("Inbox:")
    )
    shown = render_call(answer.args).display
    assert registration in shown and code in shown, shown
    waiting = re.search(r"\b(\d+) still waiting", shown)  # all routes' pending messages
    assert waiting and int(waiting.group(1)) >= len(tags), shown
    said = _plugin_log_lines(slack_world, registration, code)
    assert len(said) == 1, said  # said once, not once per poll...
    assert _problem_log_lines(slack_world, channel) == said  # ...and nothing else said each poll

    standin.invite_bot(channel)
    standin.wait_for(
        lambda: len(_tags_in_posts(slack_world, channel, prefix)) >= len(tags),
        20,
        f"the kept messages in {channel} after the invitation",
    )
    time.sleep(1.5)  # a poll or two more: nothing may be posted twice
    assert _tags_in_posts(slack_world, channel, prefix) == tags


def test_a_rate_limited_flood_is_posted_once_in_order_combined(slack_world: World) -> None:
    standin, channel = slack_world.standin, "C0FLOOD01"
    retry_after = 1
    standin.rate_limit(2, retry_after=retry_after, channel=channel)
    tags = [f"fld{n:02d}" for n in range(1, 13)]
    for tag in tags:
        slack_world.inject("reg-flood", f"{tag} on my way")
    standin.wait_for(
        lambda: len(_tags_in_posts(slack_world, channel, "fld")) >= len(tags),
        15,
        "every flood message posted",
    )
    time.sleep(1.5)  # nothing more may come
    assert _tags_in_posts(slack_world, channel, "fld") == tags  # each once, in order

    posts = standin.posts(channel)
    assert all(p.text.split("\n", 1)[0].endswith("SMS replies:") for p in posts), posts
    assert all(len(_tags_in_posts_of(p)) > COMBINE_ABOVE for p in posts), posts

    attempts = [a for a in standin.attempts if a.channel == channel]
    limited = [i for i, a in enumerate(attempts) if a.status == 429]
    assert len(limited) == 2, attempts
    for index in limited:  # Retry-After honoured before the next try
        assert attempts[index + 1].at - attempts[index].at >= retry_after - 0.05, attempts


def _tags_in_posts_of(post: object) -> list[str]:
    return re.findall(r"\bfld\d\d\b", render_call(post.args).display)  # type: ignore[attr-defined]
