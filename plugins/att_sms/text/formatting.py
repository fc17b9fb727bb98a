"""Make untrusted inbound SMS text inert, and format an inbound post.

Anyone who knows the number can send us text, and that text is posted into
a chat room, so ``neutralise`` makes sure it can only ever show up as text:

* Mentions cannot notify: a WORD JOINER (U+2060, invisible) follows every
  ``@`` (``@channel``, ``@here``, ``@everyone``, ``@all``, ``@alice``), and
  ``<``/``>`` become fullwidth ``＜``/``＞``, so Slack control sequences
  (``<!channel>``, ``<!subteam^ID>``, ``<@U123>``, ``<#C123>``,
  ``<http://x|label>``), HTML tags and ``>`` quotes cannot form.  An HTML
  entity-like ``&lt;`` also gets a word joiner after its ``&``.
* Nothing hides or reorders: TAB becomes a space, other C0, DEL and C1 controls become a
  visible U+FFFD; bidi embeddings, overrides, isolates and marks (U+200E, U+200F, U+061C),
  zero-width and other invisible characters (U+200B, U+FEFF, U+180E, U+2060-U+2064, soft
  hyphen, Hangul fillers...) and Unicode tag characters (U+E0000-U+E007F, "ASCII
  smuggling") are removed.  Two exceptions keep emoji and scripts intact: a ZWJ/ZWNJ
  (U+200D/U+200C) between two non-ASCII letters, marks or symbols (family emoji, Persian,
  Indic scripts), and the short tag sequence of a subdivision flag after U+1F3F4.
* The text stays on one chat line: line breaks of every kind (LF, CR, CR LF,
  VT, FF, NEL, U+2028, U+2029...) fold into `` ⏎ ``, blank lines dropped.
* Markup shows literally, through errbot's Markdown conversion (which every backend runs)
  and through Slack's own mrkdwn after it: ``\\ [ ] |`` get a backslash, as do a ``(``
  right after ``]`` (so no ``[text](url)`` link forms, not even by slackv3's link
  pre-processor that runs before Markdown escapes), and a heading ``#`` or a list's ``-``,
  ``+`` or ``1.`` at the very start.  Slack
  has no escape for its inline markers, so ``* _ ` ~`` become look-alikes (``∗ ˍ ˋ ∼``:
  U+2217, U+02CD, U+02CB, U+223C), and a leading ``＞`` (a quote in Slack too) gets a
  soft hyphen before it.
* Long text is cut to ``max_length`` visible characters (default 1000)
  followed by ``… [N more characters]``.  Escapes are added after the cut,
  so the result is at most ``2 * max_length + 40`` characters long.

``echo`` does the same for a user's own input quoted back in an error reply, cut to one
short line.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from att_sms.text.numbers import display_number

__all__ = ["DEFAULT_MAX_LENGTH", "echo", "format_inbound", "neutralise"]

DEFAULT_MAX_LENGTH = 1000
_NEWLINE_FOLD = " \u23ce "
_WORD_JOINER = "\u2060"
_SOFT_HYPHEN = "\u00ad"
_REPLACEMENT = "\ufffd"

_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_INVISIBLE = re.compile(
    "[\u00ad\u115f\u1160\u180e\u200b\u2060-\u2064\u206a-\u206f\u3164\ufeff\uffa0"
    "\ufff9-\ufffb\U0001d173-\U0001d17a]"
)
_JOINER = re.compile("[\u200c\u200d]")
_TAG_RUN = re.compile("(\U0001f3f4?)([\U000e0000-\U000e007f]+)")
_FLAG_TAGS = re.compile("[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_MARKUP = re.compile(r"([\\\[\]|])")
#: What makes a Markdown heading or list of a line's start: its last character gets a backslash.
_BLOCK_START = re.compile(r"#|[-+](?=\s)|\d+\.(?=\s)")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_LOOKALIKE = str.maketrans(
    {
        "<": "\uff1c",
        ">": "\uff1e",
        "*": "\u2217",
        "_": "\u02cd",
        "`": "\u02cb",
        "~": "\u223c",
    }
)


def _keep_flag_tags(match: re.Match[str]) -> str:
    flag, tags = match.groups()
    if flag and _FLAG_TAGS.fullmatch(tags):
        return match.group(0)
    return flag


def _joinable(char: str) -> bool:
    return ord(char) > 0x7F and unicodedata.category(char)[0] in "LMNS"


def _keep_joiner(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    if 0 < start and end < len(text) and _joinable(text[start - 1]) and _joinable(text[end]):
        return match.group(0)
    return ""


def _strip_invisible(text: str) -> str:
    text = _BIDI.sub("", text)
    text = _INVISIBLE.sub("", text)
    text = _TAG_RUN.sub(_keep_flag_tags, text)
    return _JOINER.sub(_keep_joiner, text)


def _one_line(text: str) -> str:
    lines = (line.strip() for line in text.splitlines())
    return _NEWLINE_FOLD.join(line for line in lines if line)


def _clean(text: object) -> str:
    """Plain one-line text: nothing invisible, no line breaks, controls made visible."""
    text = _strip_invisible(text if isinstance(text, str) else str(text))
    text = _one_line(text).replace("\t", " ")
    return _CONTROL.sub(_REPLACEMENT, text)


def _cut(text: str, size: int) -> str:
    """The first ``size`` characters; a joiner or flag tags left dangling by the cut go."""
    return _strip_invisible(text[:size]).rstrip()


def _escape(text: str) -> str:
    """Markup, mentions and entities of clean text made inert."""
    text = _MARKUP.sub(r"\\\1", text).replace("](", "]\\(")
    block = _BLOCK_START.match(text)
    if block:
        text = f"{text[: block.end() - 1]}\\{text[block.end() - 1 :]}"
    text = text.translate(_LOOKALIKE)
    if text.startswith("\uff1e"):
        text = _SOFT_HYPHEN + text
    text = text.replace("@", "@" + _WORD_JOINER)
    return _ENTITY.sub("&" + _WORD_JOINER, text)


def neutralise(text: str, *, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Return ``text`` made inert for chat: no mentions, controls, newlines or markup."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    text = _clean(text)
    suffix = ""
    if len(text) > max_length:
        cut = _cut(text, max_length)
        suffix = f"\u2026 [{len(text) - len(cut)} more characters]"
        text = cut
    return _escape(text) + suffix


def echo(text: str, limit: int = 60) -> str:
    """User input quoted back in an error reply: inert like ``neutralise``, one short line.

    At most ``limit`` visible characters, a cut marked with ``…``. Quote the result
    yourself (not with ``!r``: repr would spell out the invisible word joiners).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    text = _clean(text)
    if len(text) > limit:
        text = _cut(text, limit - 1) + "\u2026"
    return _escape(text)


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
