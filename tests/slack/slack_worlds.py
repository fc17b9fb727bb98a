"""The Slack suite's world: a stand-in of Slack, a carrier sandbox and errbot (SlackV3), wired.

The shared world routes one registration per scenario to its own channel, so the tests
share one bot without seeing each other's posts.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slack_procs import ADMIN_ID, PROBE_ID, CarrierProcess, ErrbotSlack, errbot_config, errbot_env
from slack_standin import BOT_USER_ID, SlackStandIn

ALICE = "U0ALICE01"
MALLORY = "U0MALLOR1"
COMBINE_ABOVE = 3

#: Channels of the shared world: id -> (name, bot is a member, archived).
CHANNELS = {
    "C0CMDS001": ("sms-commands", True, False),
    "C0ROUTE01": ("sms-by-id", True, False),
    "C0NAMED01": ("sms-by-name", True, False),
    "C0MENTN01": ("sms-mentions", True, False),
    "C0CLOSED1": ("sms-closed", False, False),
    "C0ARCHIV1": ("sms-archived", True, True),
    "C0FLOOD01": ("sms-flood", True, False),
}
#: registration -> route, as INBOX_ROUTES gives them (channel ids in Slack's <#C…> form, or #name).
ROUTES = {
    "reg-by-id": "<#C0ROUTE01>",
    "reg-by-name": "#sms-by-name",
    "reg-mentions": "<#C0MENTN01>",
    "reg-closed": "<#C0CLOSED1>",
    "reg-archived": "<#C0ARCHIV1>",
    "reg-flood": "<#C0FLOOD01>",
}
#: Only these people may send SMS, and not from every channel (Slack user and channel ids).
ACCESS_CONTROLS = {
    "AttSms:sms_send": {"allowusers": (ALICE, ADMIN_ID), "allowrooms": ("C0CMDS001",)}
}

#: Every errbot run started, for the log tails of a failing test.
STARTED: list[ErrbotSlack] = []
_IDS = itertools.count(1)


@dataclass
class World:
    """A stand-in of Slack, a carrier sandbox and an errbot process wired together."""

    workdir: Path
    standin: SlackStandIn
    carrier: CarrierProcess
    config: Path
    env: dict[str, str]
    bots: list[ErrbotSlack] = field(default_factory=list)

    @property
    def bot(self) -> ErrbotSlack:
        return self.bots[-1]

    def start_bot(self) -> float:
        """Start errbot (again, on the same data directory); seconds until it answers."""
        bot = ErrbotSlack(self.workdir, len(self.bots), self.config, self.env)
        self.bots.append(bot)
        STARTED.append(bot)
        return bot.wait_ready(self.standin)

    def inject(self, registration: str, text: str, sender: str = "tel:+12125550142") -> str:
        """An inbound SMS at the carrier; returns its unique message id."""
        message_id = f"slk-{next(_IDS):05d}"
        self.carrier.inject(registration, sender, text, message_id, "2026-04-19T10:00:00Z")
        return message_id

    def command(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None,
        expect: Callable[[str], bool] = lambda _text: True, timeout: float = 20,
    ) -> Any:  # fmt: skip
        """``user`` types ``text`` in ``channel``; the bot's first matching post after it."""
        seen = len(self.standin.posts(channel))
        asked_ts = self.standin.say(user, channel, text, thread_ts=thread_ts)
        posts = self.standin.wait_for(
            lambda: [p for p in self.standin.posts(channel)[seen:] if expect(p.text)],
            timeout,
            f"an answer to {text!r} in {channel}",
        )
        return posts[0], asked_ts

    def close(self) -> None:
        for bot in self.bots:
            bot.stop()
        self.carrier.stop()
        self.standin.stop()


def build_world(
    workdir: Path, channels: dict[str, tuple[str, bool, bool]], routes: dict[str, str],
    **settings: str,
) -> World:  # fmt: skip
    standin = SlackStandIn().start()
    carrier: CarrierProcess | None = None
    try:
        for user, name in ((ADMIN_ID, "admin"), (PROBE_ID, "probe"), (ALICE, "alice"), (MALLORY, "mallory")):  # fmt: skip
            standin.add_user(user, name)
        for channel_id, (name, member, archived) in channels.items():
            standin.add_channel(channel_id, name, member=member, archived=archived)
        carrier = CarrierProcess(workdir, sorted(routes))
        config = errbot_config(workdir, standin, access_controls=ACCESS_CONTROLS)
        env = errbot_env(carrier.url, routes, combine_above=str(COMBINE_ABOVE), **settings)
        return World(workdir, standin, carrier, config, env)
    except BaseException:
        if carrier is not None:
            carrier.stop()
        standin.stop()
        raise


def slack_backend(standin: SlackStandIn, data_dir: Path) -> Any:
    """slackv3's own SlackBackend in this process, its Web API at the stand-in (no Socket Mode).

    What ``serve_once`` sets up before it blocks, minus the connection; errbot's plugin
    manager is replaced by an empty one (there are no plugins here).
    """
    from errbot.bootstrap import bot_config_defaults
    from slack_sdk.web import WebClient
    from slackv3.person import SlackPerson
    from slackv3.slackv3 import SlackBackend

    config = types.ModuleType("slack_suite_config")
    config.BOT_IDENTITY = {"token": standin.bot_token, "app_token": standin.app_token}
    config.BOT_ADMINS = (ADMIN_ID,)
    config.BOT_DATA_DIR = str(data_dir)
    bot_config_defaults(config)
    # The backend assumes one instance per process (lru_cache'd lookups, __hash__ = 0).
    for cached in ("get_im_channel", "channelid_to_channelname", "channelname_to_channelid"):
        getattr(SlackBackend, cached).cache_clear()
    bot = SlackBackend(config)
    bot.slack_web = WebClient(token=standin.bot_token, base_url=standin.api_url)
    bot.auth = bot.slack_web.auth_test()
    bot.bot_identifier = SlackPerson(bot.slack_web, BOT_USER_ID)
    bot.plugin_manager = types.SimpleNamespace(get_all_active_plugins=lambda: [])
    return bot


__all__ = [
    "ACCESS_CONTROLS",
    "ALICE",
    "CHANNELS",
    "COMBINE_ABOVE",
    "MALLORY",
    "ROUTES",
    "STARTED",
    "World",
    "build_world",
    "slack_backend",
]
