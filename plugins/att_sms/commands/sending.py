"""Chat commands that send and look up SMS: send, reply, status and the audit log.

The send pipeline itself is ``att_sms.sending.pipeline.SendPipeline`` (a plain class); the
commands here turn a chat message into its typed ``SendRequest``. :class:`SendDesk` is also
how pages, alerts and rotation handoffs reach the pipeline (``pipeline()``).
"""

from __future__ import annotations

import logging
from typing import Any

from att_sms.carrier.errors import AttSmsError, NotFoundError
from att_sms.chat.conversation_posting import ThreadReply
from att_sms.sending import audit
from att_sms.sending.pipeline import AGAIN_FLAG, Delivery, SendPipeline, SendRequest
from att_sms.text.arguments import ArgumentError, single_word, split_recipients_and_text
from att_sms.text.formatting import echo
from att_sms.text.numbers import canonical_sender, display_number

from .runtime import Runtime, reply_target, user_of
from .threads import ConversationThreads

log = logging.getLogger("errbot.plugins.AttSms")

STATUS_WORDS = {
    "DeliveredToTerminal": "delivered to the phone",
    "DeliveredToNetwork": "with the network, not yet on the phone",
    "MessageWaiting": "waiting: the phone is not reachable yet",
    "DeliveryImpossible": "could not be delivered",
}


def status_line(address: str, status: str) -> str:
    """One recipient's delivery state, in words and by its API name."""
    return f"{display_number(address)}: {STATUS_WORDS.get(status, 'unknown state')} ({status})"


class SendDesk:
    """``!sms send``, ``!sms reply``, ``!sms status``, ``!sms log``; the send pipeline that
    pages, alerts and handoffs send through."""

    def __init__(self, rt: Runtime, threads: ConversationThreads) -> None:
        self._rt = rt
        self._threads = threads

    def pipeline(self) -> SendPipeline:
        """The send pipeline over this activation; a send joins its conversation's thread."""
        return SendPipeline(self._rt.context(), on_sent=self._threads.on_sent)

    def deliver(self, request: SendRequest) -> Delivery:
        """A command's send: the pipeline, counted in ``att_sms_sends_total``."""
        delivery = self.pipeline().deliver(request)
        self._rt.metrics.record_send(delivery.metric_label)
        return delivery

    def send(self, msg: Any, args: str) -> str | None:
        """``!sms send [--again] <to>[,<to>...] <text>``."""
        try:
            again, tokens, text = send_words(args)
        except ArgumentError as exc:
            return f"Not sent: {echo(str(exc), 300)}"
        request = _send_request(msg, recipients=tuple(tokens), text=text, again=again)
        return self._threads.in_conversation(msg, lambda: self.deliver(request).reply)

    def reply(self, msg: Any, args: str) -> str | None:
        """``!sms reply <handle> <text>``, or ``!sms reply <text>`` in a conversation's thread."""
        in_thread = self._threads.reply_in_thread(msg, args)
        if in_thread is not None:
            return self._reply_to_thread(msg, args, in_thread)
        handle, _, text = (args or "").strip().partition(" ")
        text = text.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].strip()
        if not handle or not text:
            return "usage: !sms reply <handle> <text> (the handle is shown in each inbound post)"
        origin = self._rt.store.origin_of(handle)
        if origin is None:
            return (
                f"Not sent: no inbound SMS with handle '{echo(handle, 20)}' "
                "(handles are shown in inbound posts)."
            )
        tel = canonical_sender(origin.sender_address, self._rt.settings.default_region)
        if not tel.startswith("tel:+"):
            return (
                f"Not sent: the sender '{echo(origin.sender_address, 40)}' is not a phone number "
                "(an alphanumeric sender id or short code cannot be answered by SMS)."
            )
        request = _send_request(
            msg, addresses=(tel,), text=text, again=True, sender=origin.destination_address
        )
        return self._threads.in_conversation(msg, lambda: self.deliver(request).reply)

    def _reply_to_thread(self, msg: Any, args: str, target: ThreadReply) -> str | None:
        """``!sms reply <text>`` typed in a conversation's thread: to that thread's number."""
        if target.number is None:
            return f"Not sent: {target.problem}."
        if not target.number.startswith("tel:+"):
            return (
                f"Not sent: the sender '{echo(target.number, 40)}' is not a phone number "
                "(an alphanumeric sender id or short code cannot be answered by SMS)."
            )
        text = (args or "").strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].strip()
        if not text:
            return "usage: !sms reply <text> (in a conversation's thread) or <handle> <text>"
        request = _send_request(
            msg, addresses=(target.number,), text=text, again=True, sender=target.from_address
        )
        return self._threads.in_conversation(msg, lambda: self.deliver(request).reply)

    def status(self, msg: Any, args: str) -> str:
        """``!sms status <messageId>``."""
        try:
            message_id = single_word(args, "message id", "usage: !sms status <messageId>")
            infos = self._rt.client.delivery_status(message_id)
        except ArgumentError as exc:
            return str(exc)
        except NotFoundError as exc:
            return f"No message '{echo(args.strip(), 60)}' at the carrier: {exc}"
        except AttSmsError as exc:
            return f"Status not available: {exc}"
        if not infos:
            return f"Message {message_id}: the carrier reports no recipients yet."
        return f"Message {message_id}: " + "; ".join(
            status_line(info.address, info.status) for info in infos
        )

    def log(self, msg: Any, args: str) -> str:
        """``!sms log [N]``."""
        words = (args or "").split()
        try:
            count = int(words[0]) if words else 10
        except ValueError:
            return "usage: !sms log [N]"
        if len(words) > 1 or not 1 <= count <= 100:
            return "usage: !sms log [N] with N from 1 to 100"
        entries = self._rt.store.last_audit(count)
        if not entries:
            return "No sends recorded yet."
        return "\n".join(audit.format_entry(entry) for entry in entries)


def _send_request(msg: Any, **fields: Any) -> SendRequest:
    """The typed request of a send typed as ``msg``: who asks, where answers go."""
    return SendRequest(who=user_of(msg), where=reply_target(msg), **fields)


def send_words(args: str) -> tuple[bool, list[str], str]:
    """``[--again] <to>[,<to>...] <text>`` as (again, recipients, text); ``ArgumentError``."""
    again, rest = take_flag(args, AGAIN_FLAG)
    tokens, text = split_recipients_and_text(rest)
    return again, tokens, text


def take_flag(args: str, flag: str) -> tuple[bool, str]:
    """``(True, rest)`` when ``args`` starts with ``flag``."""
    words = (args or "").strip().split(None, 1)
    if words and words[0].lower() == flag:
        return True, words[1] if len(words) > 1 else ""
    return False, args or ""
