"""DATABASE_URL and TLS: no password in the URL however it is written, and to another
machine the password only through TLS (or a DATABASE_TLS said explicitly).

A small fake PostgreSQL server declines TLS (answers ``N`` to the client's SSLRequest),
asks for the password in clear and records every byte the client sends; it is reached
under a name that is not this machine (``db.example`` with ``hostaddr=127.0.0.1``). The
tests' real PostgreSQL server (tests/pgserver.py) runs without TLS too.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from att_sms.setting_values import SettingsError
from att_sms.settings import parse_settings
from att_sms.store import StoreError, open_store
from att_sms.store import database_url as dbu
from pgserver import PgServer, pg_server, pg_url  # noqa: F401  (fixtures)

ENV = {"ATT_CLIENT_SECRET": "s3cret-value"}
BASE = {"API_BASE_URL": "http://127.0.0.1:8080", "CLIENT_ID": "client"}
DB_PASSWORD = "DB-PASSWORD-5b1e"
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def settings_url(url: str, tls: str | None = None, **env: str) -> str:
    config = {**BASE, "DATABASE_URL": url, **({"DATABASE_TLS": tls} if tls else {})}
    return parse_settings(config, {**ENV, **env}).database_url


def refusal(url: str, tls: str | None = None, **env: str) -> str:
    with pytest.raises(SettingsError) as err:
        settings_url(url, tls, **env)
    assert err.value.key == "DATABASE_URL"
    return str(err.value)


# -- the rule in the settings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("postgresql://bot@db.example/att_sms", {}),
        ("postgresql://bot@db.example/att_sms?sslmode=prefer", {}),
        ("postgresql://bot@db.example/att_sms?sslmode=require", {}),
        ("postgresql://bot@db.example/att_sms?sslmode=disable", {}),
        ("postgresql://bot@10.1.2.3:5432/att_sms", {}),
        ("postgresql:///att_sms?host=db.example", {}),
        ("postgresql://bot@localhost/att_sms?hostaddr=192.0.2.7", {}),
        ("postgresql://bot@127.0.0.1,db.example/att_sms", {}),
        ("postgresql:///att_sms", {"PGHOST": "db.example"}),
        ("postgresql://bot@db.example/att_sms", {"PGSSLMODE": "require"}),
    ],
)
def test_other_machine_without_verified_tls_is_refused(url: str, env: dict[str, str]) -> None:
    message = refusal(url, **env)
    assert "DATABASE_TLS" in message and "verify-full" in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot@db.example/att_sms?sslmode=verify-full",
        "postgresql://bot@db.example/att_sms?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
        "postgresql://bot@127.0.0.1:5432/att_sms",
        "postgresql://bot@[::1]:5432/att_sms",
        "postgresql://bot@localhost/att_sms?sslmode=disable",
        "postgresql:///att_sms?host=/run/postgresql",
        "postgresql:///att_sms",
    ],
)
def test_verified_tls_or_this_machine_is_accepted_as_is(url: str) -> None:
    assert settings_url(url) == url


def test_verified_tls_from_pgsslmode_is_accepted() -> None:
    url = "postgresql://bot@db.example/att_sms"
    assert settings_url(url, PGSSLMODE="verify-full") == url


def test_database_tls_require_never_falls_back_to_clear_text() -> None:
    """``require``: TLS without verifying the server, and never libpq's clear fallback."""
    assert settings_url("postgresql://bot@db.example/att_sms", "require") == (
        "postgresql://bot@db.example/att_sms?sslmode=require"
    )
    assert settings_url("postgresql://bot@db.example/att_sms?connect_timeout=3", "require") == (
        "postgresql://bot@db.example/att_sms?connect_timeout=3&sslmode=require"
    )
    # PGSSLMODE=prefer in the environment does not weaken it: the URL now says require.
    assert settings_url("postgresql://bot@db.example/att", "require", PGSSLMODE="prefer").endswith(
        "?sslmode=require"
    )
    for weaker in ("disable", "allow", "prefer"):
        url = f"postgresql://bot@db.example/att_sms?sslmode={weaker}"
        assert f"sslmode={weaker}" in refusal(url, "require")
    strong = "postgresql://bot@db.example/att_sms?sslmode=verify-full"
    assert settings_url(strong, "require") == strong


