"""Posting SMS conversations as chat threads (Slack), with the chat's confirmation.

Plain code (no errbot import): it gets the chat backend, the store and the settings. The
rules of where a post goes are ``att_sms.chat.conversations``; the rows are
``store.conversations``. A new thread is claimed in the store before its root is posted, so
two posters never open two threads for one number. A post Slack refuses because the thread
or the channel can no longer take it forgets the thread (the next post starts a new
conversation) and stays pending, like any refused post.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from att_sms.inbound.posts import Post
from att_sms.settings import Settings
from att_sms.store import Store
from att_sms.store.conversations import BUSY, NEW

from .chat_posting import PostFailed, is_slack, post_confirmed, slack_channel_of
from .conversations import (
    Placement,
    ack_mark,
    inbound_placement,
    page_link,
    pick_reply_number,
    send_link,
    thread_gone,
)


def poster_id(data_dir: str) -> str:
    """Who holds a thread claim: this bot (host and data directory), the same after a restart,
    so that a claim left by a killed run is taken back at once instead of after it expires."""
    digest = hashlib.sha256(os.path.abspath(data_dir).encode("utf-8", "replace")).hexdigest()
    return f"{socket.gethostname()}:{digest[:12]}"


def threads_enabled(bot: Any, settings: Settings | None) -> bool:
    """Conversations as threads: on Slack, unless ``CONVERSATION_WINDOW`` is 0."""
    return settings is not None and settings.conversation_window > 0 and is_slack(bot)


@dataclass(frozen=True)
class ThreadReply:
    """Where ``!sms reply <text>`` typed in a thread goes: its number, from the number it wrote to."""

    number: str | None
    from_address: str | None = None
    problem: str | None = None


class ConversationPoster:
    """Posts of conversations on a chat with threads; ``room`` is the chat's channel id."""

    def __init__(self, bot: Any, store: Store, settings: Settings, holder: str) -> None:
        self._bot = bot
        self._store = store
        self._settings = settings
        self._holder = holder

    def room_of(self, identifier: Any) -> str:
        """The channel id of ``identifier`` (raises ``PostFailed`` when Slack does not know it)."""
        return slack_channel_of(self._bot, identifier)

    # ------------------------------------------------------------------ inbound SMS

    def post_inbound(
        self,
        identifier: Any,
        number: str,
        posts: Sequence[Post],
        *,
        from_address: str | None,
        posted: Callable[[Post], None],
    ) -> PostFailed | None:
        """Post one number's pending posts in its conversation; the first failure, or None.

        ``posted`` is called right after each post Slack took (mark it done there).
        """
        room = self.room_of(identifier)
        for post in posts:
            problem = self._post_inbound_one(identifier, room, number, post, from_address)
            if problem is not None:
                return problem
            posted(post)
        return None

    def _post_inbound_one(
        self, identifier: Any, room: str, number: str, post: Post, from_address: str | None
    ) -> PostFailed | None:
        settings, store = self._settings, self._store
        for _ in range(2):  # a thread found gone is retried once as a new root
            claim = store.claim_conversation(
                room, number, holder=self._holder, window=settings.conversation_window
            )
            if claim.kind == BUSY:
                return PostFailed(f"a thread for {number} is being opened by another poster")
            if claim.kind == NEW:
                placement = Placement(None)
            else:
                replies = claim.conversation.replies if claim.conversation else 0
                placement = inbound_placement(claim.thread_ts, replies, settings.thread_broadcast)
            try:
                ts = post_confirmed(
                    self._bot, identifier, post.text,
                    thread_ts=placement.thread_ts, reply_broadcast=placement.broadcast,
                )  # fmt: skip
            except PostFailed as exc:
                if claim.kind == NEW:
                    store.release_claim(room, number, self._holder)
                    return exc
                if placement.thread_ts and thread_gone(exc.code):
                    store.forget_thread(room, placement.thread_ts)
                    if exc.code != "is_archived":
                        continue
                return exc
            if claim.kind == NEW:
                if ts:
                    store.open_conversation(
                        room, number, ts, holder=self._holder, inbound_root=True,
                        from_address=from_address,
                    )  # fmt: skip
                else:
                    store.release_claim(room, number, self._holder)
            elif placement.thread_ts:
                store.note_inbound(room, number, placement.thread_ts, from_address=from_address)
            return None
        return PostFailed(f"the thread of {number} keeps disappearing")

    # ------------------------------------------------------------------ follow-ups, page posts

    def post_linked(self, identifier: Any, text: str, key: str, *, broadcast: bool) -> None:
        """Post ``text`` in the thread ``key`` is linked to (else in the room). Raises
        ``PostFailed``; a thread found gone is forgotten first (the retry goes to the room)."""
        linked = self._store.linked_thread(key)
        thread_ts = linked[1] if linked and linked[1] else None
        try:
            post_confirmed(
                self._bot, identifier, text, thread_ts=thread_ts, reply_broadcast=broadcast
            )
        except PostFailed as exc:
            if linked and thread_ts and thread_gone(exc.code):
                self._store.forget_thread(linked[0], thread_ts)
            raise

    def is_page_ack(self, page_id: str, text: str) -> bool:
        return self._store.linked_thread(ack_mark(page_id, text)) is not None

    def mark_page_ack(self, page_id: str, room: str, text: str) -> None:
        """The post ``text`` of page ``page_id`` is its acknowledgement (THREAD_BROADCAST)."""
        self._store.link_threads([ack_mark(page_id, text)], room, "")

    # ------------------------------------------------------------------ sends and pages

    def post_root(self, identifier: Any, text: str) -> str | None:
        """Post a command's answer as a new thread's root; its ts (raises ``PostFailed``)."""
        return post_confirmed(self._bot, identifier, text)

    def join(
        self,
        room: str,
        thread_ts: str,
        numbers: Iterable[str],
        message_ids: Iterable[str] = (),
        page_ids: Iterable[str] = (),
    ) -> None:
        """Sends to ``numbers`` (``message_ids``) and pages (``page_ids``) belong to
        ``thread_ts``: it is those numbers' conversation in ``room`` from now on."""
        keys = [send_link(m) for m in message_ids] + [page_link(p) for p in page_ids]
        if keys:
            self._store.link_threads(keys, room, thread_ts)
        for number in dict.fromkeys(numbers):
            self._store.continue_conversation(room, number, thread_ts)

    def page_thread(self, page_id: str) -> tuple[str, str] | None:
        """``(room, thread_ts)`` of a page, when it has one."""
        linked = self._store.linked_thread(page_link(page_id))
        return linked if linked and linked[1] else None

    def reply_target(self, room: str, thread_ts: str) -> ThreadReply:
        """The number ``!sms reply <text>`` typed in ``thread_ts`` answers."""
        found = self._store.conversations_in_thread(room, thread_ts)
        number, problem = pick_reply_number(c.number for c in found)
        if number is None:
            return ThreadReply(None, problem=problem)
        conversation = next(c for c in found if c.number == number)
        return ThreadReply(number, conversation.from_address)

    def numbers_in_thread(self, room: str, thread_ts: str) -> list[str]:
        return [c.number for c in self._store.conversations_in_thread(room, thread_ts)]
