"""The key-value tables behind the errbot storage plugin, on SQLite (no errbot import).

One table holds every value: ``(namespace, key) -> value`` (bytes; the caller pickles).
A second, small table remembers which namespaces were imported from an old errbot Shelf,
so an emptied namespace is never imported again.

Durability: the database is in WAL mode and every write is its own transaction,
committed before the call returns, so a value survives any kill of the process
(``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt the file;
``FULL`` also survives that, at one fsync per write).

The PostgreSQL mode is the sibling module ``postgres_kv`` with the same class shape and
the same tables: the SQL is plain (``ON CONFLICT`` upserts work in both); only the
placeholders (``?`` here) and the connection handling differ.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from errbot_storage.private_files import private_dirs, private_sqlite_file

__all__ = ["SQLiteKV", "StorageConfigError", "connect", "create_schema"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS errbot_kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (namespace, key))""",
    """CREATE TABLE IF NOT EXISTS errbot_kv_imports (
        namespace TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        imported INTEGER NOT NULL,
        skipped INTEGER NOT NULL,
        imported_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
)
SELECT_VALUE = "SELECT value FROM errbot_kv WHERE namespace = ? AND key = ?"
UPSERT_VALUE = (
    "INSERT INTO errbot_kv (namespace, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value"
)
DELETE_VALUE = "DELETE FROM errbot_kv WHERE namespace = ? AND key = ?"
COUNT_KEYS = "SELECT COUNT(*) FROM errbot_kv WHERE namespace = ?"
SELECT_KEYS = "SELECT key FROM errbot_kv WHERE namespace = ? ORDER BY key"
COUNT_BY_NAMESPACE = "SELECT namespace, COUNT(*) FROM errbot_kv GROUP BY namespace ORDER BY 1"
SELECT_IMPORT = "SELECT 1 FROM errbot_kv_imports WHERE namespace = ?"
SELECT_IMPORTS = (
    "SELECT namespace, source, imported, skipped, imported_at FROM errbot_kv_imports ORDER BY 1"
)
INSERT_IMPORT = (
    "INSERT INTO errbot_kv_imports (namespace, source, imported, skipped) VALUES (?, ?, ?, ?)"
)
SYNCHRONOUS_MODES = ("NORMAL", "FULL")
#: Seconds a write waits for another process's write lock before failing.
BUSY_TIMEOUT = 30.0


class StorageConfigError(ValueError):
    """STORAGE_CONFIG holds an option or a value this storage does not know."""


def connect(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open (creating it if needed) the database file in WAL mode, autocommit."""
    if synchronous not in SYNCHRONOUS_MODES:
        raise StorageConfigError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
    private_dirs(path.parent)
    private_sqlite_file(path)
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        conn.execute(statement)


def fetch_value(conn: sqlite3.Connection, namespace: str, key: str) -> bytes | None:
    row = conn.execute(SELECT_VALUE, (namespace, key)).fetchone()
    return None if row is None else bytes(row[0])


def upsert_value(conn: sqlite3.Connection, namespace: str, key: str, value: bytes) -> None:
    conn.execute(UPSERT_VALUE, (namespace, key, value))


def delete_value(conn: sqlite3.Connection, namespace: str, key: str) -> bool:
    return conn.execute(DELETE_VALUE, (namespace, key)).rowcount > 0


def count_keys(conn: sqlite3.Connection, namespace: str) -> int:
    return int(conn.execute(COUNT_KEYS, (namespace,)).fetchone()[0])


def list_keys(conn: sqlite3.Connection, namespace: str) -> list[str]:
    return [row[0] for row in conn.execute(SELECT_KEYS, (namespace,))]


def count_by_namespace(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    return [(row[0], int(row[1])) for row in conn.execute(COUNT_BY_NAMESPACE)]


def list_imports(conn: sqlite3.Connection) -> list[tuple[str, str, int, int, str]]:
    return [tuple(row) for row in conn.execute(SELECT_IMPORTS)]


def import_recorded(conn: sqlite3.Connection, namespace: str) -> bool:
    return conn.execute(SELECT_IMPORT, (namespace,)).fetchone() is not None


def import_rows(
    conn: sqlite3.Connection,
    namespace: str,
    rows: Iterable[tuple[str, bytes]],
    source: str,
    skipped: int,
) -> int:
    """Write *rows* and the import record in one transaction; return the rows written."""
    written = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for key, value in rows:
            upsert_value(conn, namespace, key, value)
            written += 1
        conn.execute(INSERT_IMPORT, (namespace, source, written, skipped))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return written


class SQLiteKV:
    """Thread-safe key-value store on one SQLite file: one connection behind a lock."""

    engine = "SQLite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = connect(path, synchronous)
        create_schema(self._conn)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"{self.path} is closed")
        return self._conn

    def get(self, namespace: str, key: str) -> bytes | None:
        with self._lock:
            return fetch_value(self._connection(), namespace, key)

    def put(self, namespace: str, key: str, value: bytes) -> None:
        with self._lock:
            upsert_value(self._connection(), namespace, key, value)

    def delete(self, namespace: str, key: str) -> bool:
        with self._lock:
            return delete_value(self._connection(), namespace, key)

    def count(self, namespace: str) -> int:
        with self._lock:
            return count_keys(self._connection(), namespace)

    def keys(self, namespace: str) -> list[str]:
        with self._lock:
            return list_keys(self._connection(), namespace)

    def namespaces(self) -> list[tuple[str, int]]:
        """``(namespace, number of keys)`` of every non-empty namespace."""
        with self._lock:
            return count_by_namespace(self._connection())

    def was_imported(self, namespace: str) -> bool:
        with self._lock:
            return import_recorded(self._connection(), namespace)

    def imports(self) -> list[tuple[str, str, int, int, str]]:
        """``(namespace, source, imported, skipped, imported_at)`` of every shelf import."""
        with self._lock:
            return list_imports(self._connection())

    def import_namespace(
        self, namespace: str, rows: Iterable[tuple[str, bytes]], source: str, skipped: int
    ) -> int:
        with self._lock:
            return import_rows(self._connection(), namespace, rows, source, skipped)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def describe(self) -> str:
        return f"SQLite file {self.path} (WAL)"
