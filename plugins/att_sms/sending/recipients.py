"""Recipients: contact, group and rotation names and numbers turned into who to text.

``resolve`` reads the directory's dict (``att_sms.sending.directory``, the store's snapshot)
and turns a rotation's name into the member on call, or, with ``keep_rotations``, into the
target ``rotation:<name>`` that a page resolves again at each step (``oncall_target``).

``resolve`` re-checks every number (contacts' and groups' stored numbers too) with
the current ``NumberRules``, so a tightened ``allowed_regions`` applies to what was
stored earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from att_sms.sending.directory import (
    DirectoryError,
    canonical_tel,
    lookup_name,
    quoted,
    rotation_members,
)
from att_sms.text.numbers import NumberError, NumberRules

__all__ = [
    "ROTATION_PREFIX",
    "Recipient",
    "has_names",
    "name_of",
    "oncall_target",
    "resolve",
    "rotation_of",
    "rotation_target",
]


@dataclass(frozen=True)
class Recipient:
    """One resolved destination: a ``tel:+E164`` number and who it is.

    ``label`` is the contact name (``"alice"``), ``"group:contact"`` for a contact
    reached through a group (``"oncall:alice"``), the group name for a bare number
    stored in a group, or ``None`` for a number given directly.
    """

    tel: str
    label: str | None = None


#: A page's recipient that names a rotation, resolved again at each step.
ROTATION_PREFIX = "rotation:"


def rotation_target(name: str) -> str:
    """The page recipient for rotation ``name``."""
    return ROTATION_PREFIX + name


def rotation_of(target: str) -> str | None:
    """The rotation a page recipient names, or ``None`` for a number."""
    return target[len(ROTATION_PREFIX) :] if target.startswith(ROTATION_PREFIX) else None


def has_names(tokens: list[str]) -> bool:
    """True when a token could name a contact or group: only then does ``resolve`` need
    the directory (a list of numbers resolves the same with an empty one)."""
    return any(isinstance(t, str) and lookup_name(t) is not None for t in tokens)


def resolve(
    state: dict[str, Any],
    tokens: Sequence[object],
    rules: NumberRules,
    *,
    keep_rotations: bool = False,
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
            problems.append(f"{quoted(token)}: not text")
            continue
        if not token.strip():
            problems.append(f"{quoted(token)}: empty recipient")
            continue
        name = lookup_name(token)
        if name is None:
            check(token, None, "")
        elif name in contacts:
            check(contacts[name], name, f"contact {quoted(name)}")
        elif name in rotation_members(state):
            if keep_rotations:
                found.append(Recipient(rotation_target(name), name))
            else:
                _resolve_oncall(state, name, check, problems)
        elif name in groups:
            members = groups[name]
            if not members:
                problems.append(f"group {quoted(name)} has no members")
            for member in members:
                if member in contacts:
                    where = f"group {quoted(name)} contact {quoted(member)}"
                    check(contacts[member], f"{name}:{member}", where)
                elif canonical_tel(member) is not None:
                    check(member, name, f"group {quoted(name)}")
                else:
                    problems.append(f"group {quoted(name)}: unknown contact {quoted(member)}")
        else:
            problems.append(f"{quoted(token)}: unknown contact or group")
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
    where = f"rotation {quoted(rotation)}"
    if member is None:
        problems.append(f"{where}: nobody is on call (its zone is unknown here)")
    elif member in contacts:
        check(contacts[member], f"{rotation}:{member}", f"{where} contact {quoted(member)}")
    elif canonical_tel(member) is not None:
        check(member, rotation, where)
    else:
        problems.append(f"{where}: unknown contact {quoted(member)}")


def oncall_target(state: dict[str, Any], target: str, rules: NumberRules) -> Recipient:
    """The recipient a page's ``rotation:<name>`` target is now (or a number unchanged)."""
    rotation = rotation_of(target)
    if rotation is None:
        return Recipient(rules.normalise(target))
    if rotation not in rotation_members(state):
        raise DirectoryError(f"rotation {quoted(rotation)} no longer exists")
    (found,) = resolve(state, [rotation], rules)
    return found


def name_of(state: dict[str, Any], tel: str) -> str | None:
    """The contact name for ``tel`` (``tel:+E164`` or ``+E164``), or ``None``.

    If several contacts share the number, the alphabetically first one.
    """
    wanted = canonical_tel(tel)
    if wanted is None:
        return None
    names = [n for n, t in (state.get("contacts") or {}).items() if t == wanted]
    return min(names) if names else None
