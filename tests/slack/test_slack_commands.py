"""Item 1 of issue 16: commands are answered where they were typed (errbot, SlackV3 backend).

Plus what the README's Slack section promises about ids: ``BOT_ADMINS`` and
``ACCESS_CONTROLS`` hold bare Slack user ids.
"""

from __future__ import annotations

import re

import pytest
from slack_procs import ADMIN_ID
from slack_worlds import ALICE, MALLORY, World

pytestmark = pytest.mark.slack

CHANNEL = "C0CMDS001"
_MESSAGE_ID = re.compile(r"message id (\S+)")


def _where(world: World, place: str) -> tuple[str, str | None]:
    """(channel, thread ts) for a command typed in the channel, in a thread or in a DM."""
    if place == "channel":
        return CHANNEL, None
    if place == "thread":
        return CHANNEL, world.standin.say(ALICE, CHANNEL, f"db-1 is down, paging ({place})")
    return world.standin.im_channel(ALICE), None


@pytest.mark.parametrize("place", ["channel", "thread", "dm"])
def test_send_status_and_inbox_are_answered_where_they_were_typed(
    slack_world: World, place: str
) -> None:
    channel, thread = _where(slack_world, place)
    sent, _ = slack_world.command(
        ALICE, channel, f"!sms send +12125550100 db-1 disk full ({place})", thread_ts=thread,
        expect=lambda text: "message id" in text,
    )  # fmt: skip
    match = _MESSAGE_ID.search(sent.text)
    assert match, sent.text
    message_id = match.group(1).rstrip(".")
    status, _ = slack_world.command(
        ALICE, channel, f"!sms status {message_id}", thread_ts=thread,
        expect=lambda text: text.startswith(f"Message {message_id}"),
    )  # fmt: skip
    inbox, _ = slack_world.command(
        ALICE,
        channel,
        "!sms inbox",
        thread_ts=thread,
        expect=lambda text: text.startswith("Inbox:"),
    )
    for answer in (sent, status, inbox):
        assert (answer.channel, answer.thread_ts) == (channel, thread), answer
    answers = {answer.ts for answer in (sent, status, inbox)}
    elsewhere = [
        p for p in slack_world.standin.posts() if p.channel != channel and message_id in p.text
    ]
    assert len(answers) == 3 and elsewhere == []


def test_bot_admins_are_bare_slack_user_ids(slack_world: World) -> None:
    """BOT_ADMINS = ('U0ADMIN01',): that user is an admin, anyone else is not."""
    refused = "requires bot-admin privileges"
    admin_dm = slack_world.standin.im_channel(ADMIN_ID)
    answer, _ = slack_world.command(ADMIN_ID, admin_dm, "!plugin config AttSms")
    assert refused not in answer.text and "API_BASE_URL" in answer.text
    mallory_dm = slack_world.standin.im_channel(MALLORY)
    answer, _ = slack_world.command(MALLORY, mallory_dm, "!plugin config AttSms")
    assert refused in answer.text


def test_access_controls_match_slack_user_and_channel_ids(slack_world: World) -> None:
    """ACCESS_CONTROLS {'AttSms:sms_send': {'allowusers': ('U0ALICE01', ...),
    'allowrooms': ('C0CMDS001',)}}: others are kept out, and Alice out of other channels."""
    answer, _ = slack_world.command(MALLORY, CHANNEL, "!sms send +12125550100 let me in")
    assert "not allowed to access this command from this user" in answer.text
    answer, _ = slack_world.command(ALICE, "C0ROUTE01", "!sms send +12125550100 from here?")
    assert "not allowed to access this command from this room" in answer.text
