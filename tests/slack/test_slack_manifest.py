"""The Slack app manifest of the docs: its scopes are the stand-in's, and each one is needed.

The stand-in checks every Web API method's scope the way Slack documents them, and the
whole suite runs with exactly the manifest's scopes (so they are enough). Here, in-process
with slackv3's own backend object: without any one of the read/write scopes, something the
plugin relies on fails with ``missing_scope`` naming it. (The ``*:history`` scopes are what
Slack needs to deliver message events from channels, private channels and DMs.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from att_sms.chat.chat_posting import post_confirmed
from slack_standin import BOT_SCOPES, SlackStandIn
from slack_worlds import ALICE, slack_backend

pytestmark = pytest.mark.slack

REPO_ROOT = Path(__file__).resolve().parents[2]
_YAML_BLOCK = re.compile(r"```ya?ml\n(.*?)```", re.DOTALL)
HISTORY_SCOPES = {"channels:history", "groups:history", "im:history"}


def _documented_manifest() -> dict[str, Any]:
    """The Socket Mode manifest of the README (or of docs/SLACK.md until it is merged)."""
    for doc in (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "SLACK.md"):
        if not doc.exists():
            continue
        for block in _YAML_BLOCK.findall(doc.read_text(encoding="utf-8")):
            if "socket_mode_enabled" in block:
                return yaml.safe_load(block)
    raise AssertionError(
        "no Slack app manifest (a yaml block with socket_mode_enabled) in the docs"
    )


def test_the_documented_manifest_is_what_the_suite_runs_with() -> None:
    manifest = _documented_manifest()
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES.split(","))
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert sorted(settings["event_subscriptions"]["bot_events"]) == [
        "message.channels",
        "message.groups",
        "message.im",
    ]
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


@pytest.fixture
def without(request: pytest.FixtureRequest) -> Iterator[SlackStandIn]:
    """A stand-in whose bot token lacks one of the manifest's scopes."""
    scopes = ",".join(s for s in BOT_SCOPES.split(",") if s != request.param)
    standin = SlackStandIn(scopes=scopes).start()
    standin.add_user(ALICE, "alice")
    standin.add_channel("C0OPEN001", "open")
    try:
        yield standin
    finally:
        standin.stop()


def _what_the_plugin_does(backend: Any) -> None:
    """Routes by channel id, by #name and to a person; posts; the room check; a DM's sender."""
    from slackv3.person import SlackPerson

    for route in ("<#C0OPEN001>", "#open", f"<@{ALICE}>"):
        post_confirmed(backend, backend.build_identifier(route), "hello")
    assert backend.build_identifier("<#C0OPEN001>").joined
    SlackPerson(backend.slack_web, ALICE, "D" + ALICE[1:])  # who typed a command in a DM


@pytest.mark.parametrize(
    "without", sorted(set(BOT_SCOPES.split(",")) - HISTORY_SCOPES), indirect=True
)
def test_every_scope_is_needed(without: SlackStandIn, tmp_path: Path) -> None:
    standin = without
    (lacking,) = set(BOT_SCOPES.split(",")) - standin.scopes
    # PostFailed, SlackApiError (users:read and team:read: already while the backend starts)
    # or RoomDoesNotExistError; which scope Slack refused is the real check.
    with pytest.raises(Exception):  # noqa: B017
        _what_the_plugin_does(slack_backend(standin, tmp_path))
    assert lacking in {scope for _, scope in standin.missing_scopes}, standin.missing_scopes


def test_the_manifest_scopes_are_enough_for_it(tmp_path: Path) -> None:
    standin = SlackStandIn().start()
    standin.add_user(ALICE, "alice")
    standin.add_channel("C0OPEN001", "open")
    try:
        standin.im_channel(ALICE)
        _what_the_plugin_does(slack_backend(standin, tmp_path))
        assert standin.missing_scopes == []
        assert len(standin.posts()) == 3
    finally:
        standin.stop()
