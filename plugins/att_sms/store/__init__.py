"""The plugin's one store: everything it keeps, in one transactional database.

``open_store(data_dir)`` opens the embedded SQLite default (``<data_dir>/att_sms/store.sqlite3``):
nothing to install or start. ``open_store(data_dir, database_url="postgresql://...")`` opens
PostgreSQL instead, shared by several replicas. Every method is one transaction; see the
table modules for what each part keeps. The store imports nothing from errbot.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

from att_sms.text.numbers import canonical_sender

from .alerts import AlertGroup, AlertTables, OwedSms
from .audit import AuditTables
from .conversations import Claim, Conversation, ConversationTables
from .directory import DirectoryTables
from .engine import Database, SqliteDatabase, StoreError, Tx
from .followups import FollowUp, FollowUpTables
from .inbound import (
    DEFAULT_SEEN_LIMIT,
    InboundOrigin,
    InboundTables,
    StoredInbound,
    handle_for,
    message_key,
)
from .leases import CommandClaim, Lease, LeaseTables
from .pages import DuplicatePage, PagePost, PageTables
from .quotas import QuotaTables
from .rotations import RotationRecord, RotationRefused, RotationTables
from .schema import create_schema

__all__ = [
    "AlertGroup",
    "Claim",
    "CommandClaim",
    "Conversation",
    "Database",
    "DuplicatePage",
    "FollowUp",
    "InboundOrigin",
    "Lease",
    "OwedSms",
    "PagePost",
    "RotationRecord",
    "RotationRefused",
    "Store",
    "StoreError",
    "StoredInbound",
    "Tx",
    "handle_for",
    "message_key",
    "open_store",
    "store_path",
]


class Store(
    InboundTables,
    DirectoryTables,
    QuotaTables,
    AuditTables,
    FollowUpTables,
    PageTables,
    LeaseTables,
    RotationTables,
    AlertTables,
    ConversationTables,
):
    """Inbound ledger, reply handles, contacts, groups, opt-outs, quotas, audit, follow-ups,
    escalating pages, the replicas' lease and command claims, rotations, alert groups,
    conversations as threads."""

    def __init__(
        self,
        database: Database,
        *,
        default_region: str = "US",
        seen_limit: int = DEFAULT_SEEN_LIMIT,
    ) -> None:
        self._db = database
        self.default_region = default_region
        self.seen_limit = seen_limit
        self._held: dict[int, tuple[int, float]] = {}  # quota reservations not settled yet
        with database.transaction() as tx:
            tx.lock("att_sms.schema")  # replicas starting together create the tables once
            create_schema(tx, database.dialect)

    @property
    def database(self) -> Database:
        return self._db

    def now(self) -> float:
        """The store's clock (the same for every process and replica using it)."""
        return self._db.now()

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Tx]:
        """One transaction for several writes of one command."""
        return self._db.transaction(durable=durable)

    def get_meta(self, key: str) -> str | None:
        with self._db.transaction() as tx:
            value: str | None = tx.scalar("SELECT value FROM att_meta WHERE key = ?", (key,))
            return value

    def set_meta(self, key: str, value: str, tx: Tx | None = None) -> None:
        if tx is None:
            with self._db.transaction() as own:
                self.set_meta(key, value, own)
            return
        tx.execute(
            "INSERT INTO att_meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def name_of_sender(self, sender: str) -> str | None:
        """The contact name of an inbound sender, however the carrier wrote the number."""
        return self.name_of(canonical_sender(sender, self.default_region))

    def describe(self) -> str:
        return self._db.describe()

    def size_bytes(self) -> int | None:
        return self._db.size_bytes()

    def close(self) -> None:
        self._db.close()


def store_path(data_dir: str | Path) -> Path:
    """Where the embedded store lives in the bot's data directory."""
    return Path(data_dir) / "att_sms" / "store.sqlite3"


def open_store(
    data_dir: str | Path,
    *,
    database_url: str = "",
    password: str | None = None,
    default_region: str = "US",
    seen_limit: int = DEFAULT_SEEN_LIMIT,
) -> Store:
    """Open (creating its tables if needed) the store: SQLite in ``data_dir`` by default.

    A ``postgresql://`` ``database_url`` (no password in it) selects PostgreSQL; its
    password is ``password``, else ``$ATT_DATABASE_PASSWORD``, else libpq's ``$PGPASSWORD``
    or ``~/.pgpass``. Raises ``StoreError`` when the database cannot be opened.
    """
    url = (database_url or "").strip()
    if not url:
        database: Database = SqliteDatabase(store_path(data_dir))
    elif is_postgres_url(url):
        from .postgres import PostgresDatabase

        if password is None:
            password = os.environ.get("ATT_DATABASE_PASSWORD") or None
        database = PostgresDatabase(url, password=password)
    else:
        raise StoreError(
            "DATABASE_URL must be a postgresql:// URL (or empty for the embedded SQLite store)"
        )
    try:
        return Store(database, default_region=default_region, seen_limit=seen_limit)
    except Exception as exc:
        database.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(
            f"cannot create the store's tables in {database.describe()}: {exc}"
        ) from None


def is_postgres_url(url: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return url.strip().lower().startswith(("postgresql://", "postgres://"))
