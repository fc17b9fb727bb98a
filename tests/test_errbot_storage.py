"""errbot's own settings in SQLite (errbot_storage): the store, the Shelf import, real bots.

Unit tests drive the storage plugin the way errbot does (one storage per namespace, many
threads). Process tests start errbot as its own process (Text backend, stdin a pipe) with
``config_template.py``, change settings in chat, stop it with SIGKILL or SIGTERM to its
process group, and start it again on the same data dir.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import IO

import pytest
from errbot.storage.shelf import ShelfStoragePlugin

from errbot_storage.shelf_import import read_shelf
from errbot_storage.sqlite_kv import StorageConfigError
from errbot_storage.storage_plugin import SQLiteStoragePlugin

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ERRBOT = VENV_BIN / "errbot"


def make_plugin(data_dir: Path, **storage_config: object) -> SQLiteStoragePlugin:
    config = SimpleNamespace(BOT_DATA_DIR=str(data_dir), STORAGE_CONFIG=dict(storage_config))
    return SQLiteStoragePlugin(config)


def write_shelf(data_dir: Path, namespace: str, values: dict[str, object]) -> None:
    """An old-release namespace written by errbot's own Shelf storage, closed cleanly."""
    shelf = ShelfStoragePlugin(SimpleNamespace(BOT_DATA_DIR=str(data_dir), STORAGE_CONFIG={}))
    store = shelf.open(namespace)
    for key, value in values.items():
        store.set(key, value)
    store.close()


# --------------------------------------------------------------------------- store


def test_set_get_remove_keys_len_per_namespace(tmp_path: Path) -> None:
    plugin = make_plugin(tmp_path)
    core, other = plugin.open("core"), plugin.open("AttSms")
    value = {"configs": {"AttSms": {"INBOX_ROUTES": {"r": "@ops"}}}, "set": {1, 2}, "t": (1, "x")}
    core.set("configs", value)
    core.set("bl_plugins", ["VersionChecker"])
    other.set("configs", "another namespace")
    assert core.get("configs") == value
    assert sorted(core.keys()) == ["bl_plugins", "configs"]
    assert core.len() == 2 and other.len() == 1
    core.set("bl_plugins", [])
    assert core.get("bl_plugins") == []
    core.remove("bl_plugins")
    assert list(core.keys()) == ["configs"]
    with pytest.raises(KeyError):
        core.get("bl_plugins")
    with pytest.raises(KeyError):
        core.remove("bl_plugins")
    assert other.get("configs") == "another namespace"
    assert (tmp_path / "storage.sqlite3").is_file()
    core.close()
    other.close()


def test_many_threads_write_and_read_at_once(tmp_path: Path) -> None:
    plugin = make_plugin(tmp_path)
    shared = plugin.open("shared")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        own = plugin.open(f"worker{worker}")
        try:
            for i in range(150):
                own.set(f"k{i}", {"worker": worker, "i": i})
                shared.set(f"w{worker}-{i}", i)
                assert own.get(f"k{i}") == {"worker": worker, "i": i}
                if i % 2:
                    own.remove(f"k{i}")
                shared.len()
                list(shared.keys())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert shared.len() == 8 * 150
    check = plugin.open("worker3")
    assert check.len() == 75 and check.get("k148") == {"worker": 3, "i": 148}
    check.close()
    shared.close()


def test_values_survive_a_reopen_and_are_seen_by_a_second_handle(tmp_path: Path) -> None:
    first = make_plugin(tmp_path)
    store = first.open("core")
    store.set("configs", {"AttSms": {"POLL_INTERVAL": 0}})
    # A second handle on the same file (another process would be the same) sees the
    # committed value while the first is still open: nothing waits for a close.
    peek = make_plugin(tmp_path).open("core")
    assert peek.get("configs") == {"AttSms": {"POLL_INTERVAL": 0}}
    peek.close()
    store.close()
    assert first.database is None  # the last namespace closed the shared handle
    again = make_plugin(tmp_path).open("core")
    assert again.get("configs") == {"AttSms": {"POLL_INTERVAL": 0}}
    again.close()


