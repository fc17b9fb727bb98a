"""Contacts, groups and opt-outs in the store: who a name or number is, who texted STOP.

The directory functions in ``att_sms.sending.directory`` work on a plain dict; ``edit_directory``
loads it from the tables, lets one of them change it and writes back what changed, all in
one transaction. The snapshot also holds each rotation's members and who is on call
(``rotations.oncall_view``), so a rotation's name resolves like a contact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .audit import AuditEntry, append_audit
from .engine import Database, Tx
from .rotations import oncall_view

T = TypeVar("T")


class DirectoryTables:
    """The directory part of the store (mixed into ``Store``): contacts, groups, opt-outs."""

    _db: Database

    # -- contacts and groups -----------------------------------------------------

    def directory(self) -> dict[str, Any]:
        """A snapshot of contacts and groups in ``att_sms.sending.directory``'s dict form."""
        with self._db.transaction() as tx:
            return {**_load_directory(tx), **oncall_view(tx, self._db.now())}

    def edit_directory(
        self,
        change: Callable[[dict[str, Any]], T],
        audit: Callable[[T], AuditEntry | None] | None = None,
    ) -> T:
        """Apply ``change`` to the directory in one transaction; nothing is written if it raises.

        ``audit(result)`` may give an ``AuditEntry`` (``record_audit``'s keywords), written in the
        same transaction.
        """
        with self._db.transaction() as tx:
            tx.lock("att_directory")  # names are shared with rotations (store/rotations.py)
            now = self._db.now()
            before = {**_load_directory(tx), **oncall_view(tx, now)}
            after = json.loads(json.dumps(before))
            result = change(after)
            _write_directory(tx, before, after)
            entry = audit(result) if audit is not None else None
            if entry:
                append_audit(tx, now, entry)
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
