"""After everything the shared world went through (this module runs last in the directory)."""

from __future__ import annotations

import pytest
from slack_procs import CARRIER_SECRET
from slack_worlds import World

pytestmark = pytest.mark.slack


def test_no_slack_token_or_carrier_secret_in_the_bots_output(slack_world: World) -> None:
    written = "\n".join(bot.tail(10**9) for bot in slack_world.bots)
    assert "Token accepted" in written  # the log is the one the bot wrote
    posted = "\n".join(a.text for a in slack_world.standin.attempts)
    for secret in (slack_world.standin.bot_token, slack_world.standin.app_token, CARRIER_SECRET):
        assert secret not in written
        assert secret not in posted


def test_the_manifests_scopes_were_enough_for_the_bot(slack_world: World) -> None:
    """Only the join attempt at a channel the bot is not in lacked a scope (by design)."""
    standin = slack_world.standin
    assert set(standin.missing_scopes) <= {("conversations.join", "channels:join")}
    assert standin.unknown_methods == []
