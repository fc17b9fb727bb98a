"""The key-value tables behind the errbot storage plugin, on PostgreSQL (no errbot import).

The same two tables as ``sqlite_kv`` (``errbot_kv``: ``(namespace, key) -> value``, and
``errbot_kv_imports``), in one PostgreSQL database that every replica of the bot opens:
a ``!plugin config`` made through one replica is what the others read at their next
start or plugin activation. Every write is its own transaction, committed (and flushed:
errbot's settings are few and precious) before the call returns.

The DSN (``STORAGE_CONFIG = {"dsn": "postgresql://user@host:5432/db"}``) carries no
password: it comes from ``$ATT_DATABASE_PASSWORD`` (the plugin's store uses the same), else
libpq's own ``$PGPASSWORD`` or ``~/.pgpass``. Nothing here ever prints the DSN.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from errbot_storage.sqlite_kv import StorageConfigError

__all__ = ["PASSWORD_ENV", "PostgresKV", "check_dsn"]

T = TypeVar("T")

PASSWORD_ENV = "ATT_DATABASE_PASSWORD"
CONNECT_TIMEOUT = 10
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS errbot_kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BYTEA NOT NULL,
        PRIMARY KEY (namespace, key))""",
    """CREATE TABLE IF NOT EXISTS errbot_kv_imports (
        namespace TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        imported INTEGER NOT NULL,
        skipped INTEGER NOT NULL,
        imported_at TEXT NOT NULL
            DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'))""",
)
#: Replicas starting together create the tables once (an advisory lock's key).
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('errbot_kv.schema'))"
IMPORT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('errbot_kv.import:' || %s))"
SELECT_VALUE = "SELECT value FROM errbot_kv WHERE namespace = %s AND key = %s"
UPSERT_VALUE = (
    "INSERT INTO errbot_kv (namespace, key, value) VALUES (%s, %s, %s) "
    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value"
)
DELETE_VALUE = "DELETE FROM errbot_kv WHERE namespace = %s AND key = %s"
COUNT_KEYS = "SELECT COUNT(*) FROM errbot_kv WHERE namespace = %s"
SELECT_KEYS = "SELECT key FROM errbot_kv WHERE namespace = %s ORDER BY key"
COUNT_BY_NAMESPACE = "SELECT namespace, COUNT(*) FROM errbot_kv GROUP BY namespace ORDER BY 1"
SELECT_IMPORT = "SELECT 1 FROM errbot_kv_imports WHERE namespace = %s"
SELECT_IMPORTS = (
    "SELECT namespace, source, imported, skipped, imported_at FROM errbot_kv_imports ORDER BY 1"
)
INSERT_IMPORT = (
    "INSERT INTO errbot_kv_imports (namespace, source, imported, skipped) VALUES (%s, %s, %s, %s)"
)


