"""Contacts and groups: names the on-call team can page instead of raw numbers.

The whole directory is one plain, JSON-compatible dict (the store keeps it in its tables and
builds this form: ``Store.directory()``)::

    {"contacts": {"alice": "tel:+12125551234"},
     "groups": {"oncall": ["alice", "tel:+12125550000"]}}

Every function takes that dict and reads or mutates it in place; the caller holds
the lock. A function that refuses raises ``DirectoryError`` and leaves the state
untouched.

Names (of contacts and groups alike) are 1-32 characters of ``[a-z0-9_.-]``,
starting with a letter or digit, case-insensitive and stored lowercase. A name made
only of digits, dots and dashes is refused because it reads like a phone number, so a
token is never both a name and a number. Contacts and groups share one namespace.
Groups hold contact names and normalised numbers, never other groups. A group may be
empty (until it is deleted); resolving an empty group is refused.

Rotations (``att_sms.rotations``, kept by the store) share the namespace too: the store's
snapshot adds ``"rotations": {name: [member, ...]}`` and ``"oncall": {name: member}`` (who is
on call at the snapshot's time, overrides included). A contact a rotation uses cannot be removed.

Turning names into the numbers to text is ``att_sms.sending.recipients``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from att_sms.text.numbers import NumberError, NumberRules

__all__ = [
    "MAX_CONTACTS",
    "MAX_GROUPS",
    "MAX_GROUP_MEMBERS",
    "DirectoryError",
    "add_contact",
    "add_group",
    "canonical_tel",
    "check_name",
    "contact_number",
    "list_contacts",
    "list_groups",
    "lookup_name",
    "new_directory",
    "quoted",
    "remove_contact",
    "remove_group",
    "rotation_members",
]

#: Bounds on what the directory holds (plugin storage is rewritten whole).
MAX_CONTACTS = 1000
MAX_GROUPS = 200
MAX_GROUP_MEMBERS = 200

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_NUMBER_LIKE = re.compile(r"[0-9.-]+")
_MAX_SHOWN = 40


class DirectoryError(ValueError):
    """A directory operation or a recipient list was refused.

    ``str(e)`` is one line naming what was refused and why. ``problems`` lists each
    refused item's own one-line reason (one entry unless several tokens were bad).
    """

    def __init__(self, message: str, problems: Iterable[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems is not None else [message]


def quoted(text: object) -> str:
    """Quote untrusted text for a one-line message: repr-escaped and shortened."""
    if not isinstance(text, str):
        return repr(text)[:_MAX_SHOWN]
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "\u2026"
    return repr(text)


def _contacts(state: dict[str, Any]) -> dict[str, str]:
    contacts: dict[str, str] = state.setdefault("contacts", {})
    return contacts


def _groups(state: dict[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = state.setdefault("groups", {})
    return groups


def rotation_members(state: dict[str, Any]) -> dict[str, list[str]]:
    """Each rotation's members in a store snapshot (none in a bare directory)."""
    return state.get("rotations") or {}


