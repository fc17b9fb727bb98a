"""Turning stored inbound messages into chat posts (one each, or combined when many)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from att_sms.store.inbound import StoredInbound
from att_sms.text.formatting import format_inbound

#: A combined post stays under this many characters (chat services cap message size); on a
#: chat with a smaller limit (errbot's ``message_size_limit``: 510 on IRC), under that one.
COMBINED_POST_CHARS = 3500
#: What a combined post's header line takes at most (``"99999 SMS replies:"`` and its newline).
HEADER_CHARS = len("99999 SMS replies:") + 1
#: The plugin's own note on an SMS (``(acknowledges page P7)``) starts a line of its own:
#: the sender's text, folded onto its one line after ``SMS from ...:``, can never start a
#: line, so nothing an SMS says can pass for the plugin's note, on any chat service.
NOTE_MARK = "\u21b3 "


@dataclass(frozen=True)
class Post:
    """One chat message and the ledger keys it carries."""

    text: str
    keys: tuple[str, ...]


def render_line(
    message: StoredInbound,
    name_of: Callable[[str], str | None] | None = None,
    handle_of: Callable[[StoredInbound], str | None] | None = None,
    note_of: Callable[[StoredInbound], str | None] | None = None,
) -> str:
    """The post of a single inbound SMS: one line, plus the plugin's own note on a line of
    its own (``NOTE_MARK``) if there is one."""
    line = format_inbound(
        message.sender_address,
        message.date_time,
        message.message,
        name=name_of(message.sender_address) if name_of else None,
        handle=handle_of(message) if handle_of else None,
    )
    note = note_of(message) if note_of else None
    return f"{line}\n{NOTE_MARK}({note})" if note else line


def build_posts(
    messages: Sequence[StoredInbound],
    *,
    combine_above: int,
    name_of: Callable[[str], str | None] | None = None,
    handle_of: Callable[[StoredInbound], str | None] | None = None,
    note_of: Callable[[StoredInbound], str | None] | None = None,
    max_chars: int = COMBINED_POST_CHARS,
) -> list[Post]:
    """One post per message, or, above ``combine_above`` messages, combined posts.

    Combining keeps a flood of replies within a chat service's rate limit: each combined
    post holds as many whole lines as fit in ``max_chars``, its header included, so that the
    chat never cuts one in the middle (errbot splits a longer message every
    ``message_size_limit`` characters, lines or not). A single line longer than that is
    posted alone.
    """
    lines = [(render_line(m, name_of, handle_of, note_of), m.key) for m in messages]
    if len(lines) <= combine_above:
        return [Post(text, (key,)) for text, key in lines]
    posts: list[Post] = []
    chunk: list[tuple[str, str]] = []
    size = HEADER_CHARS
    for text, key in lines:
        if chunk and size + len(text) + 1 > max_chars:
            posts.append(_combined(chunk))
            chunk, size = [], HEADER_CHARS
        chunk.append((text, key))
        size += len(text) + 1
    if chunk:
        posts.append(_combined(chunk))
    return posts


def _combined(chunk: list[tuple[str, str]]) -> Post:
    header = f"{len(chunk)} SMS replies:"
    return Post("\n".join([header, *(text for text, _ in chunk)]), tuple(k for _, k in chunk))