def check_dsn(dsn: object) -> str:
    """A ``postgresql://`` URL without a password, or StorageConfigError (never quoting it)."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise StorageConfigError("STORAGE_CONFIG 'dsn' must be a postgresql:// URL")
    dsn = dsn.strip()
    parts = urlsplit(dsn)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise StorageConfigError("STORAGE_CONFIG 'dsn' must be a postgresql:// URL")
    query_keys = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if _libpq_password(dsn) or "password" in query_keys:
        raise StorageConfigError(
            "STORAGE_CONFIG 'dsn' must not carry the password (errbot may log its config): "
            f"set {PASSWORD_ENV} (or PGPASSWORD) in the bot's environment"
        )
    return dsn


def _libpq_password(dsn: str) -> str:
    """The password libpq reads from ``dsn``: its user part runs to the first ``@`` before any
    ``/`` (libpq's ``conninfo_uri_parse_options``), so ``#`` and ``?`` in a password are
    part of it (``urlsplit`` would take them for a fragment or a query)."""
    rest = dsn.split("://", 1)[1] if "://" in dsn else ""
    end = next((i for i, c in enumerate(rest) if c in "@/"), len(rest))
    if end == len(rest) or rest[end] != "@":
        return ""
    return rest[:end].partition(":")[2]


class PostgresKV:
    """Thread-safe key-value store in a PostgreSQL database: one connection behind a lock.

    A connection the server dropped (a restart, a failover) is replaced and the call
    tried once more; every call is one statement or one transaction, so that is safe.
    """

    engine = "PostgreSQL"

    def __init__(self, dsn: str, password: str | None = None) -> None:
        try:
            import psycopg
        except ImportError:
            raise StorageConfigError(
                "STORAGE_CONFIG 'dsn' needs psycopg: pip install 'psycopg[binary]'"
            ) from None
        self._psycopg = psycopg
        self._params = _params(psycopg, check_dsn(dsn), password)
        self._lock = threading.RLock()
        self._conn: Any = None
        self._closed = False
        self._call(_create_schema)

    # -- the connection ------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(**self._params, autocommit=True)
        except self._psycopg.Error as exc:
            raise ConnectionError(
                f"cannot connect to {self.describe()}: {_first_line(exc)}"
            ) from None

    def _call(self, work: Callable[[Any], T]) -> T:
        with self._lock:
            if self._closed:
                raise ConnectionError(f"{self.describe()} is closed")
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    return work(self._conn)
                except self._psycopg.OperationalError:
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

    # -- SQLiteKV's interface --------------------------------------------------------

    def get(self, namespace: str, key: str) -> bytes | None:
        row = self._call(lambda c: c.execute(SELECT_VALUE, (namespace, key)).fetchone())
        return None if row is None else bytes(row[0])

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self._call(lambda c: c.execute(UPSERT_VALUE, (namespace, key, value)))

    def delete(self, namespace: str, key: str) -> bool:
        deleted: bool = self._call(lambda c: c.execute(DELETE_VALUE, (namespace, key)).rowcount > 0)
        return deleted

    def count(self, namespace: str) -> int:
        return int(self._call(lambda c: c.execute(COUNT_KEYS, (namespace,)).fetchone()[0]))

    def keys(self, namespace: str) -> list[str]:
        return [
            row[0] for row in self._call(lambda c: c.execute(SELECT_KEYS, (namespace,)).fetchall())
        ]

    def namespaces(self) -> list[tuple[str, int]]:
        """``(namespace, number of keys)`` of every non-empty namespace."""
        rows = self._call(lambda c: c.execute(COUNT_BY_NAMESPACE).fetchall())
        return [(row[0], int(row[1])) for row in rows]

    def was_imported(self, namespace: str) -> bool:
        return self._call(lambda c: c.execute(SELECT_IMPORT, (namespace,)).fetchone()) is not None

    def imports(self) -> list[tuple[str, str, int, int, str]]:
        """``(namespace, source, imported, skipped, imported_at)`` of every shelf import."""
        return [tuple(row) for row in self._call(lambda c: c.execute(SELECT_IMPORTS).fetchall())]

    def import_namespace(
        self, namespace: str, rows: Iterable[tuple[str, bytes]], source: str, skipped: int
    ) -> int:
        """Write *rows* and the import record in one transaction; the rows written.

        Two replicas importing the same namespace at once: the second finds the record
        of the first and writes nothing.
        """
        pending = list(rows)

        def work(conn: Any) -> int:
            with conn.transaction():
                conn.execute(IMPORT_LOCK, (namespace,))
                if conn.execute(SELECT_IMPORT, (namespace,)).fetchone() is not None:
                    return 0
                for key, value in pending:
                    conn.execute(UPSERT_VALUE, (namespace, key, value))
                conn.execute(INSERT_IMPORT, (namespace, source, len(pending), skipped))
            return len(pending)

        return self._call(work)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def describe(self) -> str:
        """``PostgreSQL user@host:port/dbname``, never the password."""
        params = self._params
        user = params.get("user") or ""
        host = params.get("host") or "localhost"
        port = params.get("port") or 5432
        dbname = params.get("dbname") or user
        return f"PostgreSQL {user + '@' if user else ''}{host}:{port}/{dbname}"


def _create_schema(conn: Any) -> None:
    with conn.transaction():
        conn.execute(SCHEMA_LOCK)
        for statement in SCHEMA:
            conn.execute(statement)


def _params(psycopg: Any, dsn: str, password: str | None) -> dict[str, Any]:
    try:
        params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        raise StorageConfigError("STORAGE_CONFIG 'dsn' is not a valid postgresql:// URL") from None
    password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
    if password:
        params["password"] = password
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params.setdefault("application_name", "errbot-storage")
    return params


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
