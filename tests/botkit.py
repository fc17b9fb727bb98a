"""Helpers for tests that run the AttSms plugin inside errbot's test backend."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from errbot.backends.test import TestBot
from errbot.bootstrap import setup_bot

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The credentials every test sandbox accepts (tests/conftest.py uses the same).
TEST_CLIENT_ID = "test-client"
TEST_CLIENT_SECRET = "test-secret-4f1c9a"


class _RecordingTestBot(TestBot):
    """errbot's TestBot, with the backend's send_message wrapped before the bot starts
    (the plugin may post resumed messages while errbot is still starting)."""

    recorder: Bot

    def start(self, timeout: int = 2) -> None:
        self._bot = setup_bot("Test", self.logger, self.bot_config)
        original = self._bot.send_message
        recorder = self.recorder

        def send_message(msg: Any) -> None:
            if not recorder.record(msg):
                original(msg)

        self._bot.send_message = send_message
        self.bot_thread = threading.Thread(
            target=self._bot.serve_forever, name="TestBot main thread", daemon=True
        )
        self.bot_thread.start()
        self._bot.push_message("!echo ready")
        for _ in range(60):
            if self._bot.pop_message(timeout=timeout) == "ready":
                return
        raise AssertionError('The "ready" message has not been received')


class Bot:
    """A started errbot TestBot with the repository's plugins, plus a record of every post."""

    def __init__(
        self, data_dir: Path | None = None, plugin_dir: Path = REPO_ROOT, **extra_config: Any
    ) -> None:
        config: dict[str, Any] = {
            "BOT_ASYNC": True,
            "BOT_ASYNC_POOLSIZE": 10,
            "AUTOINSTALL_DEPS": False,  # errbot would pip-install requirements.txt at every start
            **extra_config,
        }
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            config["BOT_DATA_DIR"] = str(data_dir)
        self._testbot = _RecordingTestBot(
            extra_plugin_dir=str(plugin_dir), loglevel=logging.INFO, extra_config=config
        )
        self.posts: list[tuple[str, str]] = []  # (recipient, body) of every outgoing message
        self._posts_lock = threading.Lock()
        self.fail_sends: Callable[[str], bool] | None = None
        self._testbot.recorder = self
        self._testbot.start()

    def record(self, msg: Any) -> bool:
        """Record an outgoing message; True when it is a post to a room (kept off the reply queue)."""
        if self.fail_sends is not None and self.fail_sends(msg.body):
            raise RuntimeError("chat service refused the post (test)")
        with self._posts_lock:
            self.posts.append((str(msg.to), msg.body))
        return str(msg.to).startswith("#")

    @property
    def backend(self) -> Any:
        return self._testbot.bot

    @property
    def plugin(self) -> Any:
        return self.backend.plugin_manager.get_plugin_obj_by_name("AttSms")

    def push(self, text: str) -> None:
        self._testbot.push_message(text)

    def pop(self, timeout: float = 15) -> str:
        return self._testbot.pop_message(timeout=timeout)

    def ask(self, text: str, timeout: float = 15) -> str:
        """Send a command and return the bot's next message."""
        self.push(text)
        return self.pop(timeout)

    def drain(self, wait: float = 0.3) -> list[str]:
        """Every message waiting in the outgoing queue."""
        out: list[str] = []
        while True:
            try:
                out.append(self.pop(timeout=wait))
            except queue.Empty:
                return out

    def posts_containing(self, needle: str) -> list[tuple[str, str]]:
        with self._posts_lock:
            return [p for p in self.posts if needle in p[1]]

    def wait_for_posts(
        self, needle: str, count: int = 1, timeout: float = 10
    ) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.posts_containing(needle)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.posts_containing(needle)

    def configure(self, config: dict[str, Any]) -> str:
        """``!plugin config AttSms <config>``; returns the bot's answer."""
        answer = self.ask(f"!plugin config AttSms {config!r}")
        return answer

    def stop(self) -> None:
        self._testbot.stop()


def sandbox_config(sandbox: Any, client_id: str, **overrides: Any) -> dict[str, Any]:
    """A plugin config pointing at ``sandbox`` (the secret comes from the environment)."""
    config: dict[str, Any] = {
        "API_BASE_URL": sandbox.base_url,
        "CLIENT_ID": client_id,
        "INBOX_ROUTES": {"reg-ops": "#ops"},
        "POLL_INTERVAL": 0,
    }
    config.update(overrides)
    return config
