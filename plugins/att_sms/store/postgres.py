"""The store on PostgreSQL (psycopg 3): one database shared by several bot replicas.

Chosen by a ``postgresql://`` URL (the ``DATABASE_URL`` setting); the password never comes
from that URL but from the environment (``ATT_DATABASE_PASSWORD``, else libpq's own
``PGPASSWORD`` or ``~/.pgpass``). Each transaction takes a connection from a small pool, so
the bot's threads run their transactions side by side; ``Tx.lock`` serialises the ones that
must not interleave (quotas, schema creation) across every replica.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .engine import Database, StoreError, Tx

try:
    import psycopg
    from psycopg import conninfo as pg_conninfo
    from psycopg.pq import TransactionStatus
except ImportError:  # pragma: no cover - only a SQLite-only install lacks it
    psycopg = None  # type: ignore[assignment]

#: Idle connections kept for the next transaction (more are opened when threads need them).
POOL_IDLE = 4
#: How often the offset between this host's clock and the server's is measured again.
CLOCK_RESYNC = 30.0
#: Seconds to wait for the server when connecting, unless the URL says otherwise.
CONNECT_TIMEOUT = 10


class PgTx(Tx):
    """A transaction on PostgreSQL: ``?`` placeholders become ``%s``; locks are advisory."""

    def __init__(self, cursor: Any) -> None:
        super().__init__(cursor, "%s")

    def lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))


class PostgresDatabase(Database):
    """A PostgreSQL database, through a small pool of connections.

    A non-durable transaction commits with ``synchronous_commit = off``: like a SQLite WAL
    commit without fsync, it survives the bot being killed (the server has it) but not the
    server's own crash within a fraction of a second; a durable one waits for the flush.
    """

    dialect = "postgresql"

    def __init__(self, url: str, *, password: str | None = None) -> None:
        if psycopg is None:
            raise StoreError(
                "a postgresql:// DATABASE_URL needs psycopg: pip install 'psycopg[binary]'"
            )
        self._params = _connection_params(url, password)
        self._where = _describe(self._params)
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._closed = False
        self._offset = 0.0
        self._synced_at = float("-inf")
        self._release(self._connect())

    # -- connections -------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            conn = psycopg.connect(**self._params, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self._where}: {_first_line(exc)}") from None
        self._sync_clock(conn)
        return conn

    def _acquire(self) -> Any:
        with self._lock:
            if self._closed:
                raise StoreError(f"the store on {self._where} is closed")
            conn = self._idle.pop() if self._idle else None
        return conn if conn is not None else self._connect()

    def _release(self, conn: Any) -> None:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            with self._lock:
                if not self._closed and len(self._idle) < POOL_IDLE:
                    self._idle.append(conn)
                    return
        conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Tx]:
        conn, cursor = self._begin(durable)
        try:
            yield PgTx(cursor)
        except BaseException:
            _rollback(conn)
            self._release(conn)
            raise
        try:
            cursor.execute("COMMIT")
        except psycopg.Error:
            conn.close()  # the outcome is unknown: never hand this connection out again
            raise
        self._release(conn)

    def _begin(self, durable: bool) -> tuple[Any, Any]:
        """A connection in a new transaction; pooled ones the server dropped are replaced."""
        begin = "BEGIN" if durable else "BEGIN; SET LOCAL synchronous_commit = off"
        conn = self._acquire()
        try:
            cursor = conn.cursor()
            cursor.execute(begin)
            return conn, cursor
        except psycopg.OperationalError:
            conn.close()
            self._discard_idle()  # after a server restart every pooled connection is dead
        conn = self._connect()
        try:
            cursor = conn.cursor()
            cursor.execute(begin)
        except BaseException:
            conn.close()
            raise
        return conn, cursor

    def _discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- the server's clock ------------------------------------------------------

    def now(self) -> float:
        """The server's clock, as this host's clock plus an offset measured every 30 s.

        Every replica then agrees on time (quota windows, dedup windows, follow-ups) to
        within half a round trip, without a query per reading.
        """
        if time.monotonic() - self._synced_at > CLOCK_RESYNC:
            conn = None
            try:
                conn = self._acquire()
                self._sync_clock(conn)
            except (StoreError, psycopg.Error):
                pass  # keep the last offset; the next transaction reports the outage
            finally:
                if conn is not None:
                    self._release(conn)
        return time.time() + self._offset

    def _sync_clock(self, conn: Any) -> None:
        before = time.time()
        row = conn.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())").fetchone()
        after = time.time()
        self._offset = float(row[0]) - (before + after) / 2
        self._synced_at = time.monotonic()

    # -- the rest of the interface -------------------------------------------------

    def after_explicit_ids(self, tx: Tx, table: str, column: str) -> None:
        tx.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?),"
            f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)",
            (table, column),
        )

    def size_bytes(self) -> int | None:
        with self.transaction() as tx:
            total = tx.scalar(
                "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'r' AND c.relname LIKE 'att\\_%' AND n.nspname = current_schema()",
                default=0,
            )
        return int(total)

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._discard_idle()


def _connection_params(url: str, password: str | None) -> dict[str, Any]:
    try:
        params = pg_conninfo.conninfo_to_dict(url.strip())
    except psycopg.Error:
        raise StoreError("DATABASE_URL is not a valid postgresql:// URL") from None
    if params.get("password"):
        raise StoreError(
            "DATABASE_URL must not contain the password: set ATT_DATABASE_PASSWORD"
            " in the bot's environment instead"
        )
    if password:
        params["password"] = password
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params.setdefault("application_name", "errbot-att-sms")
    return params


def _describe(params: dict[str, Any]) -> str:
    """``PostgreSQL user@host:port/dbname``, never the password."""
    user = params.get("user") or ""
    host = params.get("host") or "localhost"
    port = params.get("port") or 5432
    dbname = params.get("dbname") or user
    return f"PostgreSQL {user + '@' if user else ''}{host}:{port}/{dbname}"


def _rollback(conn: Any) -> None:
    try:
        if not conn.closed:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
