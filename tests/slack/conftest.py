"""Fixtures of the Slack suite (see ``slack_worlds`` for what a world is).

``slack_world`` (one for the whole directory) is errbot as its own process with the real slackv3 backend;
``start_world`` builds a private world (the restart test kills its bot). A failing test gets
the tail of errbot's log in its report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_worlds import CHANNELS, ROUTES, STARTED, World, build_world

_HERE = Path(__file__).resolve().parent
_SHARED: dict[str, World] = {}


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
        for bot in STARTED[-2:]:
            report.sections.append((f"errbot run {bot.index} (tail)", bot.tail(80)))


@pytest.fixture
def slack_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The shared world, errbot running (started by the first test that asks for it)."""
    world = _SHARED.get("world")
    if world is None:
        world = build_world(tmp_path_factory.mktemp("slack"), CHANNELS, ROUTES)
        _SHARED["world"] = world
        try:
            world.start_bot()
        except BaseException:
            _close_shared()
            raise
    return world


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared world after this directory's last test, not at the end of the session
    (a bot polling every second would otherwise keep running beside the rest of the suite)."""
    if nextitem is None or Path(nextitem.path).parent != _HERE:
        _close_shared()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _close_shared()


def _close_shared() -> None:
    world = _SHARED.pop("world", None)
    if world is not None:
        world.close()


@pytest.fixture
def start_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """Build a private world (bot not started); closed at teardown."""
    worlds: list[World] = []

    def start(channels: dict[str, tuple[str, bool, bool]], routes: dict[str, str], **settings: str) -> World:  # fmt: skip
        workdir = tmp_path / f"world{len(worlds)}"
        workdir.mkdir()
        world = build_world(workdir, channels, routes, **settings)
        worlds.append(world)
        return world

    try:
        yield start
    finally:
        for world in worlds:
            world.close()
