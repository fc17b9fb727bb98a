"""Escalating pages in the store: one row per ``escalation.Page``, and the room posts they owe.

A page row holds ``Page.to_row()`` column for column (lists as JSON) plus its number, the
de-duplication key it was started with and the inbound message that acknowledged it.
Every change is an optimistic ``UPDATE ... WHERE id = ? AND version = ?``: of two threads
or replicas running the same transition, one writes and the other is told it lost, so a
step is never sent twice. A room post an event owes is written in the same transaction as
the event (``att_page_posts``), so a post is neither lost nor made twice by a restart.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from att_sms.pages.escalation import OPEN, Page

from .engine import Database, Tx

#: Closed pages are kept this long (de-duplication, acknowledgements, history).
PAGES_KEPT = 30 * 86400.0
#: Closed pages are pruned when a page number is a multiple of this.
_PRUNE_EVERY = 50

PAGE_FIELDS = [f.name for f in dataclasses.fields(Page)]
_JSON_FIELDS = frozenset({"recipients", "message_ids", "history"})
PAGE_COLUMNS = ", ".join(PAGE_FIELDS)
_POST_COLUMNS = "id, page_id, room, text, next_at, attempts"


class DuplicatePage(Exception):
    """The same page (same text, same recipients) was started within the window."""

    def __init__(self, earlier: Page) -> None:
        super().__init__(f"duplicate of page {earlier.id}")
        self.earlier = earlier


@dataclass(frozen=True)
class PagePost:
    """A room post an event of a page owes; deleted once the chat took it."""

    id: int
    page_id: str
    room: str
    text: str
    next_at: float
    attempts: int


def page_values(page: Page) -> list[Any]:
    row = page.to_row()
    return [json.dumps(row[name]) if name in _JSON_FIELDS else row[name] for name in PAGE_FIELDS]


def page_from_row(row: Sequence[Any]) -> Page:
    values = dict(zip(PAGE_FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = json.loads(values[name])
    return Page.from_row(values)


class PageTables:
    """The escalating-page part of the store (mixed into ``Store``)."""

    _db: Database

    def create_page(
        self,
        build: Callable[[int, float], Page],
        *,
        dedup_key: str | None = None,
        dedup_window: float = 0.0,
    ) -> Page:
        """Store the page ``build(number, now)`` returns, numbered after every earlier one.

        With a ``dedup_key`` and a window, raises ``DuplicatePage`` instead when a page
        with that key was started within ``dedup_window`` seconds (checked and written in
        one transaction, so two people paging at once start one page).
        """
        with self._db.transaction() as tx:
            tx.lock("att_pages")
            now = self._db.now()
            if dedup_key and dedup_window > 0:
                earlier = tx.one(
                    f"SELECT {PAGE_COLUMNS} FROM att_pages WHERE dedup_key = ? AND created_at >= ?"
                    " ORDER BY number DESC LIMIT 1",
                    (dedup_key, now - dedup_window),
                )
                if earlier is not None:
                    raise DuplicatePage(page_from_row(earlier))
            number = next_page_number(tx)
            page = build(number, now)
            tx.execute(
                f"INSERT INTO att_pages ({PAGE_COLUMNS}, number, dedup_key)"
                f" VALUES ({', '.join('?' * (len(PAGE_FIELDS) + 2))})",
                (*page_values(page), number, dedup_key),
            )
            if number % _PRUNE_EVERY == 0:
                tx.execute(
                    "DELETE FROM att_pages WHERE state <> ? AND ended_at < ?",
                    (OPEN, now - PAGES_KEPT),
                )
        return page

    def get_page(self, page_id: str) -> Page | None:
        with self._db.transaction() as tx:
            row = tx.one(f"SELECT {PAGE_COLUMNS} FROM att_pages WHERE id = ?", (page_id,))
        return page_from_row(row) if row else None

    def open_pages(self) -> list[Page]:
        """Every open page, oldest first."""
        with self._db.transaction() as tx:
            rows = tx.all(f"SELECT {PAGE_COLUMNS} FROM att_pages WHERE state = 'open' ORDER BY number")
        return [page_from_row(row) for row in rows]

    def page_acked_by_message(self, key: str) -> Page | None:
        """The page the inbound message ``key`` acknowledged, if any."""
        with self._db.transaction() as tx:
            row = tx.one(f"SELECT {PAGE_COLUMNS} FROM att_pages WHERE ack_key = ?", (key,))
        return page_from_row(row) if row else None

    def save_page(
        self,
        page: Page,
        *,
        expected_version: int,
        posts: Sequence[str] = (),
        ack_key: str | None = None,
    ) -> bool:
        """Write ``page`` if the stored row is still at ``expected_version``; False if not.

        ``posts`` (texts for the page's room) are queued in the same transaction, and only
        when the page was written. ``ack_key`` records the inbound message that acknowledged.
        """
        assignments = ", ".join(f"{name} = ?" for name in PAGE_FIELDS if name != "id")
        values = [v for name, v in zip(PAGE_FIELDS, page_values(page), strict=True) if name != "id"]
        with self._db.transaction() as tx:
            changed = tx.execute(
                f"UPDATE att_pages SET {assignments}, ack_key = COALESCE(?, ack_key)"
                " WHERE id = ? AND version = ?",
                (*values, ack_key, page.id, expected_version),
            ).rowcount
            if changed != 1:
                return False
            queue_page_posts(tx, page, posts, self._db.now())
        return True

    # -- the posts pages owe ----------------------------------------------------------

    def pending_page_posts(self, limit: int = 100) -> list[PagePost]:
        """Posts not made yet, in the order the events happened (due now or later)."""
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_POST_COLUMNS} FROM att_page_posts ORDER BY id LIMIT ?", (limit,)
            )
        return [_post(row) for row in rows]

    def claim_page_post(self, post: PagePost, until: float) -> bool:
        """Take ``post`` until ``until``; False when another poster took or changed it."""
        with self._db.transaction() as tx:
            return (
                tx.execute(
                    "UPDATE att_page_posts SET next_at = ? WHERE id = ? AND next_at = ?"
                    " AND attempts = ?",
                    (until, post.id, post.next_at, post.attempts),
                ).rowcount
                == 1
            )

    def finish_page_post(self, post_id: int) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM att_page_posts WHERE id = ?", (post_id,))

    def retry_page_post(self, post_id: int, next_at: float, attempts: int) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE att_page_posts SET next_at = ?, attempts = ? WHERE id = ?",
                (next_at, attempts, post_id),
            )

    def page_post_count(self) -> int:
        with self._db.transaction() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM att_page_posts", default=0))


def next_page_number(tx: Tx) -> int:
    """The next page number (never reused, even after closed pages were pruned)."""
    number = int(tx.scalar("SELECT value FROM att_meta WHERE key = 'page_number'", default=0)) + 1
    tx.execute(
        "INSERT INTO att_meta (key, value) VALUES ('page_number', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(number),),
    )
    return number


def queue_page_posts(tx: Tx, page: Page, posts: Sequence[str], now: float) -> None:
    for text in posts:
        tx.execute(
            "INSERT INTO att_page_posts (page_id, room, text, next_at, attempts)"
            " VALUES (?, ?, ?, ?, 0)",
            (page.id, page.room, text, now),
        )


def _post(row: Sequence[Any]) -> PagePost:
    post_id, page_id, room, text, next_at, attempts = row
    return PagePost(int(post_id), page_id, room, text, float(next_at), int(attempts))
