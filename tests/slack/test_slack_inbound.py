"""Items 2 and 3 of issue 16: inbound SMS reach the routed Slack channel, and reach it inert.

What is checked is what reached ``chat.postMessage`` at the Slack stand-in, read with
``slack_render``'s model of what a Slack client makes of it (the call's own ``mrkdwn`` and
``link_names`` arguments included).
"""

from __future__ import annotations

import re

import pytest
from slack_render import render_call
from slack_worlds import World

pytestmark = pytest.mark.slack

_HANDLE = re.compile(r"\[#r[0-9a-z]+\]")

#: Slack's own syntax (and Markdown the backend would convert), each tagged to find it back.
HOSTILE = {
    "m01": "<!channel> wake up",
    "m02": "<!here> now",
    "m03": "<!everyone> all hands",
    "m04": "<@U0ADMIN01> look at this",
    "m05": "<#C0CMDS001> go there",
    "m06": "<!subteam^S0123ABCD> team ping",
    "m07": "<https://evil.example|click here> to verify",
    "m08": "[click here](https://evil.example) to verify",
    "m09": "*bold* _italic_ ~strike~ `code` ```block```",
    "m10": "> quoted line",
    "m11": "@channel @here @everyone @admin",
    "m12": "&lt;!channel&gt; and a & b",
}


def _posted_once(world: World, channel: str, needle: str, timeout: float = 20) -> object:
    """The one accepted post to ``channel`` that carries ``needle`` (as a reader sees it)."""
    standin = world.standin

    def carrying() -> list[object]:
        return [p for p in standin.posts(channel) if needle in render_call(p.args).display]

    posts = standin.wait_for(carrying, timeout, f"a post with {needle!r} in {channel}")
    assert len(posts) == 1, posts
    return posts[0]


@pytest.mark.parametrize(
    ("registration", "channel"),
    [("reg-by-id", "C0ROUTE01"), ("reg-by-name", "C0NAMED01")],
    ids=["channel-id", "channel-name"],
)
def test_inbound_is_posted_to_the_routed_channel(
    slack_world: World, registration: str, channel: str
) -> None:
    text = f"Running late, ETA 10 min ({registration})"
    slack_world.inject(registration, text, sender="tel:+12125550142")
    post = _posted_once(slack_world, channel, text)
    shown = render_call(post.args).display  # type: ignore[attr-defined]
    assert "+1 212-555-0142" in shown
    assert "2026-04-19 10:00 UTC" in shown
    assert _HANDLE.search(shown), shown
    assert [p for p in slack_world.standin.posts() if text in p.text] == [post]


def test_slack_syntax_in_inbound_text_renders_as_plain_characters(slack_world: World) -> None:
    channel = "C0MENTN01"
    for tag, text in HOSTILE.items():
        slack_world.inject("reg-mentions", f"{tag} {text}")
    for tag in HOSTILE:
        _posted_once(slack_world, channel, f"{tag} ")
    for post in slack_world.standin.posts(channel):
        rendering = render_call(post.args)
        assert rendering.entities == (), f"{rendering.entities} in {post.text!r}"
        assert post.args.get("unfurl_links") is False, post.args
    shown = "\n".join(render_call(p.args).display for p in slack_world.standin.posts(channel))
    # Nothing hidden or dropped: the link target and the words are there to read.
    for visible in ("evil.example", "click here", "wake up", "a & b", "S0123ABCD", "U0ADMIN01"):
        assert visible in shown, (visible, shown)
