"""Session plumbing of the reliability suite: figures, log capture, chat capture, tokens.

* ``FIGURES`` (see ``reliakit``) collects every test's figures; at the end of the session
  they are written to ``<pytest basetemp>/reliability-figures.json`` and summarised in
  the terminal report.
* A handler on the root logger keeps every log record of the whole session (DEBUG for
  the project's and the HTTP stack's loggers) for the secret scan and the "no unhandled
  exception" checks.
* Every access token any in-process sandbox issues is remembered (the sandbox only
  stores digests), so the secret scan can look for them.
* The secret scan (``test_zz_secret_hygiene.py``) is moved to the very end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliakit

from carrier_sandbox import store as sandbox_store

_DEBUG_LOGGERS = ("att_sms", "carrier_sandbox", "urllib3", "requests", "errbot.plugins.AttSms")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the secret scan after everything else (it scans what the others produced)."""
    last = [i for i in items if "test_zz_secret_hygiene" in i.nodeid]
    if last:
        items[:] = [i for i in items if i not in last] + last


@pytest.fixture(scope="session", autouse=True)
def _session_capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Log capture + token recording for the whole session; figures written at the end."""
    handler = reliakit.CAPTURE
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    old_levels = {name: logging.getLogger(name).level for name in _DEBUG_LOGGERS}
    for name in _DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)

    original_add_token = sandbox_store.Store.add_token

    def add_token(self: Any, token: str, expires: float, scope: str) -> None:
        reliakit.ISSUED_TOKENS.add(token)
        original_add_token(self, token, expires, scope)

    sandbox_store.Store.add_token = add_token  # type: ignore[method-assign]
    try:
        yield
    finally:
        sandbox_store.Store.add_token = original_add_token  # type: ignore[method-assign]
        root.removeHandler(handler)
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)
        out = tmp_path_factory.getbasetemp() / "reliability-figures.json"
        out.write_text(json.dumps(reliakit.FIGURES, indent=2, sort_keys=True, default=str))
        reliakit.FIGURES_PATH = out


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, client_secret: str) -> None:
    """Only the secret comes from the environment; everything else from !plugin config."""
    for name in ("ATT_API_BASE_URL", "ATT_CLIENT_ID", "ATT_INBOX_ROUTES", "ATT_POLL_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATT_CLIENT_SECRET", client_secret)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the collected figures (and where the JSON file is)."""
    if not reliakit.FIGURES:
        return
    tr = terminalreporter
    tr.section("reliability figures")
    for line in reliakit.summary_lines():
        tr.write_line(line)
    path: Path | None = reliakit.FIGURES_PATH
    if path is None:
        path = Path(str(tr.config._tmp_path_factory.getbasetemp())) / "reliability-figures.json"
    tr.write_line(f"figures written to {path}")
