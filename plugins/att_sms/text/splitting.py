"""Split an outgoing message into SMS parts that are one billed segment each.

Every part is sent as its own SMS, so every part must fit one segment in its
own encoding (see ``att_sms.text.gsm``): 160 septets when the part is all GSM-7
(an extension character such as ``€`` or ``{`` counts two), 70 UTF-16 units
otherwise (an emoji counts two), the ``(1/3) `` marker included.  The parts a
message is cut into are then exactly the segments billed per recipient.  A
part's encoding depends only on its own characters: an emoji in the last
part does not make the first parts UCS-2.

Python strings hold code points, so an emoji is never cut in half; a hard
split of an over-long word also avoids cutting before a combining mark,
zero-width joiner or variation selector where it can.

Before anything else the text is normalised: CR LF and lone CR become LF,
every other control character (C0 except LF and TAB, DEL, C1) becomes a
space, because carriers refuse or mangle them and they are never what a chat
user meant to send.  Surrounding whitespace is stripped.  Whitespace inside a
part is kept as written; the whitespace at a split point is dropped.

``plan_message`` adds the optional smart replacement of typographic
characters and returns what a reply needs to say about the cost.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from . import gsm

__all__ = [
    "SMART_MODES",
    "MessageError",
    "MessagePlan",
    "describe_cost",
    "normalise_text",
    "plan_message",
    "show_characters",
    "split_message",
]

#: The values of the SMART_CHARACTERS setting.
SMART_MODES = ("replace", "keep")
#: Forcing characters named in a reply before "and N more".
SHOWN_CHARACTERS = 5

_NEWLINES = re.compile(r"\r\n?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WORDS = re.compile(r"\S+")
_JOINERS = frozenset("\u200d\u034f") | frozenset(chr(c) for c in range(0xFE00, 0xFE10))


class MessageError(ValueError):
    """The message cannot be sent: empty, or too long for the parts allowed.

    ``needed`` is the number of parts the message would need (``None`` when
    it is empty or no part can hold anything), ``forcers`` the characters
    that made it UCS-2.
    """

    def __init__(
        self, message: str, *, needed: int | None = None, forcers: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.needed = needed
        self.forcers = tuple(forcers)


@dataclass(frozen=True)
class MessagePlan:
    """How a message goes out: its final text, parts, encoding and billed segments.

    ``encoding`` is ``"UCS-2"`` when any part is UCS-2; ``forcers`` are the
    characters that made it so (in order of appearance); ``segments`` is the
    number billed per recipient (one per part); ``replaced`` tells whether
    smart replacement changed the text.
    """

    text: str
    parts: tuple[str, ...]
    encoding: str
    part_encodings: tuple[str, ...]
    segments: int
    forcers: tuple[str, ...]
    replaced: bool

    def billed(self, recipients: int) -> int:
        """Segments billed for ``recipients`` recipients."""
        return self.segments * recipients


def normalise_text(text: str) -> str:
    """Apply the newline/control-character rules above and strip blanks."""
    text = _NEWLINES.sub("\n", text)
    return _CONTROLS.sub(" ", text).strip()


def show_characters(chars: Sequence[str], limit: int = SHOWN_CHARACTERS) -> str:
    """``'“', '😀'`` for a reply; invisible characters as ``U+00A0``."""
    shown = [_show(ch) for ch in chars[:limit]]
    more = len(chars) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _show(ch: str) -> str:
    if ch.isprintable() and unicodedata.category(ch)[0] not in "ZCM":
        return f"'{ch}'"
    return f"U+{ord(ch):04X}"


class _Costs:
    """Prefix sums of septets, UTF-16 units and non-GSM characters of a text."""

    def __init__(self, text: str, limit: int) -> None:
        self.gsm_room = min(limit, gsm.GSM_SINGLE)
        self.ucs2_room = min(limit, gsm.UCS2_SINGLE)
        self.septets, self.units, self.foreign = [0], [0], [0]
        for ch in text:
            self.septets.append(self.septets[-1] + (2 if ch in gsm.GSM_EXTENSION else 1))
            self.units.append(self.units[-1] + (2 if ord(ch) > 0xFFFF else 1))
            self.foreign.append(self.foreign[-1] + (not gsm.is_gsm7(ch)))

    def fits(self, start: int, end: int, marker: int) -> bool:
        """Whether ``text[start:end]`` after a marker of ``marker`` characters is one segment."""
        if self.foreign[end] == self.foreign[start]:
            return self.septets[end] - self.septets[start] + marker <= self.gsm_room
        return self.units[end] - self.units[start] + marker <= self.ucs2_room


def _marker(index: int, total: int) -> str:
    return f"({index}/{total}) "


def _cut(text: str, costs: _Costs, start: int, stop: int, marker: int) -> int | None:
    """End index for a hard split of ``text[start:stop]``; ``None`` if nothing fits."""
    if not costs.fits(start, start + 1, marker):
        return None
    low, high = start + 1, stop - 1  # the whole word does not fit
    while low < high:
        middle = (low + high + 1) // 2
        if costs.fits(start, middle, marker):
            low = middle
        else:
            high = middle - 1
    end = back = low
    while back > start + 1 and (
        text[back] in _JOINERS or unicodedata.combining(text[back]) or text[back - 1] in _JOINERS
    ):
        back -= 1
    return back if back > start + 1 else end


def _pack(text: str, costs: _Costs, total: int) -> list[tuple[int, int]] | None:
    """Greedy packing assuming ``total`` parts; spans of ``text`` per part.

    Returns ``None`` when a marker leaves no room for even one character.
    """
    spans: list[tuple[int, int]] = []
    words = [(m.start(), m.end()) for m in _WORDS.finditer(text)]
    i = 0
    pos: int | None = None  # start of the unplaced rest of words[i]
    while i < len(words):
        marker = len(_marker(len(spans) + 1, max(total, len(spans) + 1)))
        start = words[i][0] if pos is None else pos
        end = start
        while i < len(words):
            if costs.fits(start, words[i][1], marker):
                end, pos, i = words[i][1], None, i + 1
                continue
            if end == start:  # nothing placed yet: the word alone is too long
                cut = _cut(text, costs, start, words[i][1], marker)
                if cut is None:
                    return None
                end = pos = cut
            break
        spans.append((start, end))
    return spans


def _too_many(text: str, needed: int, max_parts: int, costs: _Costs) -> MessageError:
    forcers = gsm.ucs2_forcers(text)
    if not forcers:
        message = f"message needs {needed} parts of {costs.gsm_room} characters"
    else:
        message = (
            f"message needs {needed} parts of {costs.ucs2_room} characters"
            f" (UCS-2 because of {show_characters(forcers)})"
        )
    return MessageError(f"{message}; the limit is {max_parts}", needed=needed, forcers=forcers)


def _split_clean(text: str, max_parts: int, limit: int) -> list[str]:
    """Split already normalised, non-empty ``text``."""
    costs = _Costs(text, limit)
    if costs.fits(0, len(text), 0):
        return [text]
    # More parts mean wider markers and so less room: the count only grows,
    # so iterate from 2 up to the fixed point.
    total = 2
    while True:
        spans = _pack(text, costs, total)
        if spans is None:
            raise MessageError(
                f"message is too long for parts of {limit} characters; the limit is {max_parts}",
                forcers=gsm.ucs2_forcers(text),
            )
        if len(spans) <= total:
            break
        total = len(spans)
    if len(spans) > max_parts:
        raise _too_many(text, len(spans), max_parts, costs)
    return [_marker(n, len(spans)) + text[a:b] for n, (a, b) in enumerate(spans, 1)]


def _check_arguments(max_parts: int, limit: int) -> None:
    if max_parts < 1 or limit < 1:
        raise ValueError("max_parts and limit must be at least 1")


def split_message(text: str, max_parts: int = 4, limit: int = 160) -> list[str]:
    """Split ``text`` into at most ``max_parts`` parts of one SMS segment each.

    A part holds at most ``limit`` septets if it is all GSM-7 and at most
    ``min(limit, 70)`` UTF-16 units otherwise, never more than one segment
    (160 septets).  Text that fits in one part comes back alone and without
    a marker.  Longer text is split at whitespace (an over-long word is cut)
    and every part starts with a ``(i/n) `` marker counted within the part.
    Raises ``MessageError`` for empty text or when more than ``max_parts``
    parts would be needed (naming the characters that forced UCS-2).
    """
    _check_arguments(max_parts, limit)
    text = normalise_text(text)
    if not text:
        raise MessageError("message is empty")
    return _split_clean(text, max_parts, limit)


def plan_message(
    text: str, *, max_parts: int = 4, smart: str = "replace", limit: int = 160
) -> MessagePlan:
    """Normalise, optionally smart-replace, and split ``text``; see ``MessagePlan``.

    ``smart`` is ``"replace"`` (typographic characters become GSM-7 when that
    makes the whole text GSM-7, see ``gsm.smart_replace``) or ``"keep"``.
    Raises ``MessageError`` like ``split_message`` and ``ValueError`` for a
    bad ``smart`` mode.
    """
    if smart not in SMART_MODES:
        raise ValueError(f"smart must be one of {', '.join(SMART_MODES)}, not {smart!r}")
    _check_arguments(max_parts, limit)
    clean = normalise_text(text)
    if 0 < len(clean) <= min(limit, gsm.GSM_SINGLE) and gsm.GSM_BASIC.issuperset(clean):
        # The usual page: one part of the basic GSM-7 alphabet, which smart replacement
        # leaves alone; what the general path below would make of it, without its
        # per-character cost tables.
        return MessagePlan(clean, (clean,), gsm.GSM7, (gsm.GSM7,), 1, (), False)
    final = normalise_text(gsm.smart_replace(clean)) if smart == "replace" else clean
    if not final:
        raise MessageError("message is empty")
    parts = _split_clean(final, max_parts, limit)
    encodings = tuple(gsm.encoding_of(part) for part in parts)
    forcers = tuple(gsm.ucs2_forcers(final))
    return MessagePlan(
        text=final,
        parts=tuple(parts),
        encoding=gsm.UCS2 if forcers else gsm.GSM7,
        part_encodings=encodings,
        segments=len(parts),
        forcers=forcers,
        replaced=final != clean,
    )


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def describe_cost(plan: MessagePlan, recipients: int) -> str | None:
    """The reply fragment on cost when more than one segment is billed, else ``None``.

    ``2 parts, 2 segments x 3 recipients = 6 billed (UCS-2 because of '“', '😀')``
    """
    if recipients < 0:
        raise ValueError("recipients must not be negative")
    billed = plan.billed(recipients)
    if billed <= 1:
        return None
    text = (
        f"{_count(len(plan.parts), 'part')}, {_count(plan.segments, 'segment')}"
        f" x {_count(recipients, 'recipient')} = {billed} billed"
    )
    if plan.forcers:
        text += f" (UCS-2 because of {show_characters(plan.forcers)})"
    return text
