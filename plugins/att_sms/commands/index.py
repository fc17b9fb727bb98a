"""``!sms``: the one line that lists the SMS commands."""

from __future__ import annotations

from att_sms.text.formatting import echo


def command_index(prefix: str, args: str) -> str:
    """The SMS commands in one line; an unknown first word of ``args`` is named first."""
    words = args.split()
    head = f"Unknown sms command '{echo(words[0], 40)}'. " if words else ""
    p = prefix
    return (
        f"{head}Use {p}sms send <to>[,<to>...] <text> | {p}sms page <to>[,<to>...] <text> | "
        f"{p}sms ack <page> | {p}sms cancel <page> | {p}sms pages | {p}sms alerts | "
        f"{p}sms status <messageId> | {p}sms inbox [<registrationId>] | "
        f"{p}sms reply <handle> <text> | {p}sms contacts | {p}sms groups | "
        f"{p}sms rotations | {p}sms oncall [<rotation>] | {p}sms override <rotation> ... | "
        f"{p}sms optouts | {p}sms log [N] | {p}sms health | {p}sms replicas "
        f"(details: {p}help AttSms)"
    )
