"""The inbound ledger: every SMS fetched from the carrier, until it has been posted once.

The carrier's inbox read is destructive, so what a read returned is written here, in
one transaction, before anything is posted; a post is then marked done. After a crash
the pending rows are posted again on start-up, and a bounded table of seen ids stops a
message the carrier re-delivers from being posted twice.

Why SQLite and not errbot's shelf: on a Python built without gdbm (common with pyenv),
errbot's shelf storage is ``dbm.dumb``, which keeps updates of an existing key in memory
until the shelf is closed. A SIGKILL then loses them, or worse, leaves an index that
points at a half-rewritten value. SQLite commits survive a killed process. The file lives
in the bot's data directory, beside errbot's own storage.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_SEEN_LIMIT = 20_000


class InboundLike(Protocol):
    """What the ledger needs of a fetched message (``client.InboundMessage`` fits)."""

    message_id: str
    message: str
    sender_address: str
    destination_address: str | None
    date_time: str | None


@dataclass(frozen=True)
class StoredInbound:
    """A fetched inbound SMS waiting to be posted."""

    seq: int
    key: str
    registration_id: str
    message_id: str
    sender_address: str
    message: str
    destination_address: str | None
    date_time: str | None
    fetched_at: float


def handle_for(seq: int) -> str:
    """The short handle an inbound post carries for ``!sms reply``: ``r`` + base-36 seq."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        seq, rest = divmod(seq, 36)
        out = digits[rest] + out
        if seq == 0:
            return "r" + out


def message_key(registration_id: str, message: InboundLike) -> str:
    """The dedup key of a message: its registration and carrier id (or a content hash)."""
    message_id = (message.message_id or "").strip()
    if not message_id:
        digest = hashlib.sha256(
            "\x1f".join(
                (message.sender_address or "", message.date_time or "", message.message or "")
            ).encode("utf-8", "surrogatepass")
        ).hexdigest()[:24]
        message_id = "sha256:" + digest
    return f"{registration_id}\x1f{message_id}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    registration_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender_address TEXT NOT NULL,
    message TEXT NOT NULL,
    destination_address TEXT,
    date_time TEXT,
    fetched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    posted_at REAL NOT NULL,
    handle TEXT,
    sender_address TEXT
);
CREATE INDEX IF NOT EXISTS seen_handle ON seen (handle);
"""


class InboxLedger:
    """Pending and seen inbound messages in one SQLite file; safe to share between threads."""

    def __init__(self, path: str | Path, seen_limit: int = DEFAULT_SEEN_LIMIT) -> None:
        self.path = Path(path)
        self.seen_limit = seen_limit
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def record_fetched(
        self, registration_id: str, messages: Iterable[InboundLike]
    ) -> list[StoredInbound]:
        """Store what one inbox read returned; return the rows that are new (not seen before)."""
        now = time.time()
        added: list[StoredInbound] = []
        with self._lock, self._transaction(durable=True):
            for message in messages:
                key = message_key(registration_id, message)
                if self._db.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone():
                    continue
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO pending (key, registration_id, message_id, sender_address,"
                    " message, destination_address, date_time, fetched_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        registration_id,
                        key.split("\x1f", 1)[1],
                        message.sender_address or "",
                        message.message or "",
                        message.destination_address,
                        message.date_time,
                        now,
                    ),
                )
                if cursor.rowcount:
                    added.append(self._row_by_key(key))
        return added

    def pending(self, registration_id: str | None = None) -> list[StoredInbound]:
        """Messages stored but not yet posted, oldest first."""
        query = "SELECT * FROM pending"
        args: tuple[str, ...] = ()
        if registration_id is not None:
            query += " WHERE registration_id = ?"
            args = (registration_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [_row(r) for r in rows]

    def mark_posted(self, keys: Iterable[str]) -> int:
        """Move posted messages from pending to seen; return how many were pending."""
        now = time.time()
        moved = 0
        with self._lock, self._transaction(durable=False):
            for key in keys:
                row = self._db.execute(
                    "SELECT seq, sender_address FROM pending WHERE key = ?", (key,)
                ).fetchone()
                handle, sender = (handle_for(row[0]), row[1]) if row else (None, None)
                moved += self._db.execute("DELETE FROM pending WHERE key = ?", (key,)).rowcount
                self._db.execute(
                    "INSERT OR IGNORE INTO seen (key, posted_at, handle, sender_address)"
                    " VALUES (?, ?, ?, ?)",
                    (key, now, handle, sender),
                )
            self._prune_seen()
        return moved

    def counts(self) -> dict[str, int]:
        """How many messages are pending and how many ids are remembered as seen."""
        with self._lock:
            pending = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
            seen = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
        return {"pending": pending, "seen": seen}

    def was_seen(self, registration_id: str, message: InboundLike) -> bool:
        """True when this message was already posted."""
        key = message_key(registration_id, message)
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is not None
            )

    def sender_for_handle(self, handle: str) -> str | None:
        """The sender of the inbound post that carried ``handle`` (``r7ps``), if still known."""
        handle = handle.strip().lstrip("#").lower()
        with self._lock:
            row = self._db.execute(
                "SELECT sender_address FROM seen WHERE handle = ? ORDER BY seq DESC LIMIT 1",
                (handle,),
            ).fetchone()
            if row is None and handle.startswith("r"):
                try:
                    seq = int(handle[1:], 36)
                except ValueError:
                    return None
                row = self._db.execute(
                    "SELECT sender_address FROM pending WHERE seq = ?", (seq,)
                ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def _prune_seen(self) -> None:
        self._db.execute(
            "DELETE FROM seen WHERE seq <= (SELECT MAX(seq) FROM seen) - ?", (self.seen_limit,)
        )

    def _row_by_key(self, key: str) -> StoredInbound:
        return _row(self._db.execute("SELECT * FROM pending WHERE key = ?", (key,)).fetchone())

    def _transaction(self, *, durable: bool) -> _Transaction:
        return _Transaction(self._db, durable)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back if the body raises.

    A durable commit (what the carrier has already forgotten) is fsynced, so even a
    power cut keeps it. Marking a post done only needs to survive a killed process,
    which a WAL commit without fsync does: that keeps the window in which a crash
    could repeat a post to a fraction of a millisecond.
    """

    def __init__(self, db: sqlite3.Connection, durable: bool) -> None:
        self._db = db
        self._durable = durable

    def __enter__(self) -> None:
        self._db.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _row(row: tuple) -> StoredInbound:
    return StoredInbound(*row)
