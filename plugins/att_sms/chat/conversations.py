"""Where a post of an SMS conversation goes on a chat with threads (plain logic, no errbot).

A conversation is (room, number). It lives in one thread while it is active: a message
either way within ``CONVERSATION_WINDOW`` seconds of the last one. Otherwise the next post
starts a new conversation (it is the thread's root). ``THREAD_BROADCAST`` names the kinds of
thread replies that are shown in the channel too (Slack's ``reply_broadcast``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

#: Kinds of thread replies ``THREAD_BROADCAST`` may name.
FIRST_REPLY = "first_reply"  # the person's first SMS in a conversation the bot started
EVERY_REPLY = "every_reply"  # every inbound SMS posted in a thread
PAGE_ACK = "page_ack"  # a page's acknowledgement
PAGE_STEP = "page_step"  # a page's other step posts
FOLLOW_UP = "follow_up"  # delivery follow-ups
BROADCAST_KINDS = (FIRST_REPLY, EVERY_REPLY, PAGE_ACK, PAGE_STEP, FOLLOW_UP)
DEFAULT_THREAD_BROADCAST = (FIRST_REPLY, PAGE_ACK)

#: Slack's answers for a thread it no longer has (root deleted) or a channel that takes no
#: posts (archived): the conversation starts anew once posting works again.
THREAD_GONE_CODES = frozenset({"thread_not_found", "message_not_found", "is_archived"})

T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """Where one post goes: in ``thread_ts`` (None: it is a new thread's root)."""

    thread_ts: str | None
    broadcast: bool = False

    @property
    def root(self) -> bool:
        return self.thread_ts is None


def inbound_placement(
    thread_ts: str | None, replies: int, broadcast: frozenset[str] | set[str]
) -> Placement:
    """An inbound SMS: into the active conversation's thread, else the root of a new one.

    ``replies`` is how many of the person's SMS the thread already holds: 0 means the
    conversation was started by the bot (a send or page) and this is the first answer.
    """
    if thread_ts is None:
        return Placement(None)
    shown = EVERY_REPLY in broadcast or (FIRST_REPLY in broadcast and replies == 0)
    return Placement(thread_ts, shown)


def reply_broadcast(kind: str, broadcast: frozenset[str] | set[str]) -> bool:
    """Whether a thread reply of ``kind`` (PAGE_ACK, PAGE_STEP, FOLLOW_UP) is shown in the channel."""
    return kind in broadcast


def thread_gone(code: str) -> bool:
    """True when Slack's error ``code`` means the thread can no longer take posts."""
    return code in THREAD_GONE_CODES


def group_by_number(
    messages: Sequence[T], number_of: Callable[[T], str]
) -> list[tuple[str, list[T]]]:
    """Messages per number, numbers in the order of their first message, each in order."""
    groups: dict[str, list[T]] = {}
    for message in messages:
        groups.setdefault(number_of(message), []).append(message)
    return list(groups.items())


def send_link(message_id: str) -> str:
    """The link key of a sent message (its follow-up posts in the send's thread)."""
    return f"send:{message_id}"


def page_link(page_id: str) -> str:
    """The link key of a page (its step posts in the page's thread)."""
    return f"page:{page_id}"


def ack_mark(page_id: str, text: str) -> str:
    """The key marking a page post as the page's acknowledgement (shown in the channel)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"ack:{page_id}:{digest}"


def pick_reply_number(
    numbers: Iterable[str],
) -> tuple[str | None, str | None]:
    """``(number, problem)`` for ``!sms reply <text>`` in a thread: its one number, or why not."""
    found = list(dict.fromkeys(numbers))
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, "this thread is not an SMS conversation"
    return None, (
        f"this thread is a conversation with {len(found)} numbers; "
        "use !sms reply <handle> <text> or !sms send"
    )
