"""Log lines built from outside input: control characters escaped, no forged lines.

A carrier answering the inbox with an error whose text holds a line break, an ESC
sequence and a bidi override: the plugin (errbot's test backend, real HTTP) logs the
failed poll on one line, every such character a visible escape.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
from pathlib import Path
from typing import Any

import att_sms
import pytest
from att_sms.ops.log_safety import EscapeControls, escape
from botkit import Bot
from test_small_leaks import FakeServer, reply, token_answer

HOSTILE = "\x1b[2J\x1b[31mpwned\nERROR errbot.core forged line\r\u202eevil\u2028x\x85y\x07"
#: Modules whose log lines are escaped elsewhere (the metrics server: its request log).
ESCAPED_ELSEWHERE = {"att_sms.ops.metrics_server"}


def test_escape_makes_every_unsafe_character_visible() -> None:
    assert escape(HOSTILE) == (
        "\\x1b[2J\\x1b[31mpwned\\nERROR errbot.core forged line\\r\\u202eevil\\u2028x\\x85y\\x07"
    )
    assert escape("plain text, émoji 🚀 and tabs\tok") == "plain text, émoji 🚀 and tabs\\tok"


def test_every_plugin_logger_escapes() -> None:
    """Each module's ``log`` (and errbot's ``self.log`` of the plugin) has the filter."""
    unguarded = []
    for info in pkgutil.walk_packages(att_sms.__path__, "att_sms."):
        if info.name in ESCAPED_ELSEWHERE or info.name.endswith("errbot_plugin"):
            continue
        module = importlib.import_module(info.name)
        log = getattr(module, "log", None)
        if isinstance(log, logging.Logger):
            if not any(isinstance(f, EscapeControls) for f in log.filters):
                unguarded.append(info.name)
    assert unguarded == []
    assert any(
        isinstance(f, EscapeControls) for f in logging.getLogger("errbot.plugins.AttSms").filters
    )


def test_arguments_messages_and_exceptions_are_escaped(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("att_sms.carrier.client")
    with caplog.at_level(logging.INFO, logger="att_sms.carrier.client"):
        log.warning("carrier said: %s (%d)", HOSTILE, 7)
        log.warning(f"built without arguments: {HOSTILE}")  # noqa: G004
        try:
            raise ValueError(HOSTILE)
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "\u2028" not in text and "\x85" not in text and "\x07" not in text
    assert not any(line.startswith("ERROR errbot.core forged") for line in text.splitlines())
    assert "(7)" in text and "Traceback (most recent call last):" in text
    assert text.count("forged line") == 3


def test_a_hostile_carrier_error_is_logged_on_one_escaped_line(
    env: None, tmp_path: Path, servers: list[FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    def answer(handler: Any) -> None:
        if token_answer(handler):
            return
        error = {"requestError": {"serviceException": {
            "messageId": "SVC0001", "text": "A service error occurred: %1", "variables": HOSTILE,
        }}}  # fmt: skip
        reply(handler, 400, json.dumps(error).encode())

    carrier = FakeServer(answer)
    servers.append(carrier)
    bot = Bot(data_dir=tmp_path)
    try:
        config = {"API_BASE_URL": carrier.url, "CLIENT_ID": "cid", "POLL_INTERVAL": 0,
                  "INBOX_ROUTES": {"reg-hostile": "#ops"}}  # fmt: skip
        assert bot.configure(config) == "Plugin configuration done."
        with caplog.at_level(logging.WARNING):
            bot.ask("!sms inbox")
    finally:
        bot.stop()
    lines = [
        r.getMessage() for r in caplog.records if "inbox of reg-hostile failed" in r.getMessage()
    ]
    assert lines, caplog.text
    assert "forged line" in lines[0] and "\\x1b[2J" in lines[0] and "\\u202e" in lines[0]
    assert "\n" not in lines[0] and "\x1b" not in lines[0] and "\u202e" not in lines[0]


@pytest.fixture
def servers() -> Any:
    started: list[FakeServer] = []
    yield started
    for server in started:
        server.stop()
