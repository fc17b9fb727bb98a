"""Chat commands that send and look up SMS: send, reply, status and the audit log.

The send pipeline: resolve recipients -> drop opted-out numbers -> plan the parts (encoding
aware) -> refuse a duplicate -> reserve the quota -> send (``att_sms.sending``) -> settle the
quota with what was billed, audit and follow up, in one transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from errbot import botcmd

from . import audit, directory
from .arguments import ArgumentError, single_word, split_recipients_and_text
from .client import AttSmsClient
from .errors import AttSmsError, NotFoundError
from .formatting import echo
from .numbers import NumberError, NumberRules, canonical_sender, display_number
from .policy import QuotaError
from .sending import SendReport, send_parts
from .settings import Settings
from .splitting import MessageError, describe_cost, plan_message
from .store import FollowUp, Store

log = logging.getLogger("errbot.plugins.AttSms")

STATUS_WORDS = {
    "DeliveredToTerminal": "delivered to the phone",
    "DeliveredToNetwork": "with the network, not yet on the phone",
    "MessageWaiting": "waiting: the phone is not reachable yet",
    "DeliveryImpossible": "could not be delivered",
}
FOLLOW_UP_FIRST = 2.0  # first status check after a send; then doubling
AGAIN_FLAG = "--again"


class NotActive(Exception):
    """The plugin is being deactivated or reconfigured."""


@dataclass(frozen=True)
class Context:
    """What one command works with, taken once: a reconfiguration mid-command cannot swap it."""

    settings: Settings
    client: AttSmsClient
    rules: NumberRules
    store: Store


def status_line(address: str, status: str) -> str:
    """One recipient's delivery state, in words and by its API name."""
    return f"{display_number(address)}: {STATUS_WORDS.get(status, 'unknown state')} ({status})"


def dedup_key(addresses: list[str], text: str) -> str:
    """The same text to the same recipients, whatever their order."""
    blob = "\x1f".join(sorted(addresses)) + "\x1e" + text
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """What came of one send: the reply, and the carrier's report when it was attempted."""

    reply: str
    report: SendReport | None = None


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
        again, args = take_flag(args, AGAIN_FLAG)
        try:
            tokens, text = split_recipients_and_text(args)
        except ArgumentError as exc:
            return f"Not sent: {echo(str(exc), 300)}"
        return self._in_conversation(
            msg, lambda: self._guarded_page(msg, tokens=tokens, text=text, again=again)
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
            lambda: self._guarded_page(
                msg, addresses=[tel], text=text, again=True, sender=origin.destination_address
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
            lambda: self._guarded_page(
                msg, addresses=[target.number], text=text, again=True,
                sender=target.from_address,
            ),
        )  # fmt: skip

    def _guarded_page(self, msg: Any, **kwargs: Any) -> str:
        self._begin_command()
        try:
            return self._page(msg, self._context(), **kwargs)
        except NotActive:
            return "Not sent: the plugin is being reconfigured; try again in a moment."
        finally:
            self._end_command()

    def _page(self, msg: Any, ctx: Context, **kwargs: Any) -> str:
        """The send pipeline (see the module docstring). Returns the one reply."""
        delivery = self._deliver(msg, ctx, **kwargs)
        outcome = delivery.report.audit_outcome().split(":")[0] if delivery.report else "refused"
        self.metrics.record_send("refused" if outcome == "failed" else outcome)
        return delivery.reply

    def _deliver(
        self,
        msg: Any,
        ctx: Context,
        *,
        text: str,
        tokens: list[str] | None = None,
        addresses: list[str] | None = None,
        again: bool = False,
        sender: str | None = None,
    ) -> Delivery:
        """Resolve, check and send; the reply and the carrier's report."""
        settings, store = ctx.settings, ctx.store
        try:
            plan = plan_message(text, max_parts=settings.max_parts, smart=settings.smart_characters)
            if addresses is None:
                tokens = tokens or []
                state = store.directory() if directory.has_names(tokens) else {}
                recipients = directory.resolve(state, tokens, ctx.rules)
                addresses = [r.tel for r in recipients]
        except (MessageError, directory.DirectoryError, NumberError) as exc:
            return Delivery(f"Not sent: {echo(str(exc), 400)}")
        refused = store.opted_out(addresses)
        allowed = [a for a in addresses if a not in refused]
        opted = (
            f" Not sent to {', '.join(sorted(refused))}: opted out (texted STOP; START opts back in)."
            if refused
            else ""
        )
        if not allowed:
            return Delivery(f"Not sent: every recipient opted out ({', '.join(sorted(refused))}).")
        user = self._user_of(msg)
        key = dedup_key(allowed, plan.text)
        if settings.dedup_window > 0 and not again:
            earlier = store.recent_send(key, store.now() - settings.dedup_window)
            if earlier is not None:
                store.record_audit(
                    who=user, recipients=allowed, parts=len(plan.parts), message_ids=[],
                    outcome=f"refused: duplicate of {', '.join(earlier['message_ids']) or 'an earlier send'}",
                )  # fmt: skip
                return Delivery(_duplicate_reply(earlier, store.now()))
        units = plan.segments * len(allowed)
        try:
            reservation = store.reserve_quota(
                user, units, settings.rate_limit, settings.daily_limit
            )
        except QuotaError as exc:
            return Delivery(f"Not sent: {exc}")
        report = send_parts(
            ctx.client,
            allowed,
            list(plan.parts),
            sender=sender or settings.sender_address,
            max_recipients=settings.max_recipients,
        )
        self._record_send(ctx, msg, user, reservation, report, key, len(plan.parts))
        cost = describe_cost(plan, len(allowed)) if plan.segments > 1 else None
        return Delivery(report.reply_line() + (f"; {cost}" if cost else "") + opted, report)

    def _record_send(
        self, ctx: Context, msg: Any, user: str, reservation: int, report: Any, key: str, parts: int
    ) -> None:
        """Quota, audit and follow-ups of one send, in one transaction."""
        store = ctx.store
        with store.transaction() as tx:
            now = store.now()
            store.settle_quota(reservation, report.billed, tx)
            store.record_audit(
                who=user, recipients=[r.address for r in report.recipients], parts=parts,
                message_ids=report.message_ids, outcome=report.audit_outcome(),
                dedup_key=key, tx=tx,
            )  # fmt: skip
            if ctx.settings.follow_up and report.message_ids:
                target = self._reply_target(msg)
                store.add_follow_ups(
                    [
                        FollowUp(mid, target, addresses, now, now + FOLLOW_UP_FIRST)
                        for mid, addresses in _addresses_by_id(report).items()
                    ],
                    tx,
                )
        self._thread_send(msg, report)  # conversations as threads (plugin_threads)

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


def _addresses_by_id(report: Any) -> dict[str, list[str]]:
    """Each message id the carrier returned, with the recipients of that request."""
    return {r.message_id: list(r.addresses) for r in report.requests if r.message_id}


def take_flag(args: str, flag: str) -> tuple[bool, str]:
    """``(True, rest)`` when ``args`` starts with ``flag``."""
    words = (args or "").strip().split(None, 1)
    if words and words[0].lower() == flag:
        return True, words[1] if len(words) > 1 else ""
    return False, args or ""


def _duplicate_reply(earlier: dict[str, Any], now: float) -> str:
    minutes, seconds = divmod(max(0, int(now - earlier["when"])), 60)
    ago = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    ids = ", ".join(earlier["message_ids"]) or "no id (uncertain)"
    return (
        f"Not sent again: {earlier['who']} sent the same text to the same recipients {ago} ago "
        f"(message id {ids}). Use {AGAIN_FLAG} to send it anyway."
    )
