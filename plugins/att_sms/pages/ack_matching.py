"""Acknowledgement by SMS: whether a text acknowledges, and which open page it acknowledges.

The first word must be an ack word (``ACK_WORDS``; case-insensitive, punctuation around it
ignored); a ``P<n>`` word right after it names the page. Without one, the newest open page
that texted the sender is acknowledged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from .escalation import OPEN, Page, paged_numbers, parse_page_id

__all__ = ["DEFAULT_ACK_WORDS", "ack_target", "is_ack"]

DEFAULT_ACK_WORDS = ("ack", "ok", "yes", "y", "1")

_WORD_SPLIT = re.compile(r"[\s,;:]+")


def _bare(word: str) -> str:
    """``word`` casefolded without surrounding punctuation or symbols."""
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        end -= 1
    return word[start:end].casefold()


def is_ack(text: str, ack_words: Iterable[str]) -> tuple[bool, str | None]:
    """Whether ``text`` acknowledges, and the page it names (``ack P7``), if any.

    The first word must be an ack word (case-insensitive, punctuation around
    it ignored: ``OK!``, ``(ack)``); a ``P<n>`` word right after it names the page.
    """
    words = [w for w in _WORD_SPLIT.split(text.strip()) if w]
    accepted = {_bare(w) for w in ack_words} - {""}
    if not words or _bare(words[0]) not in accepted:
        return False, None
    named = parse_page_id(_bare(words[1])) if len(words) > 1 else None
    return True, named


def ack_target(pages: Iterable[Page], sender: str, named: str | None = None) -> Page | None:
    """The open page an ack from ``sender`` (canonical ``tel:+E164``) acknowledges.

    The newest open page that paged ``sender``; with ``named`` only that page.
    """
    candidates = [
        p for p in pages if p.state == OPEN and sender in paged_numbers(p) and named in (None, p.id)
    ]
    return max(candidates, key=lambda p: (p.created_at, int(p.id[1:])), default=None)
