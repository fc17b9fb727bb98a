"""Make untrusted inbound SMS text inert, and format an inbound post.

Anyone who knows the number can send us text, and that text is posted into
a chat room, so ``neutralise`` makes sure it can only ever show up as text:

* Mentions cannot notify: a WORD JOINER (U+2060, invisible) follows every
  ``@`` (``@channel``, ``@here``, ``@everyone``, ``@all``, ``@alice``), and
  ``<``/``>`` become fullwidth ``＜``/``＞``, so Slack control sequences
  (``<!channel>``, ``<!subteam^ID>``, ``<@U123>``, ``<#C123>``,
  ``<http://x|label>``), HTML tags and ``>`` quotes cannot form.  An HTML
  entity-like ``&lt;`` also gets a word joiner after its ``&``.
* Control characters cannot hide or reorder anything: TAB becomes a space,
  other C0, DEL and C1 controls become a visible U+FFFD, bidi embeddings/overrides/isolates
  (U+202A-U+202E, U+2066-U+2069) are removed.
* The text stays on one chat line: line breaks of every kind (LF, CR, CR LF,
  VT, FF, NEL, U+2028, U+2029...) fold into `` ⏎ ``, blank lines dropped.
* Markup shows literally: ``\\ * _ ` ~ [ ] |`` get a backslash, and so does a
  ``#`` at the very start (a heading in markdown chats).
* Long text is cut to ``max_length`` visible characters (default 1000)
  followed by ``… [N more characters]``.  Escapes are added after the cut,
  so the result is at most ``2 * max_length + 40`` characters long.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from att_sms.numbers import display_number

__all__ = ["DEFAULT_MAX_LENGTH", "format_inbound", "neutralise"]

DEFAULT_MAX_LENGTH = 1000
_NEWLINE_FOLD = " \u23ce "
_WORD_JOINER = "\u2060"
_REPLACEMENT = "\ufffd"

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_MARKUP = re.compile(r"([\\*_`~\[\]|])")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_FULLWIDTH = str.maketrans({"<": "\uff1c", ">": "\uff1e"})


def _one_line(text: str) -> str:
    lines = (line.strip() for line in text.splitlines())
    return _NEWLINE_FOLD.join(line for line in lines if line)


def neutralise(text: str, *, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Return ``text`` made inert for chat: no mentions, controls, newlines or markup."""
    if not isinstance(text, str):
        text = str(text)
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    text = _BIDI.sub("", text)
    text = _one_line(text).replace("\t", " ")
    text = _CONTROL.sub(_REPLACEMENT, text)
    suffix = ""
    if len(text) > max_length:
        cut = text[:max_length].rstrip()
        suffix = f"\u2026 [{len(text) - len(cut)} more characters]"
        text = cut
    text = _MARKUP.sub(r"\\\1", text)
    if text.startswith("#"):
        text = "\\" + text
    text = text.translate(_FULLWIDTH)
    text = text.replace("@", "@" + _WORD_JOINER)
    text = _ENTITY.sub("&" + _WORD_JOINER, text)
    return text + suffix


def _when(when: str) -> str:
    """RFC 3339 time shown in UTC as ``2026-04-19 10:00 UTC``; raw if unparsable."""
    text = when.strip()
    try:
        if not _RFC3339.fullmatch(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError):
        return neutralise(when, max_length=40)


def _sender(sender: str) -> str:
    shown = display_number(sender)
    if shown == sender and shown[:4].lower() == "tel:":
        shown = shown[4:]
    return neutralise(shown, max_length=40) or "unknown sender"


def format_inbound(
    sender: str,
    when: str | None,
    text: str,
    *,
    name: str | None = None,
    handle: str | None = None,
) -> str:
    """One chat line for an inbound SMS, every untrusted part neutralised.

    ``SMS from +1 212-555-9876 (Alice) at 2026-04-19 10:00 UTC [#a1b2]: Reply text``;
    the name, time and handle are left out when ``None`` or blank.
    """
    line = "SMS from " + _sender(sender)
    if name is not None and name.strip():
        line += f" ({neutralise(name, max_length=60)})"
    if when is not None and when.strip():
        line += " at " + _when(when)
    if handle is not None and handle.strip().lstrip("#"):
        line += f" [#{neutralise(handle.strip().lstrip('#'), max_length=20)}]"
    body = neutralise(text)
    return f"{line}: {body or '(empty message)'}"