def test_database_tls_off_is_taken_as_said() -> None:
    url = "postgresql://bot@db.example/att_sms?sslmode=disable"
    assert settings_url(url, "off") == url
    with pytest.raises(SettingsError) as err:
        settings_url(url, "sometimes")
    assert str(err.value).startswith("DATABASE_TLS: must be one of verify, require, off")


# -- passwords, however the URL holds them -------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:#hunter2@db.example/att_sms?sslmode=verify-full",
        "postgresql://bot:?hunter2@db.example/att_sms?sslmode=verify-full",
        "postgresql://bot:hun#ter2@db.example/att_sms?sslmode=verify-full",
        "postgresql://bot:hun?ter2@db.example/att_sms?sslmode=verify-full",
        "postgresql://bot:%23hunter2@db.example/att_sms?sslmode=verify-full",
        "postgresql://bot:#hunter2@127.0.0.1/att_sms",
        "postgresql://db.example/att_sms?sslmode=verify-full&password=hunter2",
    ],
)
def test_password_holding_hash_or_question_mark_is_refused(url: str) -> None:
    for tls in (None, "off"):
        message = refusal(url, tls)
        assert "password" in message and "ATT_DATABASE_PASSWORD" in message
        assert "hunter2" not in message and "#" not in message and "ter2" not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:#x@db.example/att",
        "postgresql://bot:?x@db.example:5433/att?sslmode=require",
        "postgres://u:p%40ss@h1,h2:5433/db?application_name=a",
        "postgresql:///att?host=/run/postgresql&port=5433",
        "postgresql://bot@[::1]:5432/att",
        "postgresql://db.example",
    ],
)
def test_fallback_parser_reads_urls_as_libpq_does(url: str) -> None:
    """Without psycopg installed, the rules written out give libpq's reading."""
    from psycopg import conninfo

    assert dbu._parse_like_libpq(url) == conninfo.conninfo_to_dict(url)


# -- against servers that decline TLS -------------------------------------------------------