def test_storage_config_options(tmp_path: Path) -> None:
    plugin = make_plugin(tmp_path, path="sub/bot.sqlite3", synchronous="full")
    plugin.open("core").set("k", 1)
    assert plugin.options.path == tmp_path / "sub" / "bot.sqlite3"
    assert (tmp_path / "sub" / "bot.sqlite3").is_file()
    with sqlite3.connect(tmp_path / "sub" / "bot.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StorageConfigError, match="dsn"):
        make_plugin(tmp_path, dsn="postgresql://u:secret@db/errbot")
    with pytest.raises(StorageConfigError, match="unknown"):
        make_plugin(tmp_path, pth="typo.sqlite3")
    with pytest.raises(StorageConfigError, match="synchronous"):
        make_plugin(tmp_path, synchronous="OFF").open("core")


# --------------------------------------------------------------------------- Shelf import


def test_an_old_shelf_is_imported_once(tmp_path: Path) -> None:
    write_shelf(tmp_path, "core", {"configs": {"AttSms": {"CLIENT_ID": "x"}}, "bl_plugins": []})
    plugin = make_plugin(tmp_path)
    core = plugin.open("core")
    assert core.get("configs") == {"AttSms": {"CLIENT_ID": "x"}}
    assert sorted(core.keys()) == ["bl_plugins", "configs"]
    core.remove("configs")
    core.remove("bl_plugins")
    core.close()
    # Emptied on purpose: the old shelf (still on disk, untouched) is not imported again.
    assert (tmp_path / "core.db.dat").is_file()
    core = make_plugin(tmp_path).open("core")
    assert core.len() == 0
    core.close()


def test_an_old_shelf_never_overwrites_a_namespace_that_has_keys(tmp_path: Path) -> None:
    plugin = make_plugin(tmp_path)
    plugin.open("AttSms").set("contacts", {"new": 1})
    write_shelf(tmp_path, "AttSms", {"contacts": {"old": 1}})
    assert make_plugin(tmp_path).open("AttSms").get("contacts") == {"new": 1}


_KILLED_SHELF_WRITER = """
import os, signal, sys
from types import SimpleNamespace
from errbot.storage.shelf import ShelfStoragePlugin
shelf = ShelfStoragePlugin(SimpleNamespace(BOT_DATA_DIR=sys.argv[1], STORAGE_CONFIG={}))
store = shelf.open("core")
store.set("configs", {})            # errbot's first start: a small value, index written
store.set("lost", "x" * 2000)
store.set("kept", [1, 2, 3])
store.shelf.sync()
store.set("configs", {"AttSms": {"API_BASE_URL": "http://127.0.0.1:9", "CLIENT_ID": "x"}})
os.kill(os.getpid(), signal.SIGKILL)  # what a service stop does to errbot 6.2.1
"""


def killed_shelf(data_dir: Path) -> None:
    """A core shelf as errbot leaves it when killed after a change (a real SIGKILL)."""
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _KILLED_SHELF_WRITER, str(data_dir)], check=False, timeout=30
    )
    assert proc.returncode == -signal.SIGKILL


