"""Split an outgoing message into SMS-sized parts with ``(1/3) `` markers.

Lengths are Python ``str`` lengths (code points).  The carrier's limit is a
number of characters per message part; this module does not try to work out
GSM-7 versus UCS-2 encoding, which is the carrier's business.  An emoji is one
code point, so it is never cut in half; a hard split of an over-long word
also avoids cutting before a combining mark, zero-width joiner or variation
selector where it can.

Before anything else the text is normalised: CR LF and lone CR become LF,
every other control character (C0 except LF and TAB, DEL, C1) becomes a
space, because carriers refuse or mangle them and they are never what a chat
user meant to send.  Surrounding whitespace is stripped.  Whitespace inside a
part is kept as written; the whitespace at a split point is dropped.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MessageError", "normalise_text", "split_message"]

_NEWLINES = re.compile(r"\r\n?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WORDS = re.compile(r"\S+")
_JOINERS = frozenset("\u200d\u034f") | frozenset(chr(c) for c in range(0xFE00, 0xFE10))


class MessageError(ValueError):
    """The message cannot be sent: empty, or too long for the parts allowed."""


def normalise_text(text: str) -> str:
    """Apply the newline/control-character rules above and strip blanks."""
    text = _NEWLINES.sub("\n", text)
    return _CONTROLS.sub(" ", text).strip()


def _marker(index: int, total: int) -> str:
    return f"({index}/{total}) "


def _cut(word: str, start: int, room: int) -> int:
    """End index for a hard split of ``word[start:]`` into ``room`` characters."""
    end = start + room
    back = end
    while back > start + 1 and (
        word[back] in _JOINERS or unicodedata.combining(word[back]) or word[back - 1] in _JOINERS
    ):
        back -= 1
    return back if back > start + 1 or room == 1 else end


def _pack(text: str, total: int, limit: int) -> list[tuple[int, int]] | None:
    """Greedy packing assuming ``total`` parts; spans of ``text`` per part.

    Returns ``None`` when a marker leaves no room at all.
    """
    spans: list[tuple[int, int]] = []
    words = [(m.start(), m.end()) for m in _WORDS.finditer(text)]
    i = 0
    pos: int | None = None  # start of the unplaced rest of words[i]
    while i < len(words):
        room = limit - len(_marker(len(spans) + 1, max(total, len(spans) + 1)))
        if room < 1:
            return None
        start = words[i][0] if pos is None else pos
        end = start
        while i < len(words):
            wstart = words[i][0] if pos is None else pos
            wend = words[i][1]
            if wend - start <= room:
                end, pos, i = wend, None, i + 1
                continue
            if end == start:  # nothing placed yet: the word alone is too long
                end = _cut(text, wstart, room)
                pos = end
            break
        spans.append((start, end))
    return spans


def split_message(text: str, max_parts: int = 4, limit: int = 160) -> list[str]:
    """Split ``text`` into at most ``max_parts`` parts of at most ``limit`` characters.

    Text that fits in one part comes back alone and without a marker.  Longer
    text is split at whitespace (an over-long word is cut) and every part
    starts with a ``(i/n) `` marker counted within ``limit``.  Raises
    ``MessageError`` for empty text or when more than ``max_parts`` parts
    would be needed.
    """
    if max_parts < 1 or limit < 1:
        raise ValueError("max_parts and limit must be at least 1")
    text = normalise_text(text)
    if not text:
        raise MessageError("message is empty")
    if len(text) <= limit:
        return [text]
    # More parts mean wider markers and so less room: the count only grows,
    # so iterate from 2 up to the fixed point.
    total = 2
    while True:
        spans = _pack(text, total, limit)
        if spans is None:
            raise MessageError(
                f"message is too long for parts of {limit} characters; the limit is {max_parts}"
            )
        if len(spans) <= total:
            break
        total = len(spans)
    if len(spans) > max_parts:
        raise MessageError(
            f"message needs {len(spans)} parts of {limit} characters; the limit is {max_parts}"
        )
    return [_marker(n, len(spans)) + text[a:b] for n, (a, b) in enumerate(spans, 1)]
