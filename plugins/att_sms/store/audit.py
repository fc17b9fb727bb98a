"""The audit log in the store (``att_audit``): one entry per send, refusal and change.

Sends, directory edits and rotation changes append to it in their own transaction
(``append_audit``); ``!sms log`` reads it back (``last_audit``) and a send checks it for a
recent one with the same dedup key (``recent_send``). Entries come back in
``att_sms.sending.audit``'s dict form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict, Unpack

from .engine import Database, Tx

#: Audit entries kept (older ones are pruned a batch at a time).
AUDIT_LIMIT = 10_000
#: The oldest entries are pruned on every PRUNE_EVERY-th entry.
PRUNE_EVERY = 100
_ENTRY_COLUMNS = "who, at, recipients, parts, message_ids, outcome"


class AuditEntry(TypedDict):
    """One entry as written: who sent or changed what, to whom, and how it ended.

    ``parts`` and ``message_ids`` are the SMS parts billed and the carrier's ids (0 and none
    for a change); ``dedup_key`` marks a send that ``recent_send`` finds again.
    """

    who: str
    recipients: Iterable[str]
    parts: int
    message_ids: Iterable[str]
    outcome: str
    dedup_key: NotRequired[str | None]


class AuditTables:
    """The audit log part of the store (mixed into ``Store``)."""

    _db: Database

    def record_audit(self, *, tx: Tx | None = None, **entry: Unpack[AuditEntry]) -> None:
        """Append one entry to the audit log (at the store's time), in ``tx`` when given."""
        if tx is None:
            with self._db.transaction() as own:
                append_audit(own, self._db.now(), entry)
        else:
            append_audit(tx, self._db.now(), entry)

    def last_audit(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` audit entries, oldest first, in ``att_sms.sending.audit``'s dict form."""
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_ENTRY_COLUMNS} FROM att_audit ORDER BY id DESC LIMIT ?", (max(0, n),)
            )
        return [_audit_entry(row) for row in reversed(rows)]

    def recent_send(
        self, dedup_key: str, since: float, tx: Tx | None = None
    ) -> dict[str, Any] | None:
        """The newest audit entry with ``dedup_key`` since ``since`` that may have gone out."""
        if tx is None:
            with self._db.read() as own:
                return self.recent_send(dedup_key, since, own)
        row = tx.one(
            f"SELECT {_ENTRY_COLUMNS} FROM att_audit"
            " WHERE dedup_key = ? AND at >= ? AND outcome NOT LIKE 'failed%'"
            " AND outcome NOT LIKE 'refused%' ORDER BY id DESC LIMIT 1",
            (dedup_key, since),
        )
        return _audit_entry(row) if row else None


def append_audit(tx: Tx, at: float, entry: AuditEntry) -> None:
    """Append ``entry`` (an ``AuditEntry``) at ``at`` in ``tx``, the transaction of the change
    it records."""
    row = tx.one(
        f"INSERT INTO att_audit ({_ENTRY_COLUMNS}, dedup_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            str(entry["who"]),
            at,
            json.dumps([str(r) for r in entry["recipients"]]),
            int(entry["parts"]),
            json.dumps([str(m) for m in entry["message_ids"]]),
            str(entry["outcome"]),
            entry.get("dedup_key"),
        ),
    )
    if row and row[0] % PRUNE_EVERY == 0:
        tx.execute("DELETE FROM att_audit WHERE id <= ?", (row[0] - AUDIT_LIMIT,))


def _audit_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    who, at, recipients, parts, message_ids, outcome = row
    return {
        "who": who,
        "when": float(at),
        "recipients": json.loads(recipients),
        "parts": int(parts),
        "message_ids": json.loads(message_ids),
        "outcome": outcome,
    }
