"""Contacts, groups, opt-outs, quotas and the audit log in the store.

The directory functions in ``att_sms.sending.directory`` work on a plain dict; ``edit_directory``
loads it from the tables, lets one of them change it and writes back what changed, all in
one transaction. Quotas probe the ``att_sends`` rows of an index range and keep one counter
a day, so the cost of a send does not grow with history or traffic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from att_sms.sending import policy
from att_sms.text.common import UTC_DAY, utc_time

from .engine import Database, Tx
from .rotations import oncall_view

T = TypeVar("T")

#: Audit entries kept (older ones are pruned a batch at a time).
AUDIT_LIMIT = 10_000
#: Send rows older than this are pruned (the daily limit needs one UTC day).
SENDS_KEPT = 2 * 86400.0
#: Old send rows are pruned on every PRUNE_EVERY-th reservation (windows skip them anyway).
PRUNE_EVERY = 100
#: Reservations remembered until settled (more are forgotten and read back when settled).
HELD_KEPT = 1000


class PagingTables:
    """The paging part of the store (mixed into ``Store``)."""

    _db: Database
    _held: dict[int, tuple[int, float]]  # reservation id -> (units, at), set in Store.__init__

    # -- directory ---------------------------------------------------------------

    def directory(self) -> dict[str, Any]:
        """A snapshot of contacts and groups in ``att_sms.sending.directory``'s dict form."""
        with self._db.transaction() as tx:
            return {**_load_directory(tx), **oncall_view(tx, self._db.now())}

    def edit_directory(
        self,
        change: Callable[[dict[str, Any]], T],
        audit: Callable[[T], dict[str, Any] | None] | None = None,
    ) -> T:
        """Apply ``change`` to the directory in one transaction; nothing is written if it raises.

        ``audit(result)`` may give a ``record_audit`` entry, written in the same transaction.
        """
        with self._db.transaction() as tx:
            tx.lock("att_directory")  # names are shared with rotations (store/rotations.py)
            before = {**_load_directory(tx), **oncall_view(tx, self._db.now())}
            after = json.loads(json.dumps(before))
            result = change(after)
            _write_directory(tx, before, after)
            entry = audit(result) if audit is not None else None
            if entry:
                self.record_audit(**entry, tx=tx)
        return result

    def name_of(self, tel: str) -> str | None:
        """The contact name of ``tel:+E164`` (alphabetically first if several)."""
        with self._db.transaction() as tx:
            name: str | None = tx.scalar("SELECT MIN(name) FROM att_contacts WHERE tel = ?", (tel,))
            return name

    # -- opt-outs ----------------------------------------------------------------

    def opted_out(self, tels: Iterable[str], tx: Tx | None = None) -> set[str]:
        """Which of ``tels`` opted out (texted STOP and not START since)."""
        if tx is None:
            with self._db.read() as own:
                return self.opted_out(tels, own)
        return {
            tel
            for tel in dict.fromkeys(tels)
            if tx.one("SELECT 1 FROM att_optouts WHERE tel = ?", (tel,))
        }

    def optouts(self) -> list[tuple[str, float]]:
        """Every opted-out number with the time it opted out, by number."""
        with self._db.transaction() as tx:
            return [
                (t, float(s)) for t, s in tx.all("SELECT tel, since FROM att_optouts ORDER BY tel")
            ]

    # -- quotas ------------------------------------------------------------------

    def reserve_quota(
        self, user: str, units: int, rate_limit: int, daily_limit: int, tx: Tx | None = None
    ) -> int:
        """Check both limits and hold ``units`` for ``user``; the reservation's id.

        Raises ``policy.QuotaError`` (in ``tx``: the caller's transaction must then roll
        back, as leaving its ``with`` by the exception does). Settle it with
        ``settle_quota`` once the carrier answered, with what was billed (0 removes it: a
        refused send counts nothing). Five statements whatever the traffic: the day's
        counter is counted up and read in one upsert (a refusal rolls it back), and the
        rate limit probes for one row (``_quota_state``), reading the hour's sends only at
        the limit.
        """
        if tx is None:
            with self._db.transaction() as own:
                return self.reserve_quota(user, units, rate_limit, daily_limit, own)
        tx.lock("att_sends")
        now = self._db.now()
        day = _day(now)
        used = _count_day_units(tx, day, units)  # a refusal below rolls it back
        state = _quota_state(tx, user, now, rate_limit, {day: used})
        policy.check_quota(state, user, max(1, units), now, rate_limit, daily_limit)
        row = tx.one(
            "INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?) RETURNING id",
            (user, now, units),
        )
        assert row is not None
        if row[0] % PRUNE_EVERY == 0:  # old rows count in no window: prune now and then
            tx.execute("DELETE FROM att_sends WHERE at < ?", (now - SENDS_KEPT,))
        if len(self._held) >= HELD_KEPT:  # reservations of commands that died before settling
            self._held.clear()
        # What settle_quota may skip reading. Should the transaction roll back instead, the
        # entry is harmless: settling reads only reservations it was given, and a reused
        # id is written over here first.
        self._held[int(row[0])] = (units, now)
        return int(row[0])

    def settle_quota(self, reservation: int, units: int, tx: Tx | None = None) -> None:
        """Count ``units`` for a reservation; 0 forgets the send altogether."""
        if tx is None:
            with self._db.transaction() as own:
                self.settle_quota(reservation, units, own)
            return
        # A send billed what it reserved (the usual case): the row already says so, and what
        # this process reserved tells that without a read. Any other change reads the row.
        known = self._held.pop(reservation, None)
        if known is not None and units == known[0] and units > 0:
            return
        held = tx.one("SELECT units, at FROM att_sends WHERE id = ?", (reservation,))
        if held is None:
            return
        _add_day_units(tx, _day(float(held[1])), max(0, units) - int(held[0]))
        if units <= 0:
            tx.execute("DELETE FROM att_sends WHERE id = ?", (reservation,))
        else:
            tx.execute("UPDATE att_sends SET units = ? WHERE id = ?", (units, reservation))

    # -- audit -------------------------------------------------------------------

    def record_audit(
        self,
        *,
        who: str,
        recipients: Iterable[str],
        parts: int,
        message_ids: Iterable[str],
        outcome: str,
        dedup_key: str | None = None,
        tx: Tx | None = None,
    ) -> None:
        """Append one entry to the audit log (at the store's time)."""
        if tx is None:
            with self._db.transaction() as own:
                self.record_audit(
                    who=who, recipients=recipients, parts=parts, message_ids=message_ids,
                    outcome=outcome, dedup_key=dedup_key, tx=own,
                )  # fmt: skip
            return
        row = tx.one(
            "INSERT INTO att_audit (who, at, recipients, parts, message_ids, outcome, dedup_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                str(who),
                self._db.now(),
                json.dumps([str(r) for r in recipients]),
                int(parts),
                json.dumps([str(m) for m in message_ids]),
                str(outcome),
                dedup_key,
            ),
        )
        if row and row[0] % 100 == 0:
            tx.execute("DELETE FROM att_audit WHERE id <= ?", (row[0] - AUDIT_LIMIT,))

    def last_audit(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` audit entries, oldest first, in ``att_sms.sending.audit``'s dict form."""
        with self._db.transaction() as tx:
            rows = tx.all(
                "SELECT who, at, recipients, parts, message_ids, outcome FROM att_audit"
                " ORDER BY id DESC LIMIT ?",
                (max(0, n),),
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
            "SELECT who, at, recipients, parts, message_ids, outcome FROM att_audit"
            " WHERE dedup_key = ? AND at >= ? AND outcome NOT LIKE 'failed%'"
            " AND outcome NOT LIKE 'refused%' ORDER BY id DESC LIMIT 1",
            (dedup_key, since),
        )
        return _audit_entry(row) if row else None


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


def _day(when: float) -> str:
    return utc_time(when, UTC_DAY)


def _add_day_units(tx: Tx, day: str, units: int) -> None:
    if units:
        tx.execute(
            "INSERT INTO att_quota_days (day, units) VALUES (?, ?)"
            " ON CONFLICT (day) DO UPDATE SET units = att_quota_days.units + excluded.units",
            (day, units),
        )


def _count_day_units(tx: Tx, day: str, units: int) -> int:
    """Add ``units`` to ``day``'s counter in one statement; the units counted before them."""
    row = tx.one(
        "INSERT INTO att_quota_days (day, units) VALUES (?, ?)"
        " ON CONFLICT (day) DO UPDATE SET units = att_quota_days.units + excluded.units"
        " RETURNING units",
        (day, units),
    )
    assert row is not None
    return int(row[0]) - units


def _quota_state(
    tx: Tx, user: str, now: float, rate_limit: int, days: dict[str, int]
) -> dict[str, Any]:
    """What the limits look at, in ``policy``'s dict form (``days``: today's units so far).

    The rate limit refuses only when the user's ``rate_limit``-th newest send is inside
    the window: one probe for that row (an index walk in the database, no rows into
    Python), and only when it exists are the sends read (policy's reset time and count).
    Below the limit the list stays empty, which policy decides the same way, so a busy
    user's send costs about what a quiet one's does.
    """
    recent: list[float] = []
    since = now - policy.RATE_WINDOW
    if rate_limit > 0 and tx.one(
        "SELECT at FROM att_sends WHERE who = ? AND at > ? ORDER BY at DESC LIMIT 1 OFFSET ?",
        (user, since, rate_limit - 1),
    ):
        recent = sorted(
            float(r[0])
            for r in tx.all(
                "SELECT at FROM att_sends WHERE who = ? AND at > ? ORDER BY at DESC LIMIT ?",
                (user, since, rate_limit),
            )
        )
    return {"users": {user: recent}, "days": days}


def _load_directory(tx: Tx) -> dict[str, Any]:
    contacts = dict(tx.all("SELECT name, tel FROM att_contacts"))
    groups: dict[str, list[str]] = {name: [] for (name,) in tx.all("SELECT name FROM att_groups")}
    for group, member in tx.all(
        "SELECT group_name, member FROM att_group_members ORDER BY group_name, position"
    ):
        groups.setdefault(group, []).append(member)
    return {"contacts": contacts, "groups": groups}


def _write_directory(tx: Tx, before: dict[str, Any], after: dict[str, Any]) -> None:
    old_contacts, new_contacts = before["contacts"], after.get("contacts") or {}
    for name in old_contacts.keys() - new_contacts.keys():
        tx.execute("DELETE FROM att_contacts WHERE name = ?", (name,))
    for name, tel in new_contacts.items():
        if old_contacts.get(name) != tel:
            tx.execute(
                "INSERT INTO att_contacts (name, tel) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET tel = excluded.tel",
                (name, tel),
            )
    old_groups, new_groups = before["groups"], after.get("groups") or {}
    for name in old_groups.keys() - new_groups.keys():
        tx.execute("DELETE FROM att_group_members WHERE group_name = ?", (name,))
        tx.execute("DELETE FROM att_groups WHERE name = ?", (name,))
    for name, members in new_groups.items():
        if name in old_groups and old_groups[name] == members:
            continue
        tx.execute("INSERT INTO att_groups (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))
        tx.execute("DELETE FROM att_group_members WHERE group_name = ?", (name,))
        for position, member in enumerate(members):
            tx.execute(
                "INSERT INTO att_group_members (group_name, position, member) VALUES (?, ?, ?)",
                (name, position, member),
            )
