"""SMS conversations as chat threads: one row per (room, number), and the threads of sends and pages.

A conversation is a phone number's exchange in one room; on a chat with threads it lives in
one thread (``thread_ts``, the thread's root). The (room, number) key is UNIQUE, and a new
thread is opened in two steps so that two posters (threads of one bot, or replicas on one
PostgreSQL database) never open two: ``claim_conversation`` takes the row before the root is
posted (the others are told the thread is being opened, and wait), ``open_conversation``
records the root's ts. A claim whose poster died expires after ``claim_for`` seconds.

``att_thread_links`` remembers which thread a send (its follow-up) or a page (its step posts)
belongs to, and which page posts are shown in the channel too. Times are the store's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import Database, Tx

#: Links older than this are pruned (a follow-up or a page lasts far less); so are
#: conversations quiet for this long (beyond any window: their thread is only kept for
#: ``!sms reply <text>`` typed in it).
LINKS_KEPT = 30 * 86400.0
#: A claim (a root being posted) that was not finished is taken over after this long.
DEFAULT_CLAIM_FOR = 60.0

#: What ``claim_conversation`` found.
THREAD = "thread"  # an active conversation: post in ``thread_ts``
NEW = "new"  # the caller holds the claim: post the root, then ``open_conversation``
BUSY = "busy"  # another poster is opening the thread right now: try again shortly

_COLUMNS = (
    "room, number, thread_ts, claimed_by, claimed_until, started_at, last_at, from_address, replies"
)


@dataclass(frozen=True)
class Conversation:
    """One number's conversation in one room."""

    room: str
    number: str
    thread_ts: str | None
    claimed_by: str | None
    claimed_until: float | None
    started_at: float
    last_at: float
    from_address: str | None
    replies: int  # inbound SMS posted into the thread (0: the person has not answered yet)


@dataclass(frozen=True)
class Claim:
    """The outcome of ``claim_conversation``."""

    kind: str  # THREAD, NEW or BUSY
    conversation: Conversation | None = None

    @property
    def thread_ts(self) -> str | None:
        return self.conversation.thread_ts if self.conversation and self.kind == THREAD else None


def _conversation(row: Sequence[Any]) -> Conversation:
    room, number, thread_ts, claimed_by, until, started, last, from_address, replies = row
    return Conversation(
        room, number, thread_ts, claimed_by, None if until is None else float(until),
        float(started), float(last), from_address, int(replies),
    )  # fmt: skip


def active(conversation: Conversation | None, now: float, window: float) -> bool:
    """True when ``conversation`` has a thread with a message within ``window`` seconds."""
    return (
        conversation is not None
        and conversation.thread_ts is not None
        and now - conversation.last_at <= window
    )


