"""Chat commands for the team's address book: contacts, groups and the opt-out list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from att_sms.sending import directory
from att_sms.store.audit import AuditEntry
from att_sms.text.arguments import ArgumentError, single_word
from att_sms.text.common import utc_time
from att_sms.text.formatting import echo
from att_sms.text.numbers import NumberError, display_number

from .runtime import Runtime, user_of

T = TypeVar("T")


@dataclass(frozen=True)
class GroupRefused:
    """A group change refused (unknown member, bad number...): the one-line reply."""

    reply: str


class DirectoryDesk:
    """``!sms contact ...``, ``!sms group ...``, ``!sms optouts``: the team's address book."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def contact_add(self, msg: Any, args: str) -> str:
        """<name> <number>: add or replace a contact."""
        name, _, number = (args or "").strip().partition(" ")
        if not name or not number.strip():
            return "usage: !sms contact add <name> <number>"
        rules = self._rt.rules

        def change(book: dict[str, Any]) -> tuple[str | None, str]:
            old = directory.contact_number(book, name)
            return old, directory.add_contact(book, name, number.strip().strip('"'), rules)

        key = name.lower()

        def audit(result: tuple[str | None, str]) -> AuditEntry | None:
            old, tel = result
            return (
                None if old == tel else self._audit_entry(msg, [tel], contact_change(key, old, tel))
            )

        try:
            old, tel = self._rt.store.edit_directory(change, audit)
        except (directory.DirectoryError, NumberError) as exc:
            return f"Contact not saved: {echo(str(exc), 300)}"
        if old == tel:
            return f"Contact {key} is {tel} ({display_number(tel)}) (unchanged)."
        if old is None:
            return f"Contact {key} is {tel} ({display_number(tel)})."
        # Said in the room where it was changed: whoever is paged as `key` changes with it.
        return (
            f"Contact {key} changed: pages to {key} now go to {tel} ({display_number(tel)}), "
            f"no longer to {old} ({display_number(old)})."
        )

    def _audit_entry(self, msg: Any, numbers: list[str], outcome: str) -> AuditEntry:
        """An address-book change for the audit log (``!sms log``), with who made it."""
        return AuditEntry(
            who=user_of(msg), recipients=numbers, parts=0, message_ids=[], outcome=outcome
        )

    def contact_remove(self, msg: Any, args: str) -> str:
        """<name>: remove a contact (and from every group)."""
        try:
            name = single_word(args, "contact name", "usage: !sms contact remove <name>")

            def remove(book: dict[str, Any]) -> tuple[str | None, list[str]]:
                old = directory.contact_number(book, name)
                return old, directory.remove_contact(book, name)

            old, groups = self._rt.store.edit_directory(
                remove,
                lambda result: self._audit_entry(
                    msg,
                    [result[0]] if result[0] else [],
                    contact_change(name.lower(), result[0], None),
                ),
            )
        except (ArgumentError, directory.DirectoryError) as exc:
            return f"Nothing removed: {echo(str(exc), 300)}"
        also = f" (also removed from {', '.join(groups)})" if groups else ""
        return f"Contact {name.lower()} removed{also}."

    def contacts(self, msg: Any, args: str) -> str:
        """Lists the contacts."""
        contacts = directory.list_contacts(self._rt.store.directory())
        if not contacts:
            return "No contacts yet: !sms contact add <name> <number>"
        return "Contacts: " + "; ".join(f"{name} {display_number(tel)}" for name, tel in contacts)

    def group_add(self, msg: Any, args: str) -> str:
        """<group> <member>...: create a group or add contacts/numbers to it."""
        words = (args or "").split()
        if len(words) < 2:
            return "usage: !sms group add <group> <member>..."
        rules = self._rt.rules
        members = self._edit_group(
            lambda book: directory.add_group(book, words[0], words[1:], rules)
        )
        if isinstance(members, GroupRefused):
            return members.reply
        return f"Group {words[0].lower()}: {', '.join(members)}."

    def group_remove(self, msg: Any, args: str) -> str:
        """<group> [<member>...]: remove members, or the whole group when none are named."""
        words = (args or "").split()
        if not words:
            return "usage: !sms group remove <group> [<member>...]"
        rules = self._rt.rules
        removed = self._edit_group(
            lambda book: directory.remove_group(book, words[0], words[1:] or None, rules=rules)
        )
        if isinstance(removed, GroupRefused):
            return removed.reply
        if len(words) == 1:
            return f"Group {words[0].lower()} removed."
        return f"Removed {', '.join(words[1:])} from group {words[0].lower()}."

    def _edit_group(self, change: Callable[[dict[str, Any]], T]) -> T | GroupRefused:
        """One group change in the store, or why it was refused (nothing stored)."""
        try:
            return self._rt.store.edit_directory(change)
        except (directory.DirectoryError, NumberError) as exc:
            return GroupRefused(f"Group not changed: {echo(str(exc), 300)}")

    def groups(self, msg: Any, args: str) -> str:
        """Lists the groups and their members."""
        groups = directory.list_groups(self._rt.store.directory())
        if not groups:
            return "No groups yet: !sms group add <group> <member>..."
        return "Groups: " + "; ".join(f"{g}: {', '.join(m) or '(empty)'}" for g, m in groups)

    def optouts(self, msg: Any, args: str) -> str:
        """Lists the numbers that opted out by texting STOP."""
        optouts = self._rt.store.optouts()
        if not optouts:
            return "No number has opted out."
        listed = "; ".join(
            f"{display_number(tel)} since {utc_time(since)}" for tel, since in optouts
        )
        return f"Opted out ({len(optouts)}): {listed}"


def contact_change(name: str, old: str | None, new: str | None) -> str:
    """The audit log's outcome for a contact added, changed or removed."""
    if old is None:
        return f"contact {name} added: {new}"
    if new is None:
        return f"contact {name} removed: was {old}"
    return f"contact {name} changed from {old} to {new}"
