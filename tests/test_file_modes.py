"""Every file and directory the plugin or its storage plugin creates is 0600 / 0700.

Run under a umask of 022 (the usual one, which gives -rw-r--r--): the store, its WAL and
shared-memory files, its directory and errbot's SQLite storage must still be private.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from att_sms.store import open_store, store_path
from botkit import REPO_ROOT, Bot, sandbox_config

from errbot_storage.sqlite_kv import SQLiteKV


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """Every file and directory under ``root`` (itself included) -> its permission bits."""
    found = {str(root): mode(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found[os.path.join(dirpath, name)] = mode(Path(dirpath) / name)
    return found


def loose(found: dict[str, int]) -> dict[str, str]:
    return {
        path: oct(bits)
        for path, bits in found.items()
        if bits != (0o700 if os.path.isdir(path) else 0o600)
    }


def test_store_files_and_directory_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"  # neither exists yet
    store = open_store(data_dir)
    try:
        store.record_audit(who="ops", recipients=["tel:+12125550101"], parts=1,
                           message_ids=["m1"], outcome="sent")  # fmt: skip
        path = store_path(data_dir)
        assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        assert loose(modes_under(tmp_path / "new")) == {}
    finally:
        store.close()


def test_files_an_older_version_left_readable_are_tightened(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    store = open_store(tmp_path)
    store.close()
    os.chmod(path.parent, 0o755)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.chmod(f"{path}{suffix}", 0o644)
    store = open_store(tmp_path)
    try:
        store.record_audit(who="ops", recipients=[], parts=0, message_ids=[], outcome="x")
        assert loose(modes_under(path.parent)) == {}
    finally:
        store.close()


def test_errbot_sqlite_storage_is_private(tmp_path: Path) -> None:
    db = SQLiteKV(tmp_path / "made" / "storage.sqlite3")
    try:
        db.put("ns", "key", b"value")
        assert loose(modes_under(tmp_path / "made")) == {}
        assert Path(tmp_path / "made" / "storage.sqlite3-wal").exists()
    finally:
        db.close()


def test_a_running_bot_creates_nothing_readable_by_others(
    env: None, tmp_path: Path, sandbox, client_id: str
) -> None:
    """errbot's test backend on the SQLite storage config_template.py sets, the plugin
    configured, one SMS sent and one received: the store and errbot's storage are private."""
    data_dir = tmp_path / "data"
    bot = Bot(
        data_dir=data_dir,
        STORAGE="SQLite",
        BOT_EXTRA_STORAGE_PLUGINS_DIR=str(REPO_ROOT / "errbot_storage" / ".errbot_plugin"),
    )
    try:
        config = sandbox_config(sandbox, client_id, FOLLOW_UP=False)
        assert bot.configure(config) == "Plugin configuration done."
        assert bot.ask("!sms send +12125551234 disk full").startswith("Sent")
        bot.ask("!sms contact add alice +12125550101")
    finally:
        bot.stop()
    ours = {
        path: bits
        for path, bits in modes_under(data_dir).items()
        if "att_sms" in path or os.path.basename(path).startswith("storage.sqlite3")
    }
    assert any(path.endswith("store.sqlite3") for path in ours)
    assert any(path.endswith("storage.sqlite3") for path in ours)
    assert loose(ours) == {}
