"""The database under the store: one connection, transactions, the store's clock.

The store's SQL is written once, with ``?`` placeholders, in the dialect SQLite and
PostgreSQL share (``ON CONFLICT``, ``RETURNING``, partial indexes). A ``Database`` runs it
on one engine; ``SqliteDatabase`` is the embedded default. Every write happens inside
``transaction()``: all of it commits, or none of it.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from .private_files import private_dirs, private_sqlite_file

#: How long a writer waits for another process (the fetch child) holding the write lock.
BUSY_TIMEOUT_MS = 30_000


class StoreError(Exception):
    """The store could not be opened or used."""


# Lone surrogates (JSON "\ud800" decodes to one) cannot be encoded for either engine, and
# PostgreSQL text cannot hold NUL: such characters are stored as U+FFFD, the same on both
# engines, so that a carrier's odd text never makes the store refuse what a read returned.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with the characters no engine can store replaced (other types unchanged)."""
    if isinstance(value, str) and not _plain(value) and _UNSTORABLE.search(value):
        return _UNSTORABLE.sub("\ufffd", value)
    return value


def _plain(text: str) -> bool:
    """ASCII without NUL: nothing to replace (most of what is stored; no regex needed)."""
    return text.isascii() and "\x00" not in text


class Cursor(Protocol):
    """What ``Tx.execute`` returns: the DB-API cursor of either engine (both untyped here)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Tx:
    """One open transaction: run statements, read rows."""

    def __init__(self, cursor: Any, placeholder: str) -> None:
        self._cursor = cursor
        self._placeholder = placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self._placeholder != "?":
            sql = sql.replace("%", "%%").replace("?", self._placeholder)
        self._cursor.execute(sql, [storable(p) for p in params])
        cursor: Cursor = self._cursor
        return cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] = (), default: Any = None) -> Any:
        row = self.one(sql, params)
        return default if row is None or row[0] is None else row[0]

    def lock(self, name: str) -> None:
        """Serialise this transaction with every other one that locks ``name``.

        A no-op on SQLite, where ``BEGIN IMMEDIATE`` already admits one writer at a time.
        """


class Database:
    """What the store needs of an engine; see ``SqliteDatabase``."""

    dialect = "abstract"

    def transaction(  # pragma: no cover - interface
        self, *, durable: bool = False
    ) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only transaction (every engine: a ``transaction()``; SQLite: cheaper)."""
        return self.transaction()

    def now(self) -> float:
        """The store's clock (epoch seconds): the same for every process using the store."""
        return time.time()

    def after_explicit_ids(self, tx: Tx, table: str, column: str) -> None:
        """Rows were inserted into ``table`` with explicit ``column`` values: number on after them.

        SQLite's AUTOINCREMENT does so by itself; PostgreSQL's identity does not.
        """

    def size_bytes(self) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class SqliteDatabase(Database):
    """One SQLite file in WAL mode, shared by the bot's threads (and its fetch child).

    A durable commit (what the carrier has already forgotten) is fsynced, so even a power
    cut keeps it; other commits only need to survive a killed process, which a WAL commit
    without fsync does.
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            private_dirs(self.path.parent)
            private_sqlite_file(self.path)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _use_wal(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._synchronous = ""

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Tx]:
        with self._lock:
            self._set_synchronous("FULL" if durable else "NORMAL")
            cursor = self._db.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(cursor, "?")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """Reads without BEGIN and COMMIT: each statement is its own consistent read (SQLite's
        autocommit), and with the lock held no other thread's transaction is joined. For
        reads of one statement, or whose statements need no common snapshot."""
        with self._lock:
            yield Tx(self._db.cursor(), "?")

    def _set_synchronous(self, level: str) -> None:
        if level != self._synchronous:
            self._db.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    def size_bytes(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except OSError:
                pass
        return total

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch a new file to WAL; the file remembers it.

    Two connections opening a new file at once (the bot and its fetch child) can find it
    locked: the switch does not wait for the busy timeout, so it is retried here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
