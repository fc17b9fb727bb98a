"""GSM 03.38 (GSM-7) versus UCS-2: which encoding a text needs and what it costs.

A carrier sends a text in GSM-7 when every character is in the GSM 03.38
default alphabet or its extension table, and in UCS-2 (UTF-16) otherwise.
Extension characters (``{ } [ ] ~ \\ ^ | €`` and form feed) take two septets:
an escape and the character.  In UCS-2 a character outside the Basic
Multilingual Plane (most emoji) takes two UTF-16 code units.

One segment holds 160 septets (GSM-7) or 70 code units (UCS-2); a text longer
than that is concatenated into segments of 153 septets or 67 units (the rest
of each segment carries the concatenation header).  A character is never cut
across two segments: an escape pair or a surrogate pair that does not fit
moves to the next segment whole.

``smart_replace`` turns typographic punctuation and unusual spaces into their
GSM-7 equivalents, but only when that makes the whole text GSM-7: a text with
an emoji or in another script costs UCS-2 anyway and is left exactly as typed.
"""

from __future__ import annotations

__all__ = [
    "GSM7",
    "GSM_BASIC",
    "GSM_CONCATENATED",
    "GSM_EXTENSION",
    "GSM_SINGLE",
    "SMART_REPLACEMENTS",
    "UCS2",
    "UCS2_CONCATENATED",
    "UCS2_SINGLE",
    "char_units",
    "encoding_of",
    "is_gsm7",
    "segment_count",
    "single_segment_limit",
    "smart_replace",
    "text_units",
    "ucs2_forcers",
]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

GSM_SINGLE = 160
GSM_CONCATENATED = 153
UCS2_SINGLE = 70
UCS2_CONCATENATED = 67

#: The default alphabet in code order 0x00-0x7F, without 0x1B (the escape to
#: the extension table).  0x09 is the capital C with cedilla.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
#: The extension table: each costs two septets (escape + character).
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM_ALL = GSM_BASIC | GSM_EXTENSION

_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b\u2032\u2035\u2039\u203a`\u00b4"
_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_SPACES = "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"

#: What ``smart_replace`` substitutes; every key is outside GSM-7, every value inside.
SMART_REPLACEMENTS: dict[str, str] = {
    **dict.fromkeys(_SINGLE_QUOTES, "'"),
    **dict.fromkeys(_DOUBLE_QUOTES, '"'),
    **dict.fromkeys(_DASHES, "-"),
    **dict.fromkeys(_SPACES, " "),
    **dict.fromkeys(_INVISIBLE, ""),
    "\u2026": "...",
    "\u2028": "\n",
    "\u2029": "\n",
    "\u02c6": "^",
    "\u02dc": "~",
}
_SMART_TABLE = str.maketrans(SMART_REPLACEMENTS)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet or its extension."""
    return all(ch in _GSM_ALL for ch in text)


def encoding_of(text: str) -> str:
    """``"GSM-7"`` when the text can be sent in GSM-7, else ``"UCS-2"``."""
    return GSM7 if is_gsm7(text) else UCS2


def ucs2_forcers(text: str) -> list[str]:
    """The distinct characters outside GSM-7, in order of first appearance."""
    return list(dict.fromkeys(ch for ch in text if ch not in _GSM_ALL))


def char_units(ch: str, encoding: str) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one character takes.

    Raises ``ValueError`` for a character that GSM-7 cannot carry.
    """
    if encoding == GSM7:
        if ch in GSM_BASIC:
            return 1
        if ch in GSM_EXTENSION:
            return 2
        raise ValueError(f"{ch!r} is not a GSM-7 character")
    if encoding == UCS2:
        return 2 if ord(ch) > 0xFFFF else 1
    raise ValueError(f"unknown encoding {encoding!r}")


def text_units(text: str, encoding: str | None = None) -> int:
    """Length of ``text`` in septets or UTF-16 units (its own encoding by default)."""
    encoding = encoding or encoding_of(text)
    return sum(char_units(ch, encoding) for ch in text)


def single_segment_limit(encoding: str) -> int:
    """Units that fit in one unconcatenated segment: 160 septets or 70 UTF-16 units."""
    if encoding == GSM7:
        return GSM_SINGLE
    if encoding == UCS2:
        return UCS2_SINGLE
    raise ValueError(f"unknown encoding {encoding!r}")


def segment_count(text: str, encoding: str | None = None) -> int:
    """Segments the carrier bills for ``text`` sent as one (possibly concatenated) SMS.

    Empty text is one segment.  Concatenated segments hold 153 septets or 67
    units and never split an escape pair or a surrogate pair.
    """
    encoding = encoding or encoding_of(text)
    units = [char_units(ch, encoding) for ch in text]
    if sum(units) <= single_segment_limit(encoding):
        return 1
    room = GSM_CONCATENATED if encoding == GSM7 else UCS2_CONCATENATED
    segments, used = 1, 0
    for size in units:
        if used + size > room:
            segments, used = segments + 1, 0
        used += size
    return segments


def smart_replace(text: str) -> str:
    """``text`` with typographic characters made GSM-7, if that makes all of it GSM-7.

    Curly and angle quotes and primes become ``'`` or ``"``, dashes and the
    minus sign ``-``, the ellipsis ``...``, tabs and unusual spaces a space,
    line and paragraph separators a newline; soft hyphens and zero-width
    characters are dropped.  When anything else outside GSM-7 remains (an
    emoji, another script) the text comes back unchanged.
    """
    replaced = text.translate(_SMART_TABLE)
    return replaced if is_gsm7(replaced) else text
