"""The rotation commands' logic (``!sms rotation ...``, ``oncall``, ``override``) and the
handoff posts, as a plain class: the errbot layer (``commands.rotations``) only passes the
words typed, who typed them and where, and sends what comes back.

Every answer is one line per rotation, rendered from typed results (``OnCall``). Times
are shown in the rotation's zone with its abbreviation; times typed are read in it.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from dataclasses import dataclass

from att_sms.sending import directory
from att_sms.store import RotationRecord, RotationRefused, Store
from att_sms.text.formatting import neutralise
from att_sms.text.numbers import NumberError, NumberRules, display_number

from . import (
    OnCall,
    RotationError,
    default_start,
    format_local,
    format_shift,
    local_instant,
    parse_duration,
    parse_local,
    parse_shift,
    parse_zone,
)

__all__ = ["USAGE_ADD", "USAGE_OVERRIDE", "Handoff", "OnCallDesk"]

USAGE_ADD = (
    "usage: !sms rotation add <name> <member>[,<member>...] [--shift 1w] "
    "[--start YYYY-MM-DDTHH:MM] [--tz Europe/Berlin] [--room #room]"
)
USAGE_OVERRIDE = (
    "usage: !sms override <rotation> <member> <duration, e.g. 8h> | "
    "!sms override <rotation> <member> --until YYYY-MM-DDTHH:MM"
)
_OPTIONS = ("--shift", "--start", "--tz", "--room")
MAX_MEMBERS = 50


@dataclass(frozen=True)
class Handoff:
    """A handoff this process claimed: posted in ``room``; ``tel`` is the incoming number."""

    rotation: str
    at: float
    room: str
    text: str
    sms: str
    tel: str | None


class OnCallDesk:
    """Rotations and overrides for the chat commands; handoffs for the poller."""

    def __init__(self, store: Store, rules: NumberRules, default_zone: str) -> None:
        self._store = store
        self._rules = rules
        self._default_zone = default_zone

    # -- rotations -------------------------------------------------------------------

    def add(self, args: str, user: str, room: str, check_room: Callable[[str], None]) -> str:
        """``<name> <member>[,...] [--shift ..] [--start ..] [--tz ..] [--room ..]``."""
        try:
            record = self._parse_rotation(args, user, room, check_room)
            replaced = self._store.save_rotation(record)
        except (RotationError, RotationRefused, directory.DirectoryError, NumberError) as exc:
            return f"Rotation not saved: {neutralise(str(exc), max_length=300)}"
        rotation = record.rotation()
        now = self._store.now()
        return (
            f"Rotation {record.name} {'replaced' if replaced else 'saved'}:"
            f" {', '.join(self._who(m) for m in record.members)};"
            f" {format_shift(record.shift)} shifts from"
            f" {format_local(local_instant(record.start, rotation.zone), rotation.zone, now)}"
            f" ({record.zone}), handoffs posted in {neutralise(record.room, max_length=80)}."
            f" Now: {self._line(record, now, named=False)}"
        )

    def _parse_rotation(
        self, args: str, user: str, room: str, check_room: Callable[[str], None]
    ) -> RotationRecord:
        words = (args or "").split()
        if len(words) < 2:
            raise RotationError(USAGE_ADD)
        name = directory.check_name(words[0], "rotation")
        options: dict[str, str] = {}
        rest = words[2:]
        while rest:
            option = rest[0].lower()
            if option not in _OPTIONS or len(rest) < 2:
                raise RotationError(f"unknown option or missing value {rest[0]!r}; {USAGE_ADD}")
            options[option] = rest[1]
            rest = rest[2:]
        members = self._members(words[1].split(","))
        zone_name = options.get("--tz", self._default_zone)
        zone = parse_zone(zone_name)
        shift = parse_shift(options.get("--shift", "1w"))
        if "--start" in options:
            start = parse_local(options["--start"])
        else:
            start = default_start(self._store.now(), zone)
        target = options.get("--room", room)
        check_room(target)
        return RotationRecord(name, members, start, shift, zone.key, target, user, 0.0)

    def _members(self, tokens: list[str]) -> tuple[str, ...]:
        book = self._store.directory()
        found: list[str] = []
        problems: list[str] = []
        for token in tokens:
            if not token.strip():
                problems.append("empty member (check the commas)")
                continue
            name = token.strip().lower()
            if name in (book.get("contacts") or {}):
                found.append(name)
            elif name in (book.get("groups") or {}) or name in (book.get("rotations") or {}):
                problems.append(f"{name!r} is a group or rotation: members are contacts or numbers")
            else:
                try:
                    found.append(self._rules.normalise(token))
                except NumberError:
                    problems.append(f"{token!r}: unknown contact and not a phone number")
        if problems:
            raise RotationError("; ".join(problems))
        if len(found) > MAX_MEMBERS:
            raise RotationError(f"at most {MAX_MEMBERS} members")
        return tuple(dict.fromkeys(found))

    def remove(self, args: str, user: str) -> str:
        words = (args or "").split()
        if len(words) != 1:
            return "usage: !sms rotation remove <name>"
        name = words[0].lower()
        if not self._store.remove_rotation(name, user):
            return f"No rotation {neutralise(name, max_length=40)}."
        return f"Rotation {name} removed."

    def list(self) -> str:
        records = self._store.rotations()
        if not records:
            return "No rotations yet: !sms rotation add <name> <member>[,<member>...]"
        now = self._store.now()
        return "\n".join(
            f"{self._line(r, now)} [{format_shift(r.shift)} shifts, {r.zone},"
            f" room {neutralise(r.room, max_length=80)}]"
            for r in records
        )

    def oncall(self, args: str) -> str:
        words = (args or "").split()
        if len(words) > 1:
            return "usage: !sms oncall [<rotation>]"
        if not words:
            records = self._store.rotations()
            if not records:
                return "No rotations yet: !sms rotation add <name> <member>[,<member>...]"
        else:
            record = self._store.get_rotation(words[0].lower())
            if record is None:
                return f"No rotation {neutralise(words[0], max_length=40)}."
            records = [record]
        now = self._store.now()
        return "\n".join(self._line(r, now) for r in records)

    # -- overrides -------------------------------------------------------------------

    def override(self, args: str, user: str) -> str:
        words = (args or "").split()
        if len(words) < 3:
            return USAGE_OVERRIDE
        record = self._store.get_rotation(words[0].lower())
        if record is None:
            return f"Override not saved: no rotation {neutralise(words[0], max_length=40)}."
        try:
            (member,) = self._members([words[1]])
            rotation = record.rotation()
            now = self._store.now()
            if words[2].lower() == "--until":
                if len(words) != 4:
                    return USAGE_OVERRIDE
                end = local_instant(parse_local(words[3], "--until"), rotation.zone)
                if end <= now:
                    raise RotationError(
                        f"--until {words[3]} ({rotation.zone.key}) is not in the future"
                    )
            else:
                if len(words) != 3:
                    return USAGE_OVERRIDE
                end = now + parse_duration(words[2]).total_seconds()
            window = f"until {format_local(end, rotation.zone, now)}"
            self._store.add_override(record.name, member, now, end, user, window=window)
        except (RotationError, RotationRefused, NumberError, ValueError) as exc:
            return f"Override not saved: {neutralise(str(exc), max_length=300)}"
        return f"Override saved. {self._line(record, now)}"

    def end_override(self, args: str, user: str) -> str:
        words = (args or "").split()
        if len(words) != 1:
            return "usage: !sms override remove <rotation>"
        record = self._store.get_rotation(words[0].lower())
        if record is None:
            return f"No rotation {neutralise(words[0], max_length=40)}."
        ended = self._store.end_overrides(record.name, user)
        if not ended:
            return f"No override of {record.name} is in force."
        who = ", ".join(dict.fromkeys(self._who(o.member) for o in ended))
        return f"Override of {record.name} ended ({who}). {self._line(record, self._store.now())}"

    # -- handoffs --------------------------------------------------------------------

    def claim_handoffs(self, holder: str) -> builtins.list[Handoff]:  # list: a method here
        """Claim and queue the post of each rotation's latest handoff not posted yet.

        Only the latest: a bot that was down over several handoffs posts the current one
        once. Handoffs from before the rotation was saved are not posted.
        """
        claimed: list[Handoff] = []
        now = self._store.now()
        for record in self._store.rotations():
            try:
                rotation = record.rotation()
            except (RotationError, ValueError):
                continue
            last = rotation.last_handoff(now)
            if last is None or last[1] < record.created_at:
                continue
            now_on = rotation.on_call(now, self._store.overrides(record.name))
            text = self._handoff_text(record, now_on, now)
            if self._store.claim_handoff(record.name, last[1], holder, room=record.room, text=text):
                sms = f"{record.name}: you are on call until {self._until(record, now_on, now)}"
                claimed.append(Handoff(record.name, last[1], record.room, text, sms,
                                       self._tel(now_on.member)))  # fmt: skip
        return claimed

    def _handoff_text(self, record: RotationRecord, now_on: OnCall, now: float) -> str:
        was = f" (was {self._who(now_on.previous)})" if now_on.previous else ""
        return (
            f"{record.name}: {self._who(now_on.member)} is on call until"
            f" {self._until(record, now_on, now)}{was}"
        )

    # -- rendering -------------------------------------------------------------------

    def _line(self, record: RotationRecord, now: float, *, named: bool = True) -> str:
        """``primary: bob is on call until Mon 7 Dec 09:00 CET, then alice``."""
        try:
            now_on = record.rotation().on_call(now, self._store.overrides(record.name))
        except (RotationError, ValueError) as exc:
            return f"{record.name}: unknown ({neutralise(str(exc), max_length=100)})"
        head = f"{record.name}: " if named else ""
        opted = self._store.opted_out([t for t in [self._tel(now_on.member)] if t])
        state = " (opted out: texted STOP; pages to it fail)" if opted else ""
        cover = ""
        if now_on.override is not None:
            cover = f" (override by {neutralise(now_on.override.created_by, max_length=60)})"
        then = "" if math.isinf(now_on.until) else f", then {self._who(now_on.next)}"
        return (
            f"{head}{self._who(now_on.member)}{state} is on call{cover} until"
            f" {self._until(record, now_on, now)}{then}"
        )

    @staticmethod
    def _until(record: RotationRecord, now_on: OnCall, now: float) -> str:
        if math.isinf(now_on.until):
            return "further notice (nobody else in the rotation)"
        return format_local(now_on.until, parse_zone(record.zone), now)

    def _tel(self, member: str) -> str | None:
        if member.startswith("tel:"):
            return member
        return (self._store.directory().get("contacts") or {}).get(member)

    @staticmethod
    def _who(member: str | None) -> str:
        if not member:
            return "nobody"
        if member.startswith("tel:"):
            return display_number(member)
        return neutralise(member, max_length=40)
