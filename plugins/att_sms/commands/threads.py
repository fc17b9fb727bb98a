"""SMS conversations as Slack threads, at the plugin's edge: commands, follow-ups, page posts.

``!sms send``/``page``/``reply`` typed in a channel start or continue a conversation with
each recipient there: the bot's answer is the thread's root (typed inside a thread, that
thread is the conversation's). Sends made meanwhile (a page's first step too) are collected
per command and joined to the thread once its root is known. Follow-ups and page posts go to
the thread of their send or page. Off on backends without threads and with
``CONVERSATION_WINDOW`` 0: everything is posted as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from att_sms.chat.chat_posting import PostFailed, post_confirmed
from att_sms.chat.conversation_posting import (
    ConversationPoster,
    ThreadReply,
    threads_enabled,
)
from att_sms.chat.conversations import FOLLOW_UP, PAGE_ACK, PAGE_STEP, page_link, send_link
from att_sms.sending.parts import SENT, SendReport
from att_sms.sending.pipeline import SendRequest
from att_sms.store import FollowUp, PagePost
from att_sms.text.numbers import canonical_sender

from .runtime import Runtime

log = logging.getLogger("errbot.plugins.AttSms")


@dataclass
class _Collected:
    """What one command sent: numbers, message ids, pages (joined to the thread afterwards)."""

    numbers: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    page_ids: list[str] = field(default_factory=list)


def slack_thread_of(msg: Any) -> str | None:
    """The thread a Slack message was typed in (None: top level, or not Slack)."""
    extras = getattr(msg, "extras", None)
    event = extras.get("slack_event") if isinstance(extras, dict) else None
    thread = event.get("thread_ts") if isinstance(event, dict) else None
    return str(thread) if thread else None


def _typed_in_slack_channel(msg: Any) -> bool:
    extras = getattr(msg, "extras", None)
    return (
        bool(getattr(msg, "is_group", False))
        and isinstance(extras, dict)
        and "slack_event" in extras
    )


class ConversationThreads:
    """Conversations as threads for commands, follow-ups and page posts.

    ``holder`` is this bot's thread-claim id (``poster_id`` of its data directory). The sends
    of a command typed in a Slack channel are collected per thread (a ``threading.local``)
    while it runs.
    """

    def __init__(self, rt: Runtime, *, holder: str) -> None:
        self._rt = rt
        self._holder = holder
        self._command_sends = threading.local()

    def enabled(self) -> bool:
        """Conversations as threads on this chat and configuration."""
        return threads_enabled(self._rt.bot, self._rt.settings)

    def poster(self) -> ConversationPoster:
        """The conversations' poster over this activation."""
        rt = self._rt
        return ConversationPoster(rt.bot, rt.store, rt.settings, self._holder)

    # ----------------------------------------------------------------- commands

    def in_conversation(self, msg: Any, run: Callable[[], str]) -> str | None:
        """Run a sending command typed in a Slack channel; its answer is the conversation's
        root (or it is answered in the thread it was typed in). None: already posted."""
        if not self.enabled() or not _typed_in_slack_channel(msg):
            return run()
        local = self._command_sends
        collected = local.collected = _Collected()
        try:
            reply = run()
        finally:
            local.collected = None
        if not collected.numbers and not collected.page_ids:
            return reply
        try:
            return self._join_command(msg, reply, collected)
        except Exception:  # the send is done: never lose its answer
            log.exception("AttSms could not make a conversation thread of a command's answer")
            return reply

    def _join_command(self, msg: Any, reply: str, collected: _Collected) -> str | None:
        poster = self.poster()
        thread = slack_thread_of(msg)
        answer: str | None = reply
        try:
            room = poster.room_of(msg.to)
            if thread is None:
                thread = poster.post_root(msg.to, reply)
                answer = None  # posted: errbot posts nothing more
        except PostFailed as exc:
            log.warning("AttSms answer not posted as a thread's root: %s", exc)
            return reply
        if thread:
            poster.join(room, thread, collected.numbers, collected.message_ids, collected.page_ids)
        return answer

    def on_sent(self, request: SendRequest, report: SendReport) -> None:
        """A send went out (a command's, a page step's): it joins its conversation's thread.
        The send pipeline's ``on_sent``."""
        if not self.enabled() or report is None:
            return
        try:
            numbers = report.addresses(SENT)
            message_ids = list(report.message_ids)
            page_id = request.page_id
            collected: _Collected | None = getattr(self._command_sends, "collected", None)
            if collected is not None:
                collected.numbers += numbers
                collected.message_ids += message_ids
                if page_id:
                    collected.page_ids.append(page_id)
                return
            poster = self.poster()
            linked = poster.page_thread(page_id) if page_id else None
            if linked is not None and numbers:
                poster.join(linked[0], linked[1], numbers, message_ids)
        except Exception:  # never fail a send for its thread
            log.exception("AttSms could not link a send to its conversation")

    def reply_in_thread(self, msg: Any, args: str) -> ThreadReply | None:
        """``!sms reply <text>`` typed in a conversation's thread: the number it answers.

        None when the command is not in such a thread, or when its first word is a handle
        (``#r7``, or ``r7`` of a message of this thread's number): the handle form applies.
        """
        thread = slack_thread_of(msg)
        if thread is None or not self.enabled():
            return None
        if not _typed_in_slack_channel(msg):
            return None
        poster = self.poster()
        try:
            room = poster.room_of(msg.to)
        except PostFailed:
            return None
        numbers = poster.numbers_in_thread(room, thread)
        if not numbers:
            return None
        first = (args or "").strip().split(None, 1)[0] if (args or "").strip() else ""
        if first.startswith("#"):
            return None
        origin = self._rt.store.origin_of(first) if first else None
        if origin is not None:
            if canonical_sender(origin.sender_address, self._rt.settings.default_region) in numbers:
                return None
        return poster.reply_target(room, thread)

    # ----------------------------------------------------------------- follow-ups, page posts

    def post_follow_up(self, task: FollowUp, text: str) -> None:
        """A follow-up's post, in its send's thread when it has one. Raises ``PostFailed``."""
        identifier = self._rt.build_identifier(task.target)
        settings = self._rt.settings
        if not self.enabled():
            post_confirmed(self._rt.bot, identifier, text)
            return
        self.poster().post_linked(
            identifier, text, send_link(task.message_id),
            broadcast=FOLLOW_UP in settings.thread_broadcast,
        )  # fmt: skip

    def post_page_text(self, identifier: Any, post: PagePost) -> None:
        """A page's room post, in the page's thread when it has one. Raises ``PostFailed``."""
        settings = self._rt.settings
        if not self.enabled():
            post_confirmed(self._rt.bot, identifier, post.text)
            return
        poster = self.poster()
        kinds = settings.thread_broadcast
        broadcast = PAGE_STEP in kinds or (
            PAGE_ACK in kinds and poster.is_page_ack(post.page_id, post.text)
        )
        poster.post_linked(identifier, post.text, page_link(post.page_id), broadcast=broadcast)

    def mark_page_ack(self, page_id: str, room: str, text: str) -> None:
        """``text`` (queued for the page's room) acknowledges the page: THREAD_BROADCAST."""
        if not self.enabled():
            return
        try:
            self.poster().mark_page_ack(page_id, room, text)
        except Exception:  # a mark only decides whether the post is shown in the channel
            log.exception("AttSms could not mark the acknowledgement of page %s", page_id)