class DecliningServer:
    """A fake PostgreSQL server: declines TLS, asks for a clear-text password, records."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.received = bytearray()  # everything after the TLS refusal
        self.declined = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self._talk(conn)
                except OSError:
                    pass

    def _talk(self, conn: socket.socket) -> None:
        while True:
            head = _read(conn, 8)
            if len(head) < 8:
                return
            length, code = struct.unpack("!II", head)
            if code in (SSL_REQUEST, GSSENC_REQUEST) and length == 8:
                self.declined += 1  # before the answer: the client may be done once it reads it
                conn.sendall(b"N")
                continue
            self.received += head + _read(conn, length - 8)  # the startup message
            conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
            self.received += _read(conn, 4096, whole=False)  # the password message, if any
            conn.sendall(_error("28P01", "password authentication failed"))
            return

    def stop(self) -> None:
        self._listener.close()


def _read(conn: socket.socket, count: int, *, whole: bool = True) -> bytes:
    data = bytearray()
    while len(data) < count:
        try:
            chunk = conn.recv(count - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
        if not whole:
            break
    return bytes(data)


def _error(code: str, text: str) -> bytes:
    fields = b"SFATAL\x00C" + code.encode() + b"\x00M" + text.encode() + b"\x00\x00"
    return b"E" + struct.pack("!I", 4 + len(fields)) + fields


@pytest.fixture
def declining() -> Iterator[DecliningServer]:
    server = DecliningServer()
    try:
        yield server
    finally:
        server.stop()


def remote_looking_url(server: DecliningServer) -> str:
    """``db.example`` by name (not this machine), reached at 127.0.0.1 by ``hostaddr``."""
    return f"postgresql://bot@db.example:{server.port}/att_sms?hostaddr=127.0.0.1&connect_timeout=5"


def test_fake_server_shows_libpq_default_sends_the_password_in_clear(
    declining: DecliningServer, tmp_path: Path
) -> None:
    """The control: DATABASE_TLS=off (libpq's sslmode=prefer) hands the password over."""
    url = settings_url(remote_looking_url(declining), "off")
    with pytest.raises(StoreError):
        open_store(tmp_path, database_url=url, password=DB_PASSWORD)
    assert declining.declined >= 1
    assert DB_PASSWORD.encode() in declining.received


def test_password_never_reaches_a_server_declining_tls(
    declining: DecliningServer, tmp_path: Path
) -> None:
    url = remote_looking_url(declining)
    assert "DATABASE_TLS" in refusal(url)  # the default refuses it outright
    url = settings_url(url, "require")
    with pytest.raises(StoreError) as err:
        open_store(tmp_path, database_url=url, password=DB_PASSWORD)
    assert "SSL" in str(err.value) or "TLS" in str(err.value)
    assert declining.declined >= 1
    assert declining.received == b""  # not even the startup message: no user, no password
    assert DB_PASSWORD not in str(err.value)


def test_require_against_the_test_postgresql_without_tls_fails(
    pg_server: PgServer,  # noqa: F811
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The real server declines TLS: with DATABASE_TLS=require the store does not open."""
    store = open_store(tmp_path, database_url=settings_url(pg_url), password=pg_server.password)
    store.close()  # the same URL as libpq's default works: the server is there
    with pytest.raises(StoreError) as err:
        open_store(
            tmp_path, database_url=settings_url(pg_url, "require"), password=pg_server.password
        )
    assert "SSL" in str(err.value)


# -- errbot's settings on PostgreSQL (STORAGE_CONFIG 'dsn'): the same rule -----------------


def storage_plugin(data_dir: Path, **storage_config: object) -> Any:
    from errbot_storage.storage_plugin import SQLiteStoragePlugin

    return SQLiteStoragePlugin(
        SimpleNamespace(BOT_DATA_DIR=str(data_dir), STORAGE_CONFIG=dict(storage_config))
    )


def test_errbot_storage_refuses_unverified_tls_to_another_machine(tmp_path: Path) -> None:
    from errbot_storage.sqlite_kv import StorageConfigError

    for dsn in (
        "postgresql://att@db.example/errbot",
        "postgresql://att@db.example/e?sslmode=require",
    ):
        with pytest.raises(StorageConfigError, match="'tls' to require"):
            storage_plugin(tmp_path, dsn=dsn)
    verified = "postgresql://att@db.example/errbot?sslmode=verify-full"
    assert storage_plugin(tmp_path, dsn=verified).options.dsn == verified
    assert storage_plugin(
        tmp_path, dsn="postgresql://att@db.example/errbot", tls="require"
    ).options.dsn == ("postgresql://att@db.example/errbot?sslmode=require")
    with pytest.raises(StorageConfigError, match="must be one of verify, require, off"):
        storage_plugin(tmp_path, dsn=verified, tls="maybe")
    with pytest.raises(StorageConfigError, match="applies to a 'dsn'"):
        storage_plugin(tmp_path, tls="require")


def test_errbot_storage_never_sends_the_password_to_a_server_declining_tls(
    declining: DecliningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATT_DATABASE_PASSWORD", DB_PASSWORD)
    plugin = storage_plugin(tmp_path, dsn=remote_looking_url(declining), tls="require")
    with pytest.raises(Exception) as err:  # noqa: PT011 - the storage's connection error
        plugin.open("core")
    assert "SSL" in str(err.value)
    assert declining.declined >= 1 and declining.received == b""
