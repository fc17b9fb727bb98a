"""Persistent state of the carrier sandbox: tokens, sends, registrations, inbound.

One SQLite connection (``:memory:`` by default, a file with ``db_path`` so that a
restarted sandbox keeps its state) guarded by one re-entrant lock, ``Store.lock``.
The sandbox reuses that same lock for its in-memory counters, so there is exactly
one lock in the whole sandbox. Tokens are stored as SHA-256 digests, never in clear.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, expires REAL NOT NULL, scope TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sends (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT UNIQUE NOT NULL,
    addresses TEXT NOT NULL,
    message TEXT NOT NULL,
    sender TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    registration TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message TEXT NOT NULL,
    sender TEXT NOT NULL,
    destination TEXT,
    date_time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_by_reg ON inbound (registration, seq);
"""


def rfc3339(epoch: float) -> str:
    """Format an epoch time as RFC 3339 UTC with a ``Z`` suffix (second precision)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_digest(token: str) -> str:
    """The stored form of a token (its SHA-256 hex digest)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SentMessage:
    """One accepted outbound send."""

    message_id: str
    addresses: tuple[str, ...]
    message: str
    sender_address: str | None
    created: float

    def as_json(self) -> dict[str, Any]:
        """The record as shown in ``GET /sandbox/state``."""
        return {
            "messageId": self.message_id,
            "addresses": list(self.addresses),
            "message": self.message,
            "senderAddress": self.sender_address,
            "time": rfc3339(self.created),
            "timestamp": self.created,
        }


class Store:
    """Thread-safe sandbox state over one SQLite connection."""

    def __init__(self, db_path: str | None = None) -> None:
        self.lock = threading.RLock()
        self._db = sqlite3.connect(
            db_path or ":memory:", check_same_thread=False, isolation_level=None
        )
        if db_path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self._db.close()

    # registrations -------------------------------------------------------------
    def add_registration(self, registration_id: str) -> None:
        """Create a registration (no-op when it exists)."""
        with self.lock:
            self._db.execute(
                "INSERT OR IGNORE INTO registrations (id) VALUES (?)", (registration_id,)
            )

    def has_registration(self, registration_id: str) -> bool:
        """Whether the registration exists."""
        with self.lock:
            row = self._db.execute(
                "SELECT 1 FROM registrations WHERE id = ?", (registration_id,)
            ).fetchone()
            return row is not None

    def registrations(self) -> list[str]:
        """All registration ids, sorted."""
        with self.lock:
            return [r[0] for r in self._db.execute("SELECT id FROM registrations ORDER BY id")]

    # tokens --------------------------------------------------------------------
    def add_token(self, token: str, expires: float, scope: str) -> None:
        """Remember an issued token (by digest) until ``expires`` (epoch seconds)."""
        with self.lock:
            self._db.execute("DELETE FROM tokens WHERE expires <= ?", (time.time(),))
            self._db.execute(
                "INSERT INTO tokens (digest, expires, scope) VALUES (?, ?, ?)",
                (token_digest(token), expires, scope),
            )

    def token_valid(self, token: str) -> bool:
        """Whether the token is known and not expired."""
        with self.lock:
            row = self._db.execute(
                "SELECT expires FROM tokens WHERE digest = ?", (token_digest(token),)
            ).fetchone()
            return row is not None and row[0] > time.time()

    def expire_tokens(self) -> None:
        """Forget every issued token."""
        with self.lock:
            self._db.execute("DELETE FROM tokens")

    def active_tokens(self) -> int:
        """How many issued tokens are still valid."""
        with self.lock:
            count: int = self._db.execute(
                "SELECT COUNT(*) FROM tokens WHERE expires > ?", (time.time(),)
            ).fetchone()[0]
            return count

    # sends ---------------------------------------------------------------------
    def add_send(self, sent: SentMessage) -> None:
        """Record an accepted send."""
        with self.lock:
            self._db.execute(
                "INSERT INTO sends (message_id, addresses, message, sender, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    sent.message_id,
                    json.dumps(list(sent.addresses)),
                    sent.message,
                    sent.sender_address,
                    sent.created,
                ),
            )

    def get_send(self, message_id: str) -> SentMessage | None:
        """The send with that id, if any."""
        with self.lock:
            row = self._db.execute(
                "SELECT message_id, addresses, message, sender, created FROM sends"
                " WHERE message_id = ?",
                (message_id,),
            ).fetchone()
        return _sent(row) if row else None

    def sends(self) -> list[SentMessage]:
        """Every recorded send, oldest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT message_id, addresses, message, sender, created FROM sends ORDER BY seq"
            ).fetchall()
        return [_sent(r) for r in rows]

    # inbound -------------------------------------------------------------------
    def add_inbound(
        self,
        registration_id: str,
        message_id: str,
        message: str,
        sender: str,
        destination: str | None,
        date_time: str,
    ) -> None:
        """Queue an inbound message (creating the registration if needed)."""
        with self.lock:
            self.add_registration(registration_id)
            self._db.execute(
                "INSERT INTO inbound"
                " (registration, message_id, message, sender, destination, date_time)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (registration_id, message_id, message, sender, destination, date_time),
            )

    def drain_inbound(self, registration_id: str, limit: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Remove and return the oldest ``limit`` (0 = all) messages, and how many remain."""
        with self.lock:
            sql = (
                "SELECT seq, message_id, message, sender, destination, date_time FROM inbound"
                " WHERE registration = ? ORDER BY seq"
            )
            params: tuple[Any, ...] = (registration_id,)
            if limit > 0:
                sql += " LIMIT ?"
                params = (registration_id, limit)
            rows = self._db.execute(sql, params).fetchall()
            if rows:
                self._db.executemany("DELETE FROM inbound WHERE seq = ?", [(r[0],) for r in rows])
            remaining = self._db.execute(
                "SELECT COUNT(*) FROM inbound WHERE registration = ?", (registration_id,)
            ).fetchone()[0]
        messages = []
        for _seq, message_id, message, sender, destination, date_time in rows:
            item = {
                "messageId": message_id,
                "message": message,
                "senderAddress": sender,
                "dateTime": date_time,
            }
            if destination is not None:
                item["destinationAddress"] = destination
            messages.append(item)
        return messages, remaining

    def pending_inbound(self) -> dict[str, int]:
        """Pending inbound count per registration (every registration listed)."""
        with self.lock:
            rows = self._db.execute(
                "SELECT r.id, COUNT(i.seq) FROM registrations r"
                " LEFT JOIN inbound i ON i.registration = r.id"
                " GROUP BY r.id ORDER BY r.id"
            ).fetchall()
        return {reg: n for reg, n in rows}

    # whole store ---------------------------------------------------------------
    def reset(self, registrations: tuple[str, ...] = ()) -> None:
        """Delete everything, then recreate the given registrations."""
        with self.lock:
            for table in ("registrations", "tokens", "sends", "inbound"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            for reg in registrations:
                self.add_registration(reg)


def _sent(row: tuple[Any, ...]) -> SentMessage:
    message_id, addresses, message, sender, created = row
    return SentMessage(message_id, tuple(json.loads(addresses)), message, sender, created)
