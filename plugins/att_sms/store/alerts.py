"""Alert groups in the store: which page an alert group (route + Alertmanager ``groupKey``)
has, and the SMS owed to people about alert pages (resolved, acknowledgement answers).

``(route, group_key)`` is the primary key of ``att_alert_groups``: whatever arrives twice
(Alertmanager's retries and repeats, both HA peers, two replicas at once) finds one row and
one page. A notification's whole decision is one transaction that takes the ``att_alerts``
lock first (advisory on PostgreSQL, the write lock on SQLite), reads the group, writes the
page, the group, the room posts and the SMS owed, and commits; the methods taking a ``tx``
are its parts. The SMS owed are sent by the plugin's poller, each at most once (claimed
before it is sent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from att_sms.pages.escalation import Page

from .engine import Database, Tx
from .pages import (
    PAGE_COLUMNS,
    PAGE_FIELDS,
    next_page_number,
    page_from_row,
    page_values,
    queue_page_posts,
)

ALERTS_LOCK = "att_alerts"
_GROUP_COLUMNS = "route, group_key, page_id, status, fingerprints, summary, opened_at, updated_at"
#: Resolved groups are forgotten after this long (a new firing opens a new page anyway).
GROUPS_KEPT = 30 * 86400.0
#: Sent SMS about pages are forgotten after this long; until then their key stops the same
#: SMS being owed again.
SENT_SMS_KEPT = GROUPS_KEPT


@dataclass(frozen=True)
class AlertGroup:
    route: str
    group_key: str
    page_id: str
    status: str
    fingerprints: tuple[str, ...]
    summary: str
    opened_at: float
    updated_at: float


@dataclass(frozen=True)
class OwedSms:
    """An SMS owed to one number about a page (sent at most once)."""

    id: int
    key: str
    page_id: str
    tel: str
    text: str
    created_by: str
    room: str


def _group(row: Sequence[Any]) -> AlertGroup:
    route, key, page_id, status, prints, summary, opened, updated = row
    return AlertGroup(
        route, key, page_id, status, tuple(json.loads(prints)), summary, float(opened),
        float(updated),
    )  # fmt: skip


class AlertTables:
    """The alert-group part of the store (mixed into ``Store``)."""

    _db: Database

    # -- parts of one notification's transaction --------------------------------------

    @staticmethod
    def lock_alerts(tx: Tx) -> None:
        """Serialise with every other notification (this process, other replicas)."""
        tx.lock(ALERTS_LOCK)

    @staticmethod
    def alert_group_in(tx: Tx, route: str, group_key: str) -> AlertGroup | None:
        row = tx.one(
            f"SELECT {_GROUP_COLUMNS} FROM att_alert_groups WHERE route = ? AND group_key = ?",
            (route, group_key),
        )
        return _group(row) if row else None

    @staticmethod
    def page_in(tx: Tx, page_id: str) -> Page | None:
        row = tx.one(f"SELECT {PAGE_COLUMNS} FROM att_pages WHERE id = ?", (page_id,))
        return page_from_row(row) if row else None

    def insert_page_in(self, tx: Tx, build: Callable[[int, float], Page]) -> Page:
        """A new page numbered like ``create_page`` numbers them (no de-duplication key:
        the alert group is what keeps it single)."""
        tx.lock("att_pages")
        number = next_page_number(tx)
        page = build(number, self._db.now())
        tx.execute(
            f"INSERT INTO att_pages ({PAGE_COLUMNS}, number, dedup_key)"
            f" VALUES ({', '.join('?' * (len(PAGE_FIELDS) + 2))})",
            (*page_values(page), number, None),
        )
        return page

    @staticmethod
    def update_page_in(tx: Tx, page: Page, expected_version: int) -> bool:
        assignments = ", ".join(f"{name} = ?" for name in PAGE_FIELDS if name != "id")
        values = [v for name, v in zip(PAGE_FIELDS, page_values(page), strict=True) if name != "id"]
        return (
            tx.execute(
                f"UPDATE att_pages SET {assignments} WHERE id = ? AND version = ?",
                (*values, page.id, expected_version),
            ).rowcount
            == 1
        )

    def queue_posts_in(self, tx: Tx, page: Page, posts: Sequence[str]) -> None:
        queue_page_posts(tx, page, posts, self._db.now())

    def save_alert_group_in(
        self,
        tx: Tx,
        *,
        route: str,
        group_key: str,
        page_id: str,
        status: str,
        fingerprints: Sequence[str],
        summary: str,
        new: bool,
        opened: bool,
    ) -> None:
        """Insert the group (``new``: fails on the unique key if another writer was first)
        or update it (``opened``: it has a new page)."""
        now = self._db.now()
        prints = json.dumps(list(fingerprints))
        if new:
            tx.execute(
                f"INSERT INTO att_alert_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (route, group_key, page_id, status, prints, summary, now, now),
            )
            return
        opened_sql = ", opened_at = ?" if opened else ""
        params: tuple[Any, ...] = (page_id, status, prints, summary, now)
        params += (now,) if opened else ()
        tx.execute(
            "UPDATE att_alert_groups SET page_id = ?, status = ?, fingerprints = ?, summary = ?,"
            f" updated_at = ?{opened_sql} WHERE route = ? AND group_key = ?",
            (*params, route, group_key),
        )

    def owe_sms_in(self, tx: Tx, *, key: str, page: Page, tel: str, text: str) -> bool:
        """Owe ``tel`` one SMS about ``page``; False when one with ``key`` was owed already."""
        cursor = tx.execute(
            "INSERT INTO att_alert_sms (key, page_id, tel, text, created_by, room, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, page.id, tel, text, page.created_by, page.room, self._db.now()),
        )
        return cursor.rowcount == 1

    # -- reads and the SMS poller ---------------------------------------------------------

    def alert_groups(self, *, firing_only: bool = True) -> list[AlertGroup]:
        """Alert groups, oldest first (by default only those still firing)."""
        where = " WHERE status = 'firing'" if firing_only else ""
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_GROUP_COLUMNS} FROM att_alert_groups{where} ORDER BY opened_at"
            )
        return [_group(row) for row in rows]

    def alert_group_of_page(self, page_id: str) -> AlertGroup | None:
        with self._db.transaction() as tx:
            row = tx.one(
                f"SELECT {_GROUP_COLUMNS} FROM att_alert_groups WHERE page_id = ?", (page_id,)
            )
        return _group(row) if row else None

    def recent_pages(self, since: float) -> list[Page]:
        """Pages (open or closed) started since ``since``, oldest first."""
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {PAGE_COLUMNS} FROM att_pages WHERE created_at >= ? ORDER BY number", (since,)
            )
        return [page_from_row(row) for row in rows]

    def owe_sms(self, *, key: str, page: Page, tel: str, text: str) -> bool:
        with self._db.transaction() as tx:
            return self.owe_sms_in(tx, key=key, page=page, tel=tel, text=text)

    def sms_owed_since(self, key_prefix: str, since: float) -> int:
        """How many SMS with keys starting ``key_prefix`` were owed since ``since``."""
        with self._db.transaction() as tx:
            return int(
                tx.scalar(
                    "SELECT COUNT(*) FROM att_alert_sms WHERE key LIKE ? AND created_at >= ?",
                    (key_prefix.replace("%", "") + "%", since),
                    default=0,
                )
            )

    def pending_owed_sms(self, limit: int = 50) -> list[OwedSms]:
        with self._db.transaction() as tx:
            rows = tx.all(
                "SELECT id, key, page_id, tel, text, created_by, room FROM att_alert_sms"
                " WHERE sent_at IS NULL ORDER BY id LIMIT ?",
                (limit,),
            )
        return [OwedSms(int(r[0]), *r[1:]) for r in rows]

    def claim_owed_sms(self, sms_id: int) -> bool:
        """Mark it as sent before sending (at most once); False when another poster did."""
        now = self._db.now()
        with self._db.transaction() as tx:
            claimed = tx.execute(
                "UPDATE att_alert_sms SET sent_at = ? WHERE id = ? AND sent_at IS NULL",
                (now, sms_id),
            ).rowcount
            _forget_sent_sms(tx, now - SENT_SMS_KEPT)
        return claimed == 1


def _forget_sent_sms(tx: Tx, before: float) -> None:
    tx.execute("DELETE FROM att_alert_sms WHERE sent_at IS NOT NULL AND sent_at < ?", (before,))
