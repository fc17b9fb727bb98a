"""What a Slack client makes of a chat.postMessage call: a conservative model for the tests.

It finds everything in a message's ``text`` that Slack would turn into something other than
plain characters, given the call's ``mrkdwn`` and ``link_names`` arguments:

* control sequences: any raw ``<…>`` (``<!channel>``, ``<!here>``, ``<!subteam^S…>``,
  ``<@U…>``, ``<#C…>``, ``<https://x|label>``); ``&lt;``/``&gt;`` are literal characters;
* with ``link_names``: ``@channel``, ``@here``, ``@everyone`` and ``@name`` mentions;
* with mrkdwn (Slack's default): ``*bold*``, ``_italic_``, ``~strike~``, `` `code` `` and
  ``>`` / ``&gt;`` quotes at the start of a line. Slack has no escape character, so a
  backslash before a marker does not stop it (the model counts ``\\*x\\*`` as bold).

``display`` is the text a reader sees once Slack decoded its three entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_CONTROL = re.compile(r"<([^<>]*)>")
_NAME_MENTION = re.compile(r"(?<![\w@])@(?=[A-Za-z0-9])[\w.\-]+")
_CODE = re.compile(r"`[^`\n]+`")
_QUOTE = re.compile(r"^(>|&gt;)", re.MULTILINE)


def _span(marker: str) -> re.Pattern[str]:
    m = re.escape(marker)
    return re.compile(rf"(?<![A-Za-z0-9]){m}(?=[^\s{m}])[^\n]*?(?<=\S){m}(?![A-Za-z0-9])")


_SPANS = {"bold": _span("*"), "italic": _span("_"), "strike": _span("~")}


@dataclass(frozen=True)
class Rendering:
    entities: tuple[str, ...]  # "<kind>: <source>" for each non-literal piece
    display: str


def render(text: str, *, mrkdwn: bool = True, link_names: bool = False) -> Rendering:
    entities: list[str] = []
    for match in _CONTROL.finditer(text):
        inner = match.group(1)
        if inner.startswith(("!", "@")):
            kind = "mention"
        elif inner.startswith("#"):
            kind = "channel link"
        elif "|" in inner:
            kind = "link with hidden target"
        else:
            kind = "link"
        entities.append(f"{kind}: {match.group(0)}")
    if link_names:
        entities += [f"mention: {m.group(0)}" for m in _NAME_MENTION.finditer(text)]
    if mrkdwn:
        entities += [f"code: {m.group(0)}" for m in _CODE.finditer(text)]
        entities += [f"quote: {m.group(0)}" for m in _QUOTE.finditer(text)]
        for kind, pattern in _SPANS.items():
            entities += [f"{kind}: {m.group(0)}" for m in pattern.finditer(text)]
    display = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return Rendering(tuple(entities), display)


def render_call(args: dict[str, Any]) -> Rendering:
    """``render`` with a chat.postMessage call's own arguments (Slack's defaults otherwise)."""
    return render(
        str(args.get("text", "")),
        mrkdwn=_flag(args.get("mrkdwn"), default=True),
        link_names=_flag(args.get("link_names"), default=False),
    )


def _flag(value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)
