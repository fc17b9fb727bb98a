"""errbot's test backend with AttSms on the bot's default storage, and talking to it.

"Default storage" is what ``config_template.py`` sets (``STORAGE`` and its plugin
directory), read from the file at run time, so the figures follow the template.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import runpy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import CLIENT_ID, CLIENT_SECRET, COMBINE_ABOVE, REGISTRATION, ROOM
from carrier_sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "config_template.py"
ERRBOT_DEFAULT_STORAGE = "Shelf"  # errbot's own default when a config sets no STORAGE
_STORAGE_KEYS = ("STORAGE", "STORAGE_CONFIG", "BOT_EXTRA_STORAGE_PLUGINS_DIR")

#: Messages the plugin posts on its own to the person who sent (delivery follow-ups);
#: skipped while waiting for a command's answer.
UNPROMPTED = re.compile(r"^(Delivery of SMS|Stopped following SMS) ")


def default_storage(data_dir: Path) -> dict[str, Any]:
    """The storage settings of ``config_template.py`` for a bot whose data is in ``data_dir``."""
    saved = dict(os.environ)
    os.environ["ERRBOT_DATA_DIR"] = str(data_dir)
    os.environ["ATT_SMS_PLUGIN_DIR"] = str(REPO)
    try:
        template = runpy.run_path(str(TEMPLATE))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    config = {key: template[key] for key in _STORAGE_KEYS if key in template}
    config.setdefault("STORAGE", ERRBOT_DEFAULT_STORAGE)
    return config


@contextlib.contextmanager
def bot_environment() -> Iterator[None]:
    """The plugin reads its secret from ATT_CLIENT_SECRET; no other ATT_* variable leaks in."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ATT_")}
    for name in saved:
        del os.environ[name]
    os.environ["ATT_CLIENT_SECRET"] = CLIENT_SECRET
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("ATT_")]:
            del os.environ[name]
        os.environ.update(saved)


@contextlib.contextmanager
def errbot_logs_to(path: Path) -> Iterator[None]:
    """errbot's console logging (and anything its start prints) goes to ``path``, off the
    table on the terminal; handlers errbot adds meanwhile are removed afterwards."""
    from errbot import logs as errbot_logs

    root = logging.getLogger()
    log_file = path.open("a", encoding="utf-8")
    handlers_before = list(root.handlers)
    level_before = root.level
    console = errbot_logs.console_hdlr  # errbot's console handler, made at its import
    console_stream = console.setStream(log_file)
    try:
        with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
            yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers_before:
                root.removeHandler(handler)
                if isinstance(handler, logging.FileHandler):
                    handler.close()
        console.setStream(console_stream)
        root.setLevel(level_before)
        log_file.close()


@contextlib.contextmanager
def running_bot(
    sandbox: Sandbox, data_dir: Path, storage: dict[str, Any] | None = None, **plugin_config: Any
) -> Iterator[Any]:
    """errbot's test backend (``tests/botkit.Bot``) on the default storage (or on
    ``storage``, e.g. ``{"STORAGE": "Shelf"}``), with AttSms configured for ``sandbox`` by
    ``!plugin config`` (poller off, no daily cap unless ``plugin_config`` sets one,
    everything else default).
    Call inside ``bot_environment()`` and ``errbot_logs_to()``."""
    from botkit import Bot

    bot = Bot(data_dir=data_dir, **(storage or default_storage(data_dir)))
    try:
        config = {
            "API_BASE_URL": sandbox.base_url,
            "CLIENT_ID": CLIENT_ID,
            "INBOX_ROUTES": {REGISTRATION: ROOM},
            "POLL_INTERVAL": 0,
            "COMBINE_ABOVE": COMBINE_ABOVE,
            # The figures are taken with no daily cap (the default 1000 would refuse the
            # history benchmark's sends after its 10,000 recorded ones).
            "DAILY_LIMIT": 0,
            **plugin_config,
        }
        answer = bot.configure(config)
        if answer != "Plugin configuration done.":
            raise RuntimeError(f"the plugin refused the benchmark configuration: {answer}")
        yield bot
    finally:
        bot.stop()


def storage_in_use(bot: Any) -> str:
    """The class name of errbot's storage plugin of ``bot`` (e.g. SQLiteStoragePlugin)."""
    return type(bot.backend.storage_plugin).__name__


def store_of(bot: Any) -> Any:
    """The plugin's store (``att_sms.store.Store``, ``AttSms.services.runtime.store``).

    Private on purpose, and the only private attribute the benchmarks touch: the plugin
    has no public view of ``counts()`` or setter for ``seen_limit``, and recording
    history through the store API is what makes 10,000 sends take seconds, not minutes.
    """
    store = bot.plugin.services.runtime.store
    if store is None:
        raise RuntimeError("AttSms has no store open (not configured?)")
    return store


def ask(bot: Any, text: str, timeout: float = 60) -> tuple[str, int]:
    """Send a command; return its answer and how many unprompted messages came first."""
    bot.push(text)
    skipped = 0
    deadline = time.monotonic() + timeout
    while True:
        answer = bot.pop(timeout=max(0.01, deadline - time.monotonic()))
        if not UNPROMPTED.match(answer):
            return answer, skipped
        skipped += 1


def settle(bot: Any, quiet: float, limit: float = 60) -> int:
    """Let background work finish: no delivery follow-up left in the store and the bot
    silent for ``quiet`` seconds. Returns how many messages it said meanwhile."""
    said = 0
    store = store_of(bot)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            bot.pop(timeout=quiet)
        except queue.Empty:
            if store.follow_up_count() == 0:
                break
            continue
        said += 1
    return said