def test_a_shelf_left_by_a_kill_is_recovered_and_the_unreadable_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed_shelf(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="truncated"):  # what errbot's Shelf hits
        ShelfStoragePlugin(SimpleNamespace(BOT_DATA_DIR=str(tmp_path), STORAGE_CONFIG={})).open(
            "core"
        ).get("configs")
    # Damage more: one value overwritten with junk, one garbage line in the index.
    index = tmp_path / "core.db.dir"
    pos = int(re.search(r"'lost', \((\d+),", index.read_text()).group(1))  # type: ignore[union-attr]
    with open(tmp_path / "core.db.dat", "r+b") as dat:
        dat.seek(pos)
        dat.write(b"\xff" * 16)
    with open(index, "a", encoding="latin-1") as handle:
        handle.write("'half-written\n")

    caplog.set_level(logging.INFO, logger="errbot_storage")
    core = make_plugin(tmp_path).open("core")
    assert core.get("configs") == {
        "AttSms": {"API_BASE_URL": "http://127.0.0.1:9", "CLIENT_ID": "x"}
    }
    assert core.get("kept") == [1, 2, 3]
    assert sorted(core.keys()) == ["configs", "kept"]
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "recovered the latest value of 'configs'" in messages
    assert "'lost': incomplete value" in messages
    assert "unreadable index entry" in messages
    core.close()


def test_a_shelf_that_cannot_be_read_at_all_leaves_the_bot_starting_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "AttSms.db").write_bytes(b"not a dbm file at all" * 10)
    assert not read_shelf(tmp_path / "AttSms.db").readable
    caplog.set_level(logging.INFO, logger="errbot_storage")
    store = make_plugin(tmp_path).open("AttSms")
    assert store.len() == 0
    store.set("contacts", {})
    assert "Could not read the old shelf" in caplog.text
    store.close()


# --------------------------------------------------------------------------- real bots

ATT_CONFIG = (
    "{'API_BASE_URL': 'http://127.0.0.1:9', 'CLIENT_ID': 'x', "
    "'INBOX_ROUTES': {'r': '@ops'}, 'POLL_INTERVAL': 0}"
)
MD_BAR = "\u254c\u254c[MD  ]"
SECTION_BAR = "\u254c\u254c["


def bot_config(workdir: Path, storage: str | None = None) -> Path:
    """A config.py that is ``config_template.py`` plus what a test run needs."""
    config = workdir / "config.py"
    override = f"STORAGE = {storage!r}\n" if storage else ""
    config.write_text(
        textwrap.dedent(
            f"""\
            import importlib.util
            _spec = importlib.util.spec_from_file_location(
                "config_template", {str(REPO_ROOT / "config_template.py")!r})
            _template = importlib.util.module_from_spec(_spec)
            _spec.loader.exec_module(_template)
            globals().update({{k: v for k, v in vars(_template).items() if k.isupper()}})
            TEXT_DEMO_MODE = False
            """
        )
        + override
    )
    return config


