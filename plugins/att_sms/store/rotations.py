"""Rotations, their overrides and the handoff posts' markers in the store.

A rotation's name shares one namespace with contacts and groups (checked in the same
transaction as the write); its members are contact names or ``tel:`` numbers. Every change
is appended to the audit log with who made it, in the same transaction. A handoff is posted
once, replicas and restarts included: ``claim_handoff`` inserts the key (rotation, handoff
instant) and only the one insert that succeeds posts.

``oncall_view`` gives the directory snapshot (``att_sms.sending.directory``) each rotation's members
and who is on call at the store's time, so a rotation's name resolves like a contact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..rotations import Override, Rotation, format_shift, parse_zone
from .audit import AuditEntry, append_audit
from .engine import Database, Tx

#: Overrides that ended this long ago are pruned, and handoff markers this old.
KEPT = 30 * 86400.0
_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
_OVERRIDE_COLUMNS = "id, member, starts_at, ends_at, created_by"


class RotationRefused(ValueError):
    """A rotation or override write refused (name clash, unknown member...); one line."""


@dataclass(frozen=True)
class RotationRecord:
    """A stored rotation as saved: its schedule, the room of its handoff posts, who saved it when.

    The zone is kept by name and the schedule checked only by ``rotation()``: a replica whose
    time zone data lacks the zone still lists the rotation (as unknown) and can remove it.
    """

    name: str
    members: tuple[str, ...]
    start: datetime
    shift: timedelta
    zone: str
    room: str
    created_by: str
    created_at: float

    def rotation(self) -> Rotation:
        return Rotation(self.name, self.members, self.start, self.shift, parse_zone(self.zone))


def _record(row: Sequence[Any]) -> RotationRecord:
    name, members, start, shift, zone, room, who, at = row
    return RotationRecord(
        name, tuple(json.loads(members)), datetime.strptime(start, _LOCAL_FORMAT),
        timedelta(seconds=int(shift)), zone, room, who, float(at),
    )  # fmt: skip


def _override(row: Sequence[Any]) -> Override:
    oid, member, start, end, who = row
    return Override(int(oid), member, float(start), float(end), who)


_ROTATION_COLUMNS = "name, members, start_local, shift_seconds, zone, room, created_by, created_at"


class RotationTables:
    """The rotations part of the store (mixed into ``Store``)."""

    _db: Database

    def save_rotation(self, record: RotationRecord) -> bool:
        """Create or replace a rotation; True when it replaced one. Audited."""
        with self._db.transaction() as tx:
            tx.lock("att_directory")
            _check_free_name(tx, record.name)
            unknown = [
                m for m in record.members
                if not m.startswith("tel:")
                and tx.one("SELECT 1 FROM att_contacts WHERE name = ?", (m,)) is None
            ]  # fmt: skip
            if unknown:
                raise RotationRefused(f"unknown contact {', '.join(map(repr, unknown))}")
            now = self._db.now()
            replaced = (
                tx.one("SELECT 1 FROM att_rotations WHERE name = ?", (record.name,)) is not None
            )
            tx.execute(
                f"INSERT INTO att_rotations ({_ROTATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET members = excluded.members,"
                " start_local = excluded.start_local, shift_seconds = excluded.shift_seconds,"
                " zone = excluded.zone, room = excluded.room, created_by = excluded.created_by,"
                " created_at = excluded.created_at",
                (
                    record.name, json.dumps(list(record.members)),
                    record.start.strftime(_LOCAL_FORMAT), int(record.shift.total_seconds()),
                    record.zone, record.room, record.created_by, now,
                ),
            )  # fmt: skip
            verb = "replaced" if replaced else "added"
            entry = AuditEntry(
                who=record.created_by, recipients=list(record.members), parts=0, message_ids=[],
                outcome=f"rotation {record.name} {verb}: {format_shift(record.shift)} shifts"
                f" from {record.start.strftime(_LOCAL_FORMAT)} {record.zone}, room {record.room}",
            )  # fmt: skip
            append_audit(tx, self._db.now(), entry)
        return replaced

    def remove_rotation(self, name: str, who: str) -> bool:
        """Delete a rotation with its overrides and markers; False when there is none."""
        with self._db.transaction() as tx:
            tx.lock("att_directory")
            gone = tx.execute("DELETE FROM att_rotations WHERE name = ?", (name,)).rowcount
            if gone != 1:
                return False
            tx.execute("DELETE FROM att_rotation_overrides WHERE rotation = ?", (name,))
            tx.execute("DELETE FROM att_handoff_posts WHERE rotation = ?", (name,))
            entry = AuditEntry(
                who=who, recipients=[], parts=0, message_ids=[],
                outcome=f"rotation {name} removed",
            )  # fmt: skip
            append_audit(tx, self._db.now(), entry)
        return True

    def rotations(self) -> list[RotationRecord]:
        """Every rotation, by name."""
        with self._db.transaction() as tx:
            rows = tx.all(f"SELECT {_ROTATION_COLUMNS} FROM att_rotations ORDER BY name")
        return [_record(row) for row in rows]

    def get_rotation(self, name: str) -> RotationRecord | None:
        with self._db.transaction() as tx:
            row = tx.one(f"SELECT {_ROTATION_COLUMNS} FROM att_rotations WHERE name = ?", (name,))
        return _record(row) if row else None

    # -- overrides ---------------------------------------------------------------------

    def add_override(
        self, rotation: str, member: str, start: float, end: float, who: str, *, window: str = ""
    ) -> Override:
        """Put ``member`` on call for ``[start, end)``; newer than every earlier one. Audited
        (``window`` says when for people; epoch seconds without it)."""
        with self._db.transaction() as tx:
            tx.lock("att_directory")
            if tx.one("SELECT 1 FROM att_rotations WHERE name = ?", (rotation,)) is None:
                raise RotationRefused(f"no rotation {rotation!r}")
            if not member.startswith("tel:") and (
                tx.one("SELECT 1 FROM att_contacts WHERE name = ?", (member,)) is None
            ):
                raise RotationRefused(f"unknown contact {member!r}")
            now = self._db.now()
            row = tx.one(
                "INSERT INTO att_rotation_overrides"
                " (rotation, member, starts_at, ends_at, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (rotation, member, start, end, who, now),
            )
            tx.execute("DELETE FROM att_rotation_overrides WHERE ends_at < ?", (now - KEPT,))
            entry = AuditEntry(
                who=who, recipients=[member], parts=0, message_ids=[],
                outcome=f"override of rotation {rotation}: {member}"
                f" {window or f'from {start:.0f} to {end:.0f} (epoch seconds)'}",
            )  # fmt: skip
            append_audit(tx, self._db.now(), entry)
        assert row is not None
        return Override(int(row[0]), member, start, end, who)

    def end_overrides(self, rotation: str, who: str) -> list[Override]:
        """End now every override of ``rotation`` in force now; those ended. Audited."""
        with self._db.transaction() as tx:
            now = self._db.now()
            rows = tx.all(
                f"SELECT {_OVERRIDE_COLUMNS} FROM att_rotation_overrides"
                " WHERE rotation = ? AND starts_at <= ? AND ends_at > ? ORDER BY id",
                (rotation, now, now),
            )
            if not rows:
                return []
            tx.execute(
                "UPDATE att_rotation_overrides SET ends_at = ?"
                " WHERE rotation = ? AND starts_at <= ? AND ends_at > ?",
                (now, rotation, now, now),
            )
            ended = [_override(row) for row in rows]
            entry = AuditEntry(
                who=who, recipients=[o.member for o in ended], parts=0, message_ids=[],
                outcome=f"override of rotation {rotation} ended",
            )  # fmt: skip
            append_audit(tx, self._db.now(), entry)
        return ended

    def overrides(self, rotation: str) -> list[Override]:
        """The overrides of ``rotation`` not yet over (and recent ones), oldest first."""
        with self._db.transaction() as tx:
            return _overrides(tx, rotation, self._db.now())

    # -- handoff posts -----------------------------------------------------------------

    def claim_handoff(
        self, rotation: str, handoff_at: float, holder: str, *, room: str, text: str
    ) -> bool:
        """Take the one right to post this handoff and queue its room post, in one
        transaction; False when it was taken already (another replica, an earlier run).

        The post goes out with the pages' posts (``att_page_posts``): with the chat's
        confirmation, retried while the chat refuses it.
        """
        with self._db.transaction() as tx:
            now = self._db.now()
            won = tx.execute(
                "INSERT INTO att_handoff_posts (rotation, handoff_at, holder, claimed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (rotation, handoff_at, holder, now),
            ).rowcount
            if won == 1:
                tx.execute(
                    "INSERT INTO att_page_posts (page_id, room, text, next_at, attempts)"
                    " VALUES (?, ?, ?, ?, 0)",
                    (f"rotation:{rotation}", room, text, now),
                )
            tx.execute("DELETE FROM att_handoff_posts WHERE claimed_at < ?", (now - KEPT,))
        return won == 1


def _overrides(tx: Tx, rotation: str, now: float) -> list[Override]:
    rows = tx.all(
        f"SELECT {_OVERRIDE_COLUMNS} FROM att_rotation_overrides"
        " WHERE rotation = ? AND ends_at > ? ORDER BY id",
        (rotation, now - KEPT),
    )
    return [_override(row) for row in rows]


def _check_free_name(tx: Tx, name: str) -> None:
    if tx.one("SELECT 1 FROM att_contacts WHERE name = ?", (name,)) is not None:
        raise RotationRefused(f"name {name!r} is already a contact")
    if tx.one("SELECT 1 FROM att_groups WHERE name = ?", (name,)) is not None:
        raise RotationRefused(f"name {name!r} is already a group")


def oncall_view(tx: Tx, now: float) -> dict[str, Any]:
    """``{"rotations": {name: members}, "oncall": {name: member}}``; empty without rotations."""
    rows = tx.all(f"SELECT {_ROTATION_COLUMNS} FROM att_rotations ORDER BY name")
    if not rows:
        return {}
    members: dict[str, list[str]] = {}
    oncall: dict[str, str] = {}
    for row in rows:
        record = _record(row)
        members[record.name] = list(record.members)
        try:
            oncall[record.name] = record.rotation().who(now, _overrides(tx, record.name, now))[0]
        except ValueError:  # a zone this host no longer knows: the name resolves to nobody
            continue
    return {"rotations": members, "oncall": oncall}
