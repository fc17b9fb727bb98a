"""Delivery follow-ups in the store: which sent messages are still being watched."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .engine import Database, Tx


@dataclass
class FollowUp:
    """One sent message whose delivery status is checked until final (or given up)."""

    message_id: str
    target: str
    addresses: list[str]
    started: float
    next_at: float
    attempts: int = 0
    last: list[list[str]] = field(default_factory=list)


_COLUMNS = "message_id, target, addresses, started, next_at, attempts, last"


def _follow_up(row: tuple[Any, ...]) -> FollowUp:
    message_id, target, addresses, started, next_at, attempts, last = row
    return FollowUp(
        message_id, target, json.loads(addresses), float(started), float(next_at),
        int(attempts), json.loads(last),
    )  # fmt: skip


class FollowUpTables:
    """The follow-up part of the store (mixed into ``Store``)."""

    _db: Database

    def add_follow_ups(self, tasks: Iterable[FollowUp], tx: Tx | None = None) -> None:
        """Start following messages (a message already followed is left as it is)."""
        if tx is None:
            with self._db.transaction() as own:
                self.add_follow_ups(tasks, own)
            return
        for task in tasks:
            tx.execute(
                f"INSERT INTO att_followups ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (
                    task.message_id, task.target, json.dumps(task.addresses), task.started,
                    task.next_at, task.attempts, json.dumps(task.last),
                ),
            )  # fmt: skip

    def due_follow_ups(self, now: float, limit: int = 100) -> list[FollowUp]:
        """Follow-ups whose next check is due, soonest first."""
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_COLUMNS} FROM att_followups WHERE next_at <= ? ORDER BY next_at LIMIT ?",
                (now, limit),
            )
        return [_follow_up(r) for r in rows]

    def reschedule_follow_up(self, task: FollowUp) -> None:
        """Store a follow-up's new state (next check, attempts, last statuses)."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE att_followups SET next_at = ?, attempts = ?, last = ? WHERE message_id = ?",
                (task.next_at, task.attempts, json.dumps(task.last), task.message_id),
            )

    def finish_follow_up(self, message_id: str) -> bool:
        """Stop following a message; False when it was already finished (by another replica)."""
        with self._db.transaction() as tx:
            return (
                tx.execute("DELETE FROM att_followups WHERE message_id = ?", (message_id,)).rowcount
                > 0
            )

    def follow_up_count(self) -> int:
        with self._db.transaction() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM att_followups", default=0))
