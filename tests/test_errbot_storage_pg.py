"""errbot's own settings in PostgreSQL (STORAGE_CONFIG 'dsn'), shared by the bot's replicas.

On a real, throwaway PostgreSQL server (tests/pgserver.py): the storage plugin driven as
errbot drives it, two replicas' views of one database, the Shelf import done once when
two replicas start together, and two errbot processes (Text backend) with different data
directories reading the settings one of them was given in chat.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from test_errbot_storage import ATT_CONFIG, bot_config, write_shelf
from test_errbot_storage import Bot as TextBot

from errbot_storage.sqlite_kv import StorageConfigError
from errbot_storage.status_plugin import storage_report
from errbot_storage.storage_plugin import SQLiteStoragePlugin

#: The fixtures pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import PgServer


@pytest.fixture
def password(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ATT_DATABASE_PASSWORD", pg_server.password)
    return pg_server.password


def make_plugin(data_dir: Path, **storage_config: object) -> SQLiteStoragePlugin:
    config = SimpleNamespace(BOT_DATA_DIR=str(data_dir), STORAGE_CONFIG=dict(storage_config))
    return SQLiteStoragePlugin(config)


def test_two_replicas_read_and_write_one_set_of_settings(
    pg_url: str, password: str, tmp_path: Path
) -> None:
    one = make_plugin(tmp_path / "one", dsn=pg_url).open("core")
    two = make_plugin(tmp_path / "two", dsn=pg_url).open("core")
    value = {"AttSms": {"INBOX_ROUTES": {"r": "#ops"}, "POLL_INTERVAL": 30}, "s": {1, 2}}
    one.set("configs", value)
    assert two.get("configs") == value
    two.set("bl_plugins", ["VersionChecker"])
    assert sorted(one.keys()) == ["bl_plugins", "configs"] and one.len() == 2
    one.remove("bl_plugins")
    with pytest.raises(KeyError):
        two.get("bl_plugins")
    with pytest.raises(KeyError):
        two.remove("bl_plugins")
    assert not (tmp_path / "one" / "storage.sqlite3").exists()
    one.close()
    two.close()


def test_many_threads_of_two_replicas_write_at_once(
    pg_url: str, password: str, tmp_path: Path
) -> None:
    plugins = [make_plugin(tmp_path / name, dsn=pg_url) for name in ("a", "b")]
    spaces = [p.open(f"ns{i}") for i, p in enumerate(plugins)]
    errors: list[BaseException] = []

    def write(space, thread: int) -> None:  # noqa: ANN001 - errbot's StorageBase
        try:
            for i in range(40):
                space.set(f"t{thread}-{i}", {"i": i})
                assert space.get(f"t{thread}-{i}") == {"i": i}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(spaces[t % 2], t)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert spaces[0].len() == 3 * 40 and spaces[1].len() == 3 * 40
    report = storage_report(plugins[0])
    assert "Storage: PostgreSQL" in report and "- ns0: 120 keys" in report
    assert password not in report
    for space in spaces:
        space.close()
    assert plugins[0].database is None  # the last namespace closed the connection


def test_a_shelf_two_replicas_find_at_once_is_imported_once(
    pg_url: str, password: str, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_shelf(tmp_path / name, "core", {"configs": {"from": name}})
    plugins = [make_plugin(tmp_path / name, dsn=pg_url) for name in ("a", "b")]
    start = threading.Barrier(2)
    opened: list = []

    def open_core(plugin: SQLiteStoragePlugin) -> None:
        start.wait()
        opened.append(plugin.open("core"))

    threads = [threading.Thread(target=open_core, args=(p,)) for p in plugins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(opened) == 2
    value = opened[0].get("configs")
    assert value in ({"from": "a"}, {"from": "b"}) and opened[1].get("configs") == value
    assert len(plugins[0].database.imports()) == 1
    for space in opened:
        space.close()


def test_a_dsn_with_a_password_or_with_sqlite_options_is_refused(tmp_path: Path) -> None:
    for dsn in (
        "postgresql://att:hunter2@db/errbot",
        "postgresql://db/errbot?password=hunter2",
        "postgresql://att:#hunter2@db/errbot",  # urlsplit reads "#hunter2@db/errbot" as a fragment
        "postgresql://att:hun?ter2@db/errbot",
    ):
        with pytest.raises(StorageConfigError, match="password") as refused:
            make_plugin(tmp_path, dsn=dsn)
        assert "hunter2" not in str(refused.value)
    with pytest.raises(StorageConfigError, match="postgresql://"):
        make_plugin(tmp_path, dsn="mysql://db/errbot")
    with pytest.raises(StorageConfigError, match="SQLite options"):
        make_plugin(tmp_path, dsn="postgresql://db/errbot", path="x.sqlite3")


def test_an_unreachable_database_fails_with_where_and_without_the_password(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATT_DATABASE_PASSWORD", "wrong-password-xyz")
    plugin = make_plugin(tmp_path, dsn=pg_server.url("att_tests"))
    with pytest.raises(ConnectionError) as failed:
        plugin.open("core")
    assert f"127.0.0.1:{pg_server.port}/att_tests" in str(failed.value)
    assert "wrong-password-xyz" not in str(failed.value)


def test_settings_given_in_chat_to_one_replica_are_read_by_another(
    pg_url: str, pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bots' environment drops ATT_* variables; libpq's own PGPASSWORD reaches them.
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    bots: list[TextBot] = []
    try:
        for name in ("first", "second"):
            workdir = tmp_path / name
            workdir.mkdir()
            config = bot_config(workdir)
            config.write_text(config.read_text() + f"STORAGE_CONFIG = {{'dsn': {pg_url!r}}}\n")
            bots.append(TextBot(workdir, config, name))
            if name == "first":
                bots[0].wait_ready()
                bots[0].ask(f"!plugin config AttSms {ATT_CONFIG}", "Plugin configuration done")
                bots[0].signal_group(signal.SIGKILL)
        second = bots[1]
        second.wait_ready()
        shown = second.ask("!plugin config AttSms", "API_BASE_URL")
        assert "http://127.0.0.1:9" in shown and "'r': '@ops'" in shown
        status = second.ask("!storage", "Storage: PostgreSQL")
        assert f"127.0.0.1:{pg_server.port}/att_tests" in status
        for bot in bots:
            assert pg_server.password not in bot.output()
            assert pg_server.password not in bot.log_path.read_text(errors="replace")
    finally:
        for bot in bots:
            bot.close()
