"""How one audit log entry reads in chat (``!sms log``).

The store keeps the log (``att_audit``; ``store.audit``'s ``record_audit`` and
``last_audit``) and hands entries back as plain dicts::

    {"who": "alice", "when": 1776592800.0, "recipients": ["tel:+12125551234"],
     "parts": 2, "message_ids": ["id1"], "outcome": "sent"}

``format_entry`` turns one into a single line, tolerating odd or missing fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from att_sms.text.common import utc_time

__all__ = ["format_entry"]

#: Most recipients / message ids ``format_entry`` shows before "(+N more)".
MAX_SHOWN_ITEMS = 10
#: Longest text of one field ``format_entry`` shows.
MAX_FIELD = 300

_BLANKS = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]+")


def _one_line(value: object) -> str:
    """``value`` as text on one line: control characters and line breaks become spaces."""
    text = _BLANKS.sub(" ", str(value)).strip()
    if len(text) > MAX_FIELD:
        text = text[: MAX_FIELD - 1] + "\u2026"
    return text


def _items(values: object) -> str:
    if isinstance(values, str) or not isinstance(values, Iterable):
        values = [] if values is None else [values]
    shown = [_one_line(v) for v in values]
    more = len(shown) - MAX_SHOWN_ITEMS
    if more > 0:
        shown = shown[:MAX_SHOWN_ITEMS] + [f"(+{more} more)"]
    return ", ".join(shown)


def _time(when: Any) -> str:
    try:
        return utc_time(float(when))
    except (TypeError, ValueError, OverflowError, OSError):
        return "????-??-?? ??:?? UTC"


def format_entry(entry: dict[str, Any]) -> str:
    """One line: ``2026-04-19 10:00 UTC alice -> tel:+1..., tel:+1... 2 parts [id1]: sent``."""
    parts = entry.get("parts", 0)
    try:
        count = int(parts)
        parts_text = f"{count} part" if count == 1 else f"{count} parts"
    except (TypeError, ValueError):
        parts_text = f"{_one_line(parts)} parts"
    recipients = _items(entry.get("recipients")) or "(nobody)"
    return (
        f"{_time(entry.get('when'))} {_one_line(entry.get('who', '?')) or '?'} -> "
        f"{recipients} {parts_text} [{_items(entry.get('message_ids'))}]: "
        f"{_one_line(entry.get('outcome', ''))}"
    )
