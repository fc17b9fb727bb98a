"""Replicas' coordination in the store: the leader lease and the claims of chat commands.

Several bot replicas on one PostgreSQL database agree through two small tables:

* ``att_leases``: one row per lease (``name``, ``holder``, ``expires_at``...). A replica
  acquires or renews a lease with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` that
  succeeds only when the row is its own or has expired, so two replicas never both get it.
  Times are the database server's clock, read in the same transaction: the replicas'
  own clocks never take part.
* ``att_command_claims``: a chat command that every replica received (IRC delivers each
  channel line to every bot) is run by the replica that claims it first; the others find
  the claim and drop their copy.

On SQLite (one bot) both work the same, with SQLite's clock; the plugin does not use them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from .engine import Database, Tx

#: The store's clock in SQL (epoch seconds, a double), per engine.
_CLOCK_SQL = {
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
    "postgresql": "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
}

_ACQUIRE = (
    "INSERT INTO att_leases (name, holder, acquired_at, renewed_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET"
    " acquired_at = CASE WHEN att_leases.holder = excluded.holder"
    " THEN att_leases.acquired_at ELSE excluded.acquired_at END,"
    " holder = excluded.holder, renewed_at = excluded.renewed_at,"
    " expires_at = excluded.expires_at"
    " WHERE att_leases.holder = excluded.holder OR att_leases.expires_at <= excluded.renewed_at"
)
_LEASE_COLUMNS = "holder, acquired_at, renewed_at, expires_at"


@dataclass(frozen=True)
class Lease:
    """A lease row as read at ``now`` (the store's clock)."""

    name: str
    holder: str
    acquired_at: float
    renewed_at: float
    expires_at: float
    now: float

    def held_by(self, holder: str) -> bool:
        """True when ``holder`` holds this lease and it has not expired."""
        return self.holder == holder and self.expires_at > self.now

    @property
    def expired(self) -> bool:
        return self.expires_at <= self.now


@dataclass(frozen=True)
class CommandClaim:
    """The outcome of claiming a command: ``won`` (run it) or another replica's claim."""

    won: bool
    claim_id: int


class LeaseTables:
    """The replicas part of the store (mixed into ``Store``)."""

    _db: Database

    def acquire_lease(self, name: str, holder: str, ttl: float) -> Lease:
        """Take or renew ``name`` for ``ttl`` seconds if it is free, expired or ours.

        Returns the lease as it is after the attempt: ``lease.held_by(holder)`` says
        whether ``holder`` has it now.
        """
        with self._db.transaction() as tx:
            now = _clock(tx, self._db.dialect)
            tx.execute(_ACQUIRE, (name, holder, now, now, now + ttl))
            row = tx.one(f"SELECT {_LEASE_COLUMNS} FROM att_leases WHERE name = ?", (name,))
        return _lease(name, row, now)

    def release_lease(self, name: str, holder: str) -> bool:
        """Give ``name`` up at once (another replica may take it); False if not ours."""
        with self._db.transaction() as tx:
            done = tx.execute(
                "DELETE FROM att_leases WHERE name = ? AND holder = ?", (name, holder)
            )
            return done.rowcount > 0

    def lease(self, name: str) -> Lease | None:
        """The lease row of ``name`` (expired or not), or None when nobody took it."""
        with self._db.transaction() as tx:
            now = _clock(tx, self._db.dialect)
            row = tx.one(f"SELECT {_LEASE_COLUMNS} FROM att_leases WHERE name = ?", (name,))
        return None if row is None else _lease(name, row, now)

    def claim_command(
        self, fingerprint: str, holder: str, since: float, seen: Collection[int] = ()
    ) -> CommandClaim:
        """Claim a received command unless another replica claimed the same one.

        "The same one" is a claim of ``fingerprint`` by another holder made at or after
        ``since`` (the store's clock) whose id is not in ``seen`` (claims this replica
        already matched to an earlier copy: a person may repeat a command on purpose).
        """
        with self._db.transaction() as tx:
            tx.lock("att_sms.command_claims")
            rows = tx.all(
                "SELECT id FROM att_command_claims"
                " WHERE fingerprint = ? AND at >= ? AND holder <> ? ORDER BY id",
                (fingerprint, since, holder),
            )
            for (claim_id,) in rows:
                if int(claim_id) not in seen:
                    return CommandClaim(False, int(claim_id))
            claim_id = tx.scalar(
                "INSERT INTO att_command_claims (fingerprint, holder, at) VALUES (?, ?, ?)"
                " RETURNING id",
                (fingerprint, holder, _clock(tx, self._db.dialect)),
            )
        return CommandClaim(True, int(claim_id))

    def prune_command_claims(self, older_than: float) -> int:
        """Delete claims made before ``older_than`` (the store's clock); how many."""
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM att_command_claims WHERE at < ?", (older_than,)).rowcount


def _clock(tx: Tx, dialect: str) -> float:
    """The store's clock, read inside ``tx`` (the server's clock on PostgreSQL)."""
    return float(tx.scalar(_CLOCK_SQL[dialect]))


def _lease(name: str, row: tuple[Any, ...] | None, now: float) -> Lease:
    if row is None:  # released by its holder between our attempt and this read: free
        return Lease(name, "", now, now, now, now)
    holder, acquired_at, renewed_at, expires_at = row
    return Lease(name, holder, float(acquired_at), float(renewed_at), float(expires_at), now)
