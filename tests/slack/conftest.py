"""Fixtures of the Slack suite: the Slack stand-in, the carrier sandbox and errbot (SlackV3).

``slack_world`` (one per session) is errbot as its own process with the real slackv3 backend,
configured from ATT_* variables with one registration per scenario, each routed to its own
channel, so the tests share one bot without seeing each other's posts. ``start_world``
builds a private world (the restart test kills its bot). A failing test gets the tail of
errbot's log in its report.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slack_procs import ADMIN_ID, PROBE_ID, CarrierProcess, ErrbotSlack, errbot_config, errbot_env
from slack_standin import SlackStandIn

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
#: Only these may send SMS (ACCESS_CONTROLS with Slack user ids).
ACCESS_CONTROLS = {"AttSms:sms_send": {"allowusers": (ALICE, ADMIN_ID)}}

_LOG_TAILS: list[ErrbotSlack] = []
_IDS = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slack: errbot's real slackv3 backend against a local stand-in of Slack"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and item.get_closest_marker("slack") is not None:
        for bot in _LOG_TAILS[-2:]:
            report.sections.append((f"errbot run {bot.index} (tail)", bot.tail(80)))


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
        _LOG_TAILS.append(bot)
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


@pytest.fixture(scope="session")
def slack_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The shared world, errbot running."""
    world = build_world(tmp_path_factory.mktemp("slack"), CHANNELS, ROUTES)
    try:
        world.start_bot()
        yield world
    finally:
        world.close()


@pytest.fixture
def start_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """Build a private world (bot not started); closed at teardown."""
    worlds: list[World] = []

    def start(channels: dict[str, tuple[str, bool, bool]], routes: dict[str, str], **settings: str) -> World:  # fmt: skip
        world = build_world(tmp_path / f"world{len(worlds)}", channels, routes, **settings)
        worlds.append(world)
        return world

    for directory in ("world0", "world1"):
        (tmp_path / directory).mkdir()
    try:
        yield start
    finally:
        for world in worlds:
            world.close()
