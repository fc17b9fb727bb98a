"""Chat commands that send and look up SMS: send, reply, status and the audit log.

The send pipeline itself is ``att_sms.sending.pipeline.SendPipeline`` (a plain class); the
commands here turn a chat message into its typed ``SendRequest``.
"""

from __future__ import annotations

import logging
from typing import Any

from errbot import botcmd

from att_sms.carrier.errors import AttSmsError, NotFoundError
from att_sms.sending import audit
from att_sms.sending.pipeline import (
    AGAIN_FLAG,
    Context,
    NotActive,
    SendPipeline,
    SendRequest,
)
from att_sms.text.arguments import ArgumentError, single_word, split_recipients_and_text
from att_sms.text.formatting import echo
from att_sms.text.numbers import canonical_sender, display_number

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




class SendCommands:
    """Mixed into the AttSms plugin: ``!sms send``, ``!sms reply``, ``!sms status``, ``!sms log``."""

    def _context(self) -> Context:
        settings, client, rules, store = self._settings, self._client, self._rules, self._sms_store
        if settings is None or client is None or rules is None or store is None:
            raise NotActive
        return Context(settings, client, rules, store)

    @botcmd
    def sms_send(self, msg: Any, args: str) -> str:
        """[--again] <to>[,<to>...] <text>: send an SMS to numbers, contacts or groups.

        Recipients are comma-separated; a number with spaces goes in double quotes:
        !sms send oncall,+12125551234,"(212) 555-0199" db-1 is down
        The same text to the same people within DEDUP_WINDOW is not sent twice unless
        --again is given.
        """
        if self._settings is None:
            return self._not_configured()
        try:
            again, tokens, text = send_words(args)
        except ArgumentError as exc:
            return f"Not sent: {echo(str(exc), 300)}"
        return self._in_conversation(
            msg,
            lambda: self._guarded_send(
                self._send_request(msg, recipients=tuple(tokens), text=text, again=again)
            ),
        )

    @botcmd
    def sms_reply(self, msg: Any, args: str) -> str | None:
        """<handle> <text>: answer the sender of an inbound post (its handle, e.g. r7).

        On Slack, typed inside an SMS conversation's thread: !sms reply <text> answers it.
        """
        if self._settings is None:
            return self._not_configured()
        in_thread = self._reply_in_thread(msg, args)
        if in_thread is not None:
            return self._reply_to_thread(msg, args, in_thread)
        handle, _, text = (args or "").strip().partition(" ")
        text = text.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].strip()
        if not handle or not text:
            return "usage: !sms reply <handle> <text> (the handle is shown in each inbound post)"
        origin = self._sms_store.origin_of(handle) if self._sms_store else None
        if origin is None:
            return (
                f"Not sent: no inbound SMS with handle '{echo(handle, 20)}' "
                "(handles are shown in inbound posts)."
            )
        tel = canonical_sender(origin.sender_address, self._settings.default_region)
        if not tel.startswith("tel:+"):
            return (
                f"Not sent: the sender '{echo(origin.sender_address, 40)}' is not a phone number "
                "(an alphanumeric sender id or short code cannot be answered by SMS)."
            )
        return self._in_conversation(
            msg,
            lambda: self._guarded_send(
                self._send_request(
                    msg, addresses=(tel,), text=text, again=True,
                    sender=origin.destination_address,
                )
            ),
        )

    def _reply_to_thread(self, msg: Any, args: str, target: Any) -> str | None:
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
        return self._in_conversation(
            msg,
            lambda: self._guarded_send(
                self._send_request(
                    msg, addresses=(target.number,), text=text, again=True,
                    sender=target.from_address,
                )
            ),
        )  # fmt: skip

    def _send_request(self, msg: Any, **fields: Any) -> SendRequest:
        """The typed request of a send typed as ``msg``: who asks, where answers go."""
        return SendRequest(who=self._user_of(msg), where=self._reply_target(msg), **fields)

    def _guarded_send(self, request: SendRequest) -> str:
        """A command's send: the pipeline while the plugin is active; the one reply."""
        self._begin_command()
        try:
            delivery = self._send_pipeline(self._context()).deliver(request)
        except NotActive:
            return "Not sent: the plugin is being reconfigured; try again in a moment."
        finally:
            self._end_command()
        self.metrics.record_send(delivery.metric_label)
        return delivery.reply

    def _send_pipeline(self, ctx: Context) -> SendPipeline:
        """The send pipeline over ``ctx``; a send joins its conversation's thread."""
        return SendPipeline(ctx, on_sent=self._thread_send)

    @botcmd
    def sms_status(self, msg: Any, args: str) -> str:
        """<messageId>: the delivery state of each recipient of a sent SMS."""
        if self._settings is None:
            return self._not_configured()
        self._begin_command()
        try:
            message_id = single_word(args, "message id", "usage: !sms status <messageId>")
            infos = self._context().client.delivery_status(message_id)
        except ArgumentError as exc:
            return str(exc)
        except NotActive:
            return "Status not available: the plugin is being reconfigured; try again."
        except NotFoundError as exc:
            return f"No message '{echo(args.strip(), 60)}' at the carrier: {exc}"
        except AttSmsError as exc:
            return f"Status not available: {exc}"
        finally:
            self._end_command()
        if not infos:
            return f"Message {message_id}: the carrier reports no recipients yet."
        return f"Message {message_id}: " + "; ".join(
            status_line(info.address, info.status) for info in infos
        )

    @botcmd
    def sms_log(self, msg: Any, args: str) -> str:
        """[N]: the last N sends from the audit log (default 10)."""
        if self._settings is None:
            return self._not_configured()
        words = (args or "").split()
        try:
            count = int(words[0]) if words else 10
        except ValueError:
            return "usage: !sms log [N]"
        if len(words) > 1 or not 1 <= count <= 100:
            return "usage: !sms log [N] with N from 1 to 100"
        entries = self._sms_store.last_audit(count)
        if not entries:
            return "No sends recorded yet."
        return "\n".join(audit.format_entry(entry) for entry in entries)


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