class Bot:
    """One errbot process (Text backend) with stdin a pipe kept open."""

    def __init__(self, workdir: Path, config: Path, name: str) -> None:
        self.out_path = workdir / f"{name}.out"
        self.log_path = workdir / f"{name}.log"
        self.data_dir = workdir / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ATT_", "ERRBOT_"))}
        env.update(
            ERRBOT_BACKEND="Text", ERRBOT_DATA_DIR=str(self.data_dir), ERRBOT_ADMINS="@ops",
            ERRBOT_LOG_FILE=str(self.log_path), ATT_SMS_PLUGIN_DIR=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",
        )  # fmt: skip
        self._out: IO[bytes] = open(self.out_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: S603
            [str(ERRBOT), "-c", str(config)], stdin=subprocess.PIPE, stdout=self._out,
            stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def replies(self) -> list[str]:
        """The MD sections (raw bodies) the Text backend printed, in order."""
        sections: list[str] = []
        current: list[str] | None = None
        for line in self.output().splitlines():
            if line.startswith(SECTION_BAR):
                if current is not None:
                    sections.append("\n".join(current).strip())
                current = [] if line.startswith(MD_BAR) else None
            elif current is not None:
                current.append(line)
        if current is not None:
            sections.append("\n".join(current).strip())
        return sections

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while MD_BAR not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"errbot exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"errbot not ready in {timeout} s")
            time.sleep(0.05)

    def ask(self, command: str, expect: str, timeout: float = 15) -> str:
        """Send *command*; return the first new reply containing *expect*."""
        seen = len(self.replies())
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for reply in self.replies()[seen:]:
                if expect in reply:
                    return reply
            time.sleep(0.05)
        raise AssertionError(f"no reply with {expect!r} to {command!r}: {self.replies()[seen:]}")

    def signal_group(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)
        self.proc.wait(timeout=15)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._out.close()


@pytest.fixture
def bots(tmp_path: Path):
    started: list[Bot] = []

    def start(name: str, storage: str | None = None) -> Bot:
        bot = Bot(tmp_path, bot_config(tmp_path, storage), name)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.close()


def configure_in_chat(bot: Bot) -> None:
    bot.wait_ready()
    bot.ask(f"!plugin config AttSms {ATT_CONFIG}", "Plugin configuration done")
    bot.ask("!plugin blacklist VersionChecker", "is now blacklisted")


def startup_errors(log: str) -> str:
    """The text errbot logs after "Some plugins failed to load:" (empty if it did not)."""
    match = re.search(r"Some plugins failed to load:\n(.*?)(?=^\d{4}-\d\d-\d\d )", log, re.M | re.S)
    return match.group(1) if match else ""


def assert_storage_loaded_cleanly(log: str) -> None:
    """errbot found the storage plugin, and its bot-plugin scan had nothing to say about it."""
    assert "Found Storage plugin: SQLite" in log
    assert "Activate plugin: SQLite" in log  # the same .plug, read as a bot plugin (!storage)
    errors = startup_errors(log)
    assert "errbot_storage" not in errors and "Did not find any plugin" not in errors
    assert "Plugin SQLite already loaded" not in log
    assert "SQLite failed" not in log


def assert_settings_kept(bot: Bot) -> None:
    bot.wait_ready()
    shown = bot.ask("!plugin config AttSms", "API_BASE_URL")
    assert "http://127.0.0.1:9" in shown and "'r': '@ops'" in shown
    bot.ask("!plugin blacklist VersionChecker", "already blacklisted")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_chat_settings_survive_a_stop_of_every_process(bots, signum: int) -> None:
    first = bots("first")
    configure_in_chat(first)
    first.signal_group(signum)
    second = bots("second")
    assert_settings_kept(second)
    status = second.ask("!storage", "Storage: SQLite")
    assert re.search(r"- core: \d+ keys", status)
    for bot in (first, second):
        assert_storage_loaded_cleanly(bot.log_path.read_text(errors="replace"))


@pytest.fixture
def shelf_killed_after_config(bots, tmp_path: Path) -> Path:
    """A data dir errbot's default Shelf left after `!plugin config` and a SIGKILL."""
    bot = bots("shelf", storage="Shelf")
    configure_in_chat(bot)
    bot.signal_group(signal.SIGKILL)
    assert (tmp_path / "data" / "core.db.dat").is_file()
    return tmp_path / "data"


def test_the_default_shelf_does_not_start_again_after_a_kill(
    bots, shelf_killed_after_config: Path
) -> None:
    again = bots("shelf-again", storage="Shelf")
    with pytest.raises(RuntimeError, match="exited"):
        again.wait_ready()
    assert "pickle data was truncated" in again.output()


def test_sqlite_storage_starts_on_a_shelf_left_corrupt_and_keeps_its_settings(
    bots, shelf_killed_after_config: Path
) -> None:
    saved = shelf_killed_after_config.parent / "shelf-files"
    shutil.copytree(shelf_killed_after_config, saved)
    upgraded = bots("upgraded")
    assert_settings_kept(upgraded)
    status = upgraded.ask("!storage", "Imported core")
    assert "0 skipped" in status
    log = upgraded.log_path.read_text(errors="replace")
    assert "recovered the latest value of 'configs'" in log
    assert_storage_loaded_cleanly(log)
    # The old files are left as they were (a way back to Shelf, and nothing lost).
    for path in saved.glob("*.db.*"):
        assert (shelf_killed_after_config / path.name).read_bytes() == path.read_bytes()
