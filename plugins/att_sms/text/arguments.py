"""Parsing of chat command arguments (no errbot here, so it is tested directly)."""

from __future__ import annotations

USAGE_SEND = 'usage: !sms send <to>[,<to>...] <text>   e.g. !sms send +12125551234,"(212) 555-0199" db-1 is down'


class ArgumentError(ValueError):
    """The command's arguments cannot be read; the message says how to write them."""


def split_recipients_and_text(args: str) -> tuple[list[str], str]:
    """Split ``<to>[,<to>...] <text>`` into the recipient strings and the text.

    A recipient containing spaces may be double-quoted: ``"(212) 555-1234",+12125550100 hi``.
    The text is everything after the recipients, surrounding blanks removed; a text wholly
    wrapped in one pair of double quotes loses them (``"db-1 is down"``).
    """
    args = (args or "").strip()
    if not args:
        raise ArgumentError(USAGE_SEND)
    recipients_field, rest = _take_recipients_field(args)
    recipients = _split_recipients(recipients_field)
    text = rest.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"' and text.count('"') == 2:
        text = text[1:-1].strip()
    if not text:
        raise ArgumentError("no message text given; " + USAGE_SEND)
    return recipients, text


def _take_recipients_field(args: str) -> tuple[str, str]:
    """The first field, where blanks inside double quotes do not end it."""
    in_quotes = False
    for index, char in enumerate(args):
        if char == '"':
            in_quotes = not in_quotes
        elif char.isspace() and not in_quotes:
            return args[:index], args[index:]
    if in_quotes:
        raise ArgumentError("unbalanced double quote in the recipients; " + USAGE_SEND)
    return args, ""


def split_recipients(field: str) -> list[str]:
    """``alice,oncall,"(212) 555-0199"`` -> the recipient strings, as ``!sms send`` reads them."""
    return _split_recipients(field.strip())


def _split_recipients(field: str) -> list[str]:
    recipients: list[str] = []
    current: list[str] = []
    in_quotes = False
    for char in field:
        if char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            recipients.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    recipients.append("".join(current).strip())
    if any(not r for r in recipients):
        raise ArgumentError("empty recipient in the list (check the commas); " + USAGE_SEND)
    return recipients


def single_word(args: str, what: str, usage: str) -> str:
    """The one word a command takes (``!sms status <messageId>``)."""
    words = (args or "").split()
    if len(words) != 1:
        raise ArgumentError(f"give exactly one {what}; {usage}")
    return words[0]
