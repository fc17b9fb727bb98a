"""Fixtures for the end-to-end suite: ngircd + carrier sandbox + errbot (IRC) + a human client.

One stack per test module. Every process is stopped at teardown (terminate, then kill) and its
ports are checked free. A failing test gets the tails of all process logs in its report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator

import pytest
from e2e_harness import (
    CHANNEL,
    ENSURE_NGIRCD,
    HOST,
    HUMAN_NICK,
    LOGS,
    Proc,
    Sandbox,
    Stack,
    make_errbot,
    ngircd_binary,
    start_ngircd,
    start_sandbox,
    tail,
)
from e2e_ircclient import IrcClient


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end tests on a real IRC server (ngircd) with errbot as a process"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
    if report.failed and item.get_closest_marker("e2e") is not None:
        for name in list(LOGS):
            report.sections.append((f"e2e log tail: {name}", tail(name, 120)))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def ngircd_path() -> str:
    """ngircd's binary, after scripts/ensure-ngircd.sh (idempotent) installed it if missing."""
    if shutil.which("bash") is None:
        problem = "bash is not available to run scripts/ensure-ngircd.sh"
    else:
        result = subprocess.run(  # noqa: S603
            ["bash", str(ENSURE_NGIRCD)], capture_output=True, text=True, timeout=600
        )
        binary = ngircd_binary()
        if result.returncode == 0 and binary is not None:
            return binary
        problem = f"ensure-ngircd.sh exited {result.returncode}: {result.stderr.strip()}"
    if _in_ci():
        pytest.fail(f"ngircd is required in CI and could not be installed: {problem}")
    pytest.skip(f"ngircd is not installed and could not be installed here: {problem}")


@pytest.fixture(scope="module")
def e2e_stack(ngircd_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    procs: list[Proc] = []
    human: IrcClient | None = None
    try:
        ngircd, irc_port = start_ngircd(workdir, ngircd_path)
        procs.append(ngircd)
        sandbox_proc, sandbox_url = start_sandbox(workdir)
        procs.append(sandbox_proc)
        errbot = make_errbot(workdir, irc_port, sandbox_url)
        procs.append(errbot)
        human = IrcClient(HOST, irc_port, HUMAN_NICK)
        human.connect()
        human.join(CHANNEL)
        stack = Stack(workdir, ngircd, irc_port, sandbox_proc, Sandbox(sandbox_url), errbot, human)
        stack.start_errbot()
        yield stack
    finally:
        if human is not None:
            human.close()
        problems: list[str] = []
        for proc in reversed(procs):  # errbot, then sandbox, then ngircd
            try:
                proc.stop()
                proc.assert_ports_free()
            except Exception as exc:  # noqa: BLE001 - report every process, then fail
                problems.append(f"{proc.name}: {exc!r}")
        if problems:
            message = "e2e teardown: " + "; ".join(problems)
            if sys.exc_info()[0] is not None:  # do not mask the setup error being raised
                print(message, file=sys.stderr)
            else:
                pytest.fail(message)


@pytest.fixture
def stack(e2e_stack: Stack) -> Stack:
    """The module's stack with errbot running and in the channel (restarted if a test broke it)."""
    e2e_stack.ensure_errbot()
    return e2e_stack
