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
on call at the snapshot's time, overrides included). ``resolve`` turns a rotation's name into
that member, or, with ``keep_rotations``, into the target ``rotation:<name>`` that a page
resolves again at each step (``oncall_target``). A contact a rotation uses cannot be removed.

``resolve`` re-checks every number (contacts' and groups' stored numbers too) with
the current ``NumberRules``, so a tightened ``allowed_regions`` applies to what was
stored earlier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from att_sms.text.numbers import NumberError, NumberRules

__all__ = [
    "MAX_CONTACTS",
    "MAX_GROUPS",
    "MAX_GROUP_MEMBERS",
    "DirectoryError",
    "Recipient",
    "add_contact",
    "add_group",
    "check_name",
    "list_contacts",
    "list_groups",
    "name_of",
    "new_directory",
    "remove_contact",
    "remove_group",
    "ROTATION_PREFIX",
    "oncall_target",
    "resolve",
    "rotation_of",
    "rotation_target",
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


@dataclass(frozen=True)
class Recipient:
    """One resolved destination: a ``tel:+E164`` number and who it is.

    ``label`` is the contact name (``"alice"``), ``"group:contact"`` for a contact
    reached through a group (``"oncall:alice"``), the group name for a bare number
    stored in a group, or ``None`` for a number given directly.
    """

    tel: str
    label: str | None = None


def _q(text: object) -> str:
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


def _rotations(state: dict[str, Any]) -> dict[str, list[str]]:
    return state.get("rotations") or {}


#: A page's recipient that names a rotation, resolved again at each step.
ROTATION_PREFIX = "rotation:"


def rotation_target(name: str) -> str:
    """The page recipient for rotation ``name``."""
    return ROTATION_PREFIX + name


def rotation_of(target: str) -> str | None:
    """The rotation a page recipient names, or ``None`` for a number."""
    return target[len(ROTATION_PREFIX) :] if target.startswith(ROTATION_PREFIX) else None


def _check_name(raw: object, what: str) -> str:
    """Return ``raw`` as a valid lowercase name, or raise ``DirectoryError``."""
    if not isinstance(raw, str):
        raise DirectoryError(f"{what} name {_q(raw)} is not text")
    name = raw.strip().lower()
    if not name:
        raise DirectoryError(f"{what} name is empty")
    if len(name) > 32:
        raise DirectoryError(f"{what} name {_q(raw)} is too long (at most 32 characters)")
    if not name.isascii() or not _NAME.fullmatch(name):
        raise DirectoryError(
            f"{what} name {_q(raw)} is not allowed: use a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    if _NUMBER_LIKE.fullmatch(name):
        raise DirectoryError(
            f"{what} name {_q(raw)} looks like a phone number: a name needs a letter"
        )
    return name


def check_name(raw: object, what: str) -> str:
    """``raw`` as a valid lowercase name (contact, group or rotation), or ``DirectoryError``."""
    return _check_name(raw, what)


def _lookup_name(token: str) -> str | None:
    """``token`` as a lowercase name if it could be one, else ``None``."""
    name = token.strip().lower()
    if name.isascii() and _NAME.fullmatch(name) and not _NUMBER_LIKE.fullmatch(name):
        return name
    return None


def has_names(tokens: list[str]) -> bool:
    """True when a token could name a contact or group: only then does ``resolve`` need
    the directory (a list of numbers resolves the same with an empty one)."""
    return any(isinstance(t, str) and _lookup_name(t) is not None for t in tokens)


def _canonical_tel(tel: object) -> str | None:
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
        raise DirectoryError(f"contact name {_q(key)} is already a group")
    if key in _rotations(state):
        raise DirectoryError(f"contact name {_q(key)} is already a rotation")
    try:
        tel = rules.normalise(raw_number)
    except NumberError as exc:
        raise DirectoryError(f"contact {_q(key)}: {exc}") from exc
    contacts = _contacts(state)
    if key not in contacts and len(contacts) >= MAX_CONTACTS:
        raise DirectoryError(
            f"cannot add contact {_q(key)}: the directory is full ({MAX_CONTACTS} contacts)"
        )
    contacts[key] = tel
    return tel


def contact_number(state: dict[str, Any], name: str) -> str | None:
    """The ``tel:`` number of contact ``name``, or None when there is no such contact."""
    name_key = _lookup_name(name) if isinstance(name, str) else None
    return _contacts(state).get(name_key) if name_key else None


def remove_contact(state: dict[str, Any], name: str) -> list[str]:
    """Remove contact ``name`` and its group memberships; return those groups, sorted.

    Groups left empty are kept (delete them with ``remove_group``).
    """
    key = name.strip().lower() if isinstance(name, str) else name
    contacts = _contacts(state)
    if key not in contacts:
        raise DirectoryError(f"unknown contact {_q(name)}")
    using = sorted(r for r, members in _rotations(state).items() if key in members)
    if using:
        raise DirectoryError(
            f"contact {_q(key)} is in rotation {', '.join(using)}: change or remove"
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
        raise DirectoryError(f"group name {_q(key)} is already a contact")
    if key in _rotations(state):
        raise DirectoryError(f"group name {_q(key)} is already a rotation")
    if key not in groups and len(groups) >= MAX_GROUPS:
        raise DirectoryError(f"cannot add group {_q(key)}: there are already {MAX_GROUPS} groups")
    current = list(groups.get(key, []))
    problems: list[str] = []
    for token in members:
        if not isinstance(token, str):
            problems.append(f"{_q(token)}: not text")
            continue
        name = _lookup_name(token)
        if name is not None:
            if name in contacts:
                member = name
            elif name in groups:
                problems.append(f"{_q(token)}: a group cannot contain a group")
                continue
            elif name in _rotations(state):
                problems.append(f"{_q(token)}: a group cannot contain a rotation")
                continue
            else:
                problems.append(f"{_q(token)}: unknown contact")
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
        raise DirectoryError(f"group {_q(key)} not changed: " + "; ".join(problems), problems)
    if len(current) > MAX_GROUP_MEMBERS:
        raise DirectoryError(
            f"group {_q(key)} would have {len(current)} members (at most {MAX_GROUP_MEMBERS})"
        )
    groups[key] = current
    return list(current)


def _member_keys(token: str, rules: NumberRules | None) -> set[str]:
    """Stored forms ``token`` may match: a name, or a number however it was written."""
    keys = {token.strip(), token.strip().lower()}
    canonical = _canonical_tel(token)
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
        raise DirectoryError(f"unknown group {_q(group)}")
    if not members:
        del groups[key]
        return
    current = groups[key]
    drop: set[str] = set()
    problems: list[str] = []
    for token in members:
        if not isinstance(token, str):
            problems.append(f"{_q(token)}: not text")
            continue
        found = _member_keys(token, rules) & set(current)
        if not found:
            problems.append(f"{_q(token)}: not a member")
        drop |= found
    if problems:
        raise DirectoryError(f"group {_q(key)} not changed: " + "; ".join(problems), problems)
    current[:] = [m for m in current if m not in drop]


def resolve(
    state: dict[str, Any], tokens: Sequence[object], rules: NumberRules, *, keep_rotations: bool = False
) -> list[Recipient]:
    """Turn contact names, group names, rotation names and numbers into de-duplicated recipients.

    A rotation is whoever is on call in the snapshot (``"oncall"``), or, with
    ``keep_rotations``, the target ``rotation:<name>`` (its ``tel`` field) for a page to
    resolve at each step with ``oncall_target``. Every number, stored ones included, is
    re-checked with ``rules``. Duplicates (after normalisation) keep their first place and
    label. Any bad token makes one ``DirectoryError`` listing every bad token and why.

    Longer than 50 lines on purpose: one pass over the tokens, each kind (number, contact,
    group, rotation) a branch of it, so that order, de-duplication and the one error that
    lists every bad token stay in one place.
    """
    contacts: dict[str, str] = state.get("contacts") or {}
    groups: dict[str, list[str]] = state.get("groups") or {}
    found: list[Recipient] = []
    problems: list[str] = []

    def check(tel: Any, label: str | None, where: str) -> None:
        try:
            found.append(Recipient(rules.normalise(tel), label))
        except NumberError as exc:
            problems.append(f"{where}: {exc}" if where else str(exc))

    if not tokens:
        raise DirectoryError("no recipients given")
    for token in tokens:
        if not isinstance(token, str):
            problems.append(f"{_q(token)}: not text")
            continue
        if not token.strip():
            problems.append(f"{_q(token)}: empty recipient")
            continue
        name = _lookup_name(token)
        if name is None:
            check(token, None, "")
        elif name in contacts:
            check(contacts[name], name, f"contact {_q(name)}")
        elif name in _rotations(state):
            if keep_rotations:
                found.append(Recipient(rotation_target(name), name))
            else:
                _resolve_oncall(state, name, check, problems)
        elif name in groups:
            members = groups[name]
            if not members:
                problems.append(f"group {_q(name)} has no members")
            for member in members:
                if member in contacts:
                    where = f"group {_q(name)} contact {_q(member)}"
                    check(contacts[member], f"{name}:{member}", where)
                elif _canonical_tel(member) is not None:
                    check(member, name, f"group {_q(name)}")
                else:
                    problems.append(f"group {_q(name)}: unknown contact {_q(member)}")
        else:
            problems.append(f"{_q(token)}: unknown contact or group")
    if problems:
        raise DirectoryError("bad recipients: " + "; ".join(problems), problems)
    seen: set[str] = set()
    unique: list[Recipient] = []
    for recipient in found:
        if recipient.tel not in seen:
            seen.add(recipient.tel)
            unique.append(recipient)
    return unique


def _resolve_oncall(state: dict[str, Any], rotation: str, check: Any, problems: list[str]) -> None:
    """Add whoever is on call for ``rotation`` (labelled ``rotation:contact``)."""
    member = (state.get("oncall") or {}).get(rotation)
    contacts: dict[str, str] = state.get("contacts") or {}
    where = f"rotation {_q(rotation)}"
    if member is None:
        problems.append(f"{where}: nobody is on call (its zone is unknown here)")
    elif member in contacts:
        check(contacts[member], f"{rotation}:{member}", f"{where} contact {_q(member)}")
    elif _canonical_tel(member) is not None:
        check(member, rotation, where)
    else:
        problems.append(f"{where}: unknown contact {_q(member)}")


def oncall_target(state: dict[str, Any], target: str, rules: NumberRules) -> Recipient:
    """The recipient a page's ``rotation:<name>`` target is now (or a number unchanged)."""
    rotation = rotation_of(target)
    if rotation is None:
        return Recipient(rules.normalise(target))
    if rotation not in _rotations(state):
        raise DirectoryError(f"rotation {_q(rotation)} no longer exists")
    (found,) = resolve(state, [rotation], rules)
    return found


def name_of(state: dict[str, Any], tel: str) -> str | None:
    """The contact name for ``tel`` (``tel:+E164`` or ``+E164``), or ``None``.

    If several contacts share the number, the alphabetically first one.
    """
    wanted = _canonical_tel(tel)
    if wanted is None:
        return None
    names = [n for n, t in (state.get("contacts") or {}).items() if t == wanted]
    return min(names) if names else None


def list_contacts(state: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, tel)`` pairs sorted by name."""
    return sorted((state.get("contacts") or {}).items())


def list_groups(state: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(group, members)`` pairs sorted by group; members in the order added (copies)."""
    return sorted((g, list(m)) for g, m in (state.get("groups") or {}).items())