class ConversationTables:
    """The conversation part of the store (mixed into ``Store``)."""

    _db: Database

    def conversation(self, room: str, number: str) -> Conversation | None:
        with self._db.transaction() as tx:
            return _select(tx, room, number)

    def conversations_in_thread(self, room: str, thread_ts: str) -> list[Conversation]:
        """The numbers whose conversation in ``room`` is the thread ``thread_ts``."""
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_COLUMNS} FROM att_conversations WHERE room = ? AND thread_ts = ?"
                " ORDER BY id",
                (room, thread_ts),
            )
        return [_conversation(r) for r in rows]

    def claim_conversation(
        self,
        room: str,
        number: str,
        *,
        holder: str,
        window: float,
        claim_for: float = DEFAULT_CLAIM_FOR,
    ) -> Claim:
        """Where the next post of ``number`` in ``room`` goes, claiming a new thread if needed.

        THREAD: the conversation is active (last message within ``window``). NEW: the caller
        holds the claim and posts the root (then ``open_conversation``, or ``release_claim``
        when the post failed). BUSY: another holder's claim is still running.
        """
        with self._db.transaction() as tx:
            tx.lock(f"att_conversations:{room}:{number}")
            now = self._db.now()
            found = _select(tx, room, number)
            if found is None:
                inserted = tx.one(
                    "INSERT INTO att_conversations (room, number, thread_ts, claimed_by,"
                    " claimed_until, started_at, last_at, from_address, replies)"
                    " VALUES (?, ?, NULL, ?, ?, ?, ?, NULL, 0)"
                    " ON CONFLICT (room, number) DO NOTHING RETURNING id",
                    (room, number, holder, now + claim_for, now, now),
                )
                if inserted is None:  # cannot happen under the lock; never open a second one
                    return Claim(BUSY, _select(tx, room, number))
                tx.execute(
                    "DELETE FROM att_conversations WHERE last_at < ? AND claimed_by IS NULL",
                    (now - max(LINKS_KEPT, window),),
                )
                return Claim(NEW, _select(tx, room, number))
            if active(found, now, window):
                return Claim(THREAD, found)
            if (
                found.thread_ts is None
                and found.claimed_by not in (None, holder)
                and (found.claimed_until or 0.0) > now
            ):
                return Claim(BUSY, found)
            tx.execute(
                "UPDATE att_conversations SET thread_ts = NULL, claimed_by = ?, claimed_until = ?"
                " WHERE room = ? AND number = ?",
                (holder, now + claim_for, room, number),
            )
            return Claim(NEW, _select(tx, room, number))

    def open_conversation(
        self,
        room: str,
        number: str,
        thread_ts: str,
        *,
        holder: str,
        inbound_root: bool,
        from_address: str | None = None,
    ) -> bool:
        """Record the root ``thread_ts`` posted under ``holder``'s claim; False if it lost it."""
        with self._db.transaction() as tx:
            now = self._db.now()
            return (
                tx.execute(
                    "UPDATE att_conversations SET thread_ts = ?, claimed_by = NULL,"
                    " claimed_until = NULL, started_at = ?, last_at = ?, replies = ?,"
                    " from_address = COALESCE(?, from_address)"
                    " WHERE room = ? AND number = ? AND claimed_by = ? AND thread_ts IS NULL",
                    (thread_ts, now, now, 1 if inbound_root else 0, from_address, room, number,
                     holder),
                ).rowcount
                == 1
            )  # fmt: skip

    def release_claim(self, room: str, number: str, holder: str) -> None:
        """Give up a claim (the root could not be posted): the next poster claims again."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE att_conversations SET claimed_by = NULL, claimed_until = NULL"
                " WHERE room = ? AND number = ? AND claimed_by = ?",
                (room, number, holder),
            )

    def continue_conversation(
        self, room: str, number: str, thread_ts: str, *, from_address: str | None = None
    ) -> None:
        """A message to or from ``number`` in ``thread_ts`` (the thread itself when it was
        another): the conversation is that thread, active from now."""
        with self._db.transaction() as tx:
            now = self._db.now()
            tx.execute(
                "INSERT INTO att_conversations (room, number, thread_ts, claimed_by,"
                " claimed_until, started_at, last_at, from_address, replies)"
                " VALUES (?, ?, ?, NULL, NULL, ?, ?, ?, 0)"
                " ON CONFLICT (room, number) DO UPDATE SET"
                " replies = CASE WHEN att_conversations.thread_ts = excluded.thread_ts"
                " THEN att_conversations.replies ELSE 0 END,"
                " started_at = CASE WHEN att_conversations.thread_ts = excluded.thread_ts"
                " THEN att_conversations.started_at ELSE excluded.started_at END,"
                " thread_ts = excluded.thread_ts, claimed_by = NULL, claimed_until = NULL,"
                " last_at = excluded.last_at,"
                " from_address = COALESCE(excluded.from_address, att_conversations.from_address)",
                (room, number, thread_ts, now, now, from_address),
            )

    def note_inbound(
        self, room: str, number: str, thread_ts: str, *, from_address: str | None = None
    ) -> None:
        """An inbound SMS of ``number`` was posted into its thread: one more reply, active now."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE att_conversations SET replies = replies + 1, last_at = ?,"
                " from_address = COALESCE(?, from_address)"
                " WHERE room = ? AND number = ? AND thread_ts = ?",
                (self._db.now(), from_address, room, number, thread_ts),
            )

    def forget_thread(self, room: str, thread_ts: str) -> int:
        """Slack no longer has ``thread_ts``: its conversations start anew, its links go."""
        with self._db.transaction() as tx:
            gone = tx.execute(
                "DELETE FROM att_conversations WHERE room = ? AND thread_ts = ?",
                (room, thread_ts),
            ).rowcount
            tx.execute(
                "DELETE FROM att_thread_links WHERE room = ? AND thread_ts = ?", (room, thread_ts)
            )
        return int(gone)

    # -- links: the thread of a send's follow-up, of a page's posts -------------------------

    def link_threads(
        self, keys: Iterable[str], room: str, thread_ts: str, tx: Tx | None = None
    ) -> None:
        """``keys`` (``send:<message id>``, ``page:<page id>``...) belong to ``thread_ts``."""
        if tx is None:
            with self._db.transaction() as own:
                self.link_threads(keys, room, thread_ts, own)
            return
        now = self._db.now()
        for key in keys:
            tx.execute(
                "INSERT INTO att_thread_links (key, room, thread_ts, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET room = excluded.room,"
                " thread_ts = excluded.thread_ts, at = excluded.at",
                (key, room, thread_ts, now),
            )
        tx.execute("DELETE FROM att_thread_links WHERE at < ?", (now - LINKS_KEPT,))

    def linked_thread(self, key: str) -> tuple[str, str] | None:
        """``(room, thread_ts)`` that ``key`` belongs to, or None."""
        with self._db.transaction() as tx:
            row = tx.one("SELECT room, thread_ts FROM att_thread_links WHERE key = ?", (key,))
        return (str(row[0]), str(row[1])) if row else None

    def conversation_count(self) -> int:
        with self._db.transaction() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM att_conversations", default=0))


def _select(tx: Tx, room: str, number: str) -> Conversation | None:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM att_conversations WHERE room = ? AND number = ?", (room, number)
    )
    return _conversation(row) if row else None
