"""Inbound SMS in the store: every message a carrier read returned, until posted once.

The carrier's inbox read is destructive, so what a read returned is committed (fsynced)
before anything else, item by item in one transaction; STOP and START take effect in that
same transaction. A post is then marked done. Posted rows are kept (bounded) so that a
re-delivered message is not posted twice and its reply handle still works.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from att_sms.carrier.answer_limits import cap_text
from att_sms.carrier.answers import InboundMessage
from att_sms.sending import policy
from att_sms.text.numbers import canonical_sender

from .engine import Database, Tx

#: Posted messages remembered for de-duplication and reply handles.
DEFAULT_SEEN_LIMIT = 20_000

OPT_NOTES = {
    "out": "opted out: sends to this number are refused until it texts START",
    "in": "opted back in",
}


@dataclass(frozen=True)
class StoredInbound:
    """A stored inbound SMS."""

    seq: int
    key: str
    registration_id: str
    message_id: str
    sender_address: str
    message: str
    destination_address: str | None
    date_time: str | None
    fetched_at: float
    note: str | None = None

    @property
    def handle(self) -> str:
        return handle_for(self.seq)


@dataclass(frozen=True)
class InboundOrigin:
    """Where a reply to an inbound post goes: its sender, from the number it was sent to."""

    sender_address: str
    destination_address: str | None
    registration_id: str


def handle_for(seq: int) -> str:
    """The short handle an inbound post carries for ``!sms reply``: ``r`` + base-36 seq."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        seq, rest = divmod(seq, 36)
        out = digits[rest] + out
        if seq == 0:
            return "r" + out


def seq_of_handle(handle: str) -> int | None:
    """The sequence number behind a handle (``r7``, ``#r7``), or None."""
    text = handle.strip().lstrip("#").lower()
    if not text.startswith("r") or len(text) < 2:
        return None
    try:
        return int(text[1:], 36)
    except ValueError:
        return None


def message_key(registration_id: str, message: InboundMessage) -> str:
    """The de-duplication key: registration and carrier id, or a content hash without one."""
    message_id = (message.message_id or "").strip()
    if not message_id:
        digest = hashlib.sha256(
            "\x1f".join(
                (message.sender_address or "", message.date_time or "", message.message or "")
            ).encode("utf-8", "surrogatepass")
        ).hexdigest()[:24]
        message_id = "sha256:" + digest
    return f"{registration_id}\x1f{message_id}"


_COLUMNS = (
    "seq, key, registration_id, message_id, sender_address, message, destination_address,"
    " date_time, fetched_at, note"
)


class InboundTables:
    """The inbound part of the store (mixed into ``Store``)."""

    _db: Database
    default_region: str
    seen_limit: int = DEFAULT_SEEN_LIMIT

    def record_fetched(
        self, registration_id: str, messages: Iterable[InboundMessage]
    ) -> list[StoredInbound]:
        """Store what one inbox read returned (durably); return the rows that are new.

        A STOP or START from a sender opts them out or in right here, so it blocks the
        next send even before the message is posted.
        """
        added: list[StoredInbound] = []
        with self._db.transaction(durable=True) as tx:
            now = self._db.now()
            for message in messages:
                row = self._insert_inbound(tx, registration_id, message, now)
                if row is not None:
                    added.append(row)
        return added

    def _insert_inbound(
        self, tx: Tx, registration_id: str, message: InboundMessage, now: float
    ) -> StoredInbound | None:
        key = message_key(registration_id, message)
        sender = message.sender_address or ""
        opt = self._opt_change(sender, message.message)
        row = tx.one(
            "INSERT INTO att_inbound (key, registration_id, message_id, sender_address, message,"
            " destination_address, date_time, fetched_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT (key) DO NOTHING RETURNING {_COLUMNS}",
            (
                key,
                registration_id,
                key.split("\x1f", 1)[1],
                sender,
                cap_text(message.message or ""),
                message.destination_address,
                message.date_time,
                now,
                OPT_NOTES[opt[0]] if opt else None,
            ),
        )
        if row is None:
            return None  # a re-delivered STOP must not undo a START sent since
        if opt:
            _apply_opt(tx, *opt, now)
        return StoredInbound(*row)

    def _opt_change(self, sender: str, text: str) -> tuple[str, str] | None:
        """``("out"|"in", tel)`` when the message is STOP or START from a phone number."""
        keyword = policy.opt_keyword(text)
        if keyword is None:
            return None
        tel = canonical_sender(sender, self.default_region)
        if not tel.startswith("tel:+"):
            return None  # not a number we could ever send to
        return keyword, tel

    def pending(self, registration_id: str | None = None) -> list[StoredInbound]:
        """Messages stored but not yet posted, oldest first."""
        query = f"SELECT {_COLUMNS} FROM att_inbound WHERE posted_at IS NULL"
        args: tuple[str, ...] = ()
        if registration_id is not None:
            query += " AND registration_id = ?"
            args = (registration_id,)
        with self._db.transaction() as tx:
            rows = tx.all(query + " ORDER BY seq", args)
        return [StoredInbound(*r) for r in rows]

    def mark_posted(self, keys: Iterable[str]) -> int:
        """Mark posted messages done; return how many were still pending."""
        moved = 0
        with self._db.transaction() as tx:
            now = self._db.now()
            for key in keys:
                moved += tx.execute(
                    "UPDATE att_inbound SET posted_at = ? WHERE key = ? AND posted_at IS NULL",
                    (now, key),
                ).rowcount
            if moved:
                self._prune_posted(tx)
        return moved

    def _prune_posted(self, tx: Tx) -> None:
        newest = tx.scalar("SELECT MAX(seq) FROM att_inbound", default=0)
        tx.execute(
            "DELETE FROM att_inbound WHERE posted_at IS NOT NULL AND seq <= ?",
            (newest - self.seen_limit,),
        )

    def counts(self) -> dict[str, int]:
        """How many inbound messages wait to be posted, and how many posted are remembered."""
        with self._db.transaction() as tx:
            pending = tx.scalar(
                "SELECT COUNT(*) FROM att_inbound WHERE posted_at IS NULL", default=0
            )
            total = tx.scalar("SELECT COUNT(*) FROM att_inbound", default=0)
        return {"pending": int(pending), "seen": int(total - pending)}

    def origin_of(self, handle: str) -> InboundOrigin | None:
        """The sender (and the number it wrote to) of the inbound post with ``handle``."""
        seq = seq_of_handle(handle)
        if seq is None:
            return None
        with self._db.transaction() as tx:
            row = tx.one(
                "SELECT sender_address, destination_address, registration_id FROM att_inbound"
                " WHERE seq = ?",
                (seq,),
            )
        return InboundOrigin(*row) if row else None


def _apply_opt(tx: Tx, keyword: str, tel: str, now: float) -> None:
    if keyword == "out":
        tx.execute(
            "INSERT INTO att_optouts (tel, since) VALUES (?, ?) ON CONFLICT DO NOTHING", (tel, now)
        )
    else:
        tx.execute("DELETE FROM att_optouts WHERE tel = ?", (tel,))