def _check_name(raw: object, what: str) -> str:
    """Return ``raw`` as a valid lowercase name, or raise ``DirectoryError``."""
    if not isinstance(raw, str):
        raise DirectoryError(f"{what} name {quoted(raw)} is not text")
    name = raw.strip().lower()
    if not name:
        raise DirectoryError(f"{what} name is empty")
    if len(name) > 32:
        raise DirectoryError(f"{what} name {quoted(raw)} is too long (at most 32 characters)")
    if not name.isascii() or not _NAME.fullmatch(name):
        raise DirectoryError(
            f"{what} name {quoted(raw)} is not allowed: use a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    if _NUMBER_LIKE.fullmatch(name):
        raise DirectoryError(
            f"{what} name {quoted(raw)} looks like a phone number: a name needs a letter"
        )
    return name


def check_name(raw: object, what: str) -> str:
    """``raw`` as a valid lowercase name (contact, group or rotation), or ``DirectoryError``."""
    return _check_name(raw, what)


def lookup_name(token: str) -> str | None:
    """``token`` as a lowercase name if it could be one, else ``None``."""
    name = token.strip().lower()
    if name.isascii() and _NAME.fullmatch(name) and not _NUMBER_LIKE.fullmatch(name):
        return name
    return None


def canonical_tel(tel: object) -> str | None:
    """``tel:+E164`` form of a stored or carrier-given number (no parsing)."""
    if not isinstance(tel, str):
        return None
    text = tel.strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if not text.startswith("+"):
        return None
    return "tel:" + text


def new_directory() -> dict[str, Any]:
    """An empty directory state."""
    return {"contacts": {}, "groups": {}}


def add_contact(state: dict[str, Any], name: str, raw_number: str, rules: NumberRules) -> str:
    """Add contact ``name`` (or replace its number); return the normalised ``tel:`` number."""
    key = _check_name(name, "contact")
    if key in _groups(state):
        raise DirectoryError(f"contact name {quoted(key)} is already a group")
    if key in rotation_members(state):
        raise DirectoryError(f"contact name {quoted(key)} is already a rotation")
    try:
        tel = rules.normalise(raw_number)
    except NumberError as exc:
        raise DirectoryError(f"contact {quoted(key)}: {exc}") from exc
    contacts = _contacts(state)
    if key not in contacts and len(contacts) >= MAX_CONTACTS:
        raise DirectoryError(
            f"cannot add contact {quoted(key)}: the directory is full ({MAX_CONTACTS} contacts)"
        )
    contacts[key] = tel
    return tel


def contact_number(state: dict[str, Any], name: str) -> str | None:
    """The ``tel:`` number of contact ``name``, or None when there is no such contact."""
    name_key = lookup_name(name) if isinstance(name, str) else None
    return _contacts(state).get(name_key) if name_key else None


def remove_contact(state: dict[str, Any], name: str) -> list[str]:
    """Remove contact ``name`` and its group memberships; return those groups, sorted.

    Groups left empty are kept (delete them with ``remove_group``).
    """
    key = name.strip().lower() if isinstance(name, str) else name
    contacts = _contacts(state)
    if key not in contacts:
        raise DirectoryError(f"unknown contact {quoted(name)}")
    using = sorted(r for r, members in rotation_members(state).items() if key in members)
    if using:
        raise DirectoryError(
            f"contact {quoted(key)} is in rotation {', '.join(using)}: change or remove"
            " the rotation first"
        )
    del contacts[key]
    left: list[str] = []
    for group, members in _groups(state).items():
        if key in members:
            members[:] = [m for m in members if m != key]
            left.append(group)
    return sorted(left)


def add_group(
    state: dict[str, Any], group: str, members: Sequence[object], rules: NumberRules
) -> list[str]:
    """Create ``group`` or add ``members`` to it; return its whole member list (just over
    50 lines: the per-member checks and the one error listing every bad member).

    Members are contact names (stored as names) or numbers (stored normalised).
    Members already in the group are skipped. Unknown names, group names and bad
    numbers are refused, all listed in one error; nothing is changed then.
    """
    key = _check_name(group, "group")
    contacts = _contacts(state)
    groups = _groups(state)
    if key in contacts:
        raise DirectoryError(f"group name {quoted(key)} is already a contact")
    if key in rotation_members(state):
        raise DirectoryError(f"group name {quoted(key)} is already a rotation")
    if key not in groups and len(groups) >= MAX_GROUPS:
        raise DirectoryError(
            f"cannot add group {quoted(key)}: there are already {MAX_GROUPS} groups"
        )
    current = list(groups.get(key, []))
    problems: list[str] = []
    for token in members:
        if not isinstance(token, str):
            problems.append(f"{quoted(token)}: not text")
            continue
        name = lookup_name(token)
        if name is not None:
            if name in contacts:
                member = name
            elif name in groups:
                problems.append(f"{quoted(token)}: a group cannot contain a group")
                continue
            elif name in rotation_members(state):
                problems.append(f"{quoted(token)}: a group cannot contain a rotation")
                continue
            else:
                problems.append(f"{quoted(token)}: unknown contact")
                continue
        else:
            try:
                member = rules.normalise(token)
            except NumberError as exc:
                problems.append(str(exc))
                continue
        if member not in current:
            current.append(member)
    if problems:
        raise DirectoryError(f"group {quoted(key)} not changed: " + "; ".join(problems), problems)
    if len(current) > MAX_GROUP_MEMBERS:
        raise DirectoryError(
            f"group {quoted(key)} would have {len(current)} members (at most {MAX_GROUP_MEMBERS})"
        )
    groups[key] = current
    return list(current)


def _member_keys(token: str, rules: NumberRules | None) -> set[str]:
    """Stored forms ``token`` may match: a name, or a number however it was written."""
    keys = {token.strip(), token.strip().lower()}
    canonical = canonical_tel(token)
    if canonical is not None:
        keys.add(canonical)
    # Removal must work even for numbers the allow-list no longer accepts.
    lenient = NumberRules(rules.default_region if rules is not None else "US")
    try:
        keys.add(lenient.normalise(token))
    except NumberError:
        pass
    return keys


def remove_group(
    state: dict[str, Any],
    group: str,
    members: Sequence[object] | None,
    *,
    rules: NumberRules | None = None,
) -> None:
    """Delete ``group`` (``members`` None or empty) or remove ``members`` from it.

    Numbers are matched however they are written; ``rules`` gives the region for
    national numbers (US if not given). Any member not in the group is refused, all
    listed in one error, and nothing is changed then. A group left empty is kept.
    """
    key = group.strip().lower() if isinstance(group, str) else group
    groups = _groups(state)
    if key not in groups:
        raise DirectoryError(f"unknown group {quoted(group)}")
    if not members:
        del groups[key]
        return
    current = groups[key]
    drop: set[str] = set()
    problems: list[str] = []
    for token in members:
        if not isinstance(token, str):
            problems.append(f"{quoted(token)}: not text")
            continue
        found = _member_keys(token, rules) & set(current)
        if not found:
            problems.append(f"{quoted(token)}: not a member")
        drop |= found
    if problems:
        raise DirectoryError(f"group {quoted(key)} not changed: " + "; ".join(problems), problems)
    current[:] = [m for m in current if m not in drop]


def list_contacts(state: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, tel)`` pairs sorted by name."""
    return sorted((state.get("contacts") or {}).items())


def list_groups(state: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(group, members)`` pairs sorted by group; members in the order added (copies)."""
    return sorted((g, list(m)) for g, m in (state.get("groups") or {}).items())
