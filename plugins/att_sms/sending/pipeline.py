"""The send pipeline, as a plain class: a typed request in, a typed delivery out.

resolve recipients -> plan the parts (encoding aware) -> drop opted-out numbers -> refuse a
duplicate -> reserve the quota (these three in one transaction) -> send
(:func:`~att_sms.sending.parts.send_parts`) -> settle the quota with what was billed, audit
and follow up, in one transaction.

Every sender uses it: ``!sms send`` and ``!sms reply``, each step of a page, a handoff SMS,
an SMS owed about an alert page. The chat reply, the audit row, the metric label and a page
step's outcome are all read from the :class:`Delivery` it returns, never from its text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from att_sms.carrier.client import AttSmsClient
from att_sms.sending import directory, recipients
from att_sms.sending.parts import SendReport, send_parts
from att_sms.sending.policy import QuotaError
from att_sms.settings import Settings
from att_sms.store import FollowUp, Store, Tx
from att_sms.text.formatting import echo
from att_sms.text.numbers import NumberError, NumberRules
from att_sms.text.splitting import MessageError, describe_cost, plan_message

#: The first delivery-status check after a send; then doubling (``commands.followup``).
FOLLOW_UP_FIRST = 2.0
AGAIN_FLAG = "--again"

#: What a delivery came to (``Delivery.kind``): the carrier took it for every recipient,
#: for some, may or may not have, took it for none, or nothing was attempted.
SENT, PARTIAL, UNCERTAIN, FAILED, REFUSED = "sent", "partial", "uncertain", "failed", "refused"


class NotActive(Exception):
    """The plugin is being deactivated or reconfigured."""


@dataclass(frozen=True)
class Context:
    """What one command works with, taken once: a reconfiguration mid-command cannot swap it."""

    settings: Settings
    client: AttSmsClient
    rules: NumberRules
    store: Store


@dataclass(frozen=True)
class SendRequest:
    """One send: who asks, where its answers and follow-ups go, to whom, what.

    ``recipients`` are words as typed (numbers, contacts, groups), resolved by the pipeline;
    ``addresses`` are ``tel:`` URIs already checked (a reply, a page step, a handoff) and
    win when given. ``page_id`` links a page step's send to the page's thread.
    """

    who: str
    where: str
    text: str
    recipients: tuple[str, ...] = ()
    addresses: tuple[str, ...] | None = None
    again: bool = False
    sender: str | None = None
    page_id: str = ""


@dataclass(frozen=True)
class Delivery:
    """What came of one send.

    ``reply`` is the chat text; ``report`` the carrier's report when a send was attempted;
    ``refused`` why nothing was attempted (the text after "Not sent: "), with
    ``all_opted_out`` when that is because every recipient opted out.
    """

    reply: str
    report: SendReport | None = None
    refused: str | None = None
    all_opted_out: bool = False

    @property
    def kind(self) -> str:
        """``sent``, ``partial``, ``uncertain``, ``failed`` (the carrier took none) or
        ``refused`` (nothing attempted)."""
        return self.report.outcome_kind if self.report is not None else REFUSED

    @property
    def metric_label(self) -> str:
        """The ``att_sms_sends_total`` outcome label: a failed send counts as refused."""
        return REFUSED if self.kind == FAILED else self.kind


def dedup_key(addresses: list[str], text: str) -> str:
    """The same text to the same recipients, whatever their order."""
    blob = "\x1f".join(sorted(addresses)) + "\x1e" + text
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class SendPipeline:
    """The send pipeline over one command's :class:`Context`.

    ``on_sent(request, report)`` is told of every attempted send after its transaction
    committed (conversation threads link it); it must not raise.
    """

    def __init__(
        self, ctx: Context, on_sent: Callable[[SendRequest, SendReport], None] | None = None
    ) -> None:
        self._ctx = ctx
        self._on_sent = on_sent

    def deliver(self, request: SendRequest) -> Delivery:
        """Resolve, check and send ``request``; the reply and the carrier's report."""
        ctx = self._ctx
        settings, store = ctx.settings, ctx.store
        try:
            plan = plan_message(
                request.text, max_parts=settings.max_parts, smart=settings.smart_characters
            )
            addresses = self._addresses(request)
        except (MessageError, directory.DirectoryError, NumberError) as exc:
            return _refused(echo(str(exc), 400))
        try:
            with store.transaction() as tx:  # one transaction: opt-outs, duplicate, quota
                refused = store.opted_out(addresses, tx)
                allowed = [a for a in addresses if a not in refused]
                if not allowed:
                    return _refused(
                        f"every recipient opted out ({', '.join(sorted(refused))}).",
                        all_opted_out=True,
                    )
                key = dedup_key(allowed, plan.text)
                duplicate = self._duplicate(request, key, allowed, len(plan.parts), tx)
                if duplicate is not None:
                    return duplicate
                reservation = store.reserve_quota(
                    request.who, plan.segments * len(allowed), settings.rate_limit,
                    settings.daily_limit, tx,
                )  # fmt: skip
        except QuotaError as exc:  # the transaction rolled back: nothing was counted
            return _refused(str(exc))
        opted = (
            f" Not sent to {', '.join(sorted(refused))}: opted out (texted STOP; START opts back in)."
            if refused
            else ""
        )
        report = send_parts(
            ctx.client,
            allowed,
            list(plan.parts),
            sender=request.sender or settings.sender_address,
            max_recipients=settings.max_recipients,
        )
        self._record(request, reservation, report, key, len(plan.parts))
        cost = describe_cost(plan, len(allowed)) if plan.segments > 1 else None
        return Delivery(report.reply_line() + (f"; {cost}" if cost else "") + opted, report)

    def _duplicate(
        self, request: SendRequest, key: str, allowed: list[str], parts: int, tx: Tx
    ) -> Delivery | None:
        """The refusal of a send of the same text to the same people within DEDUP_WINDOW
        (audited in ``tx``), unless ``--again`` was given; None: not a duplicate."""
        settings, store = self._ctx.settings, self._ctx.store
        if settings.dedup_window <= 0 or request.again:
            return None
        earlier = store.recent_send(key, store.now() - settings.dedup_window, tx)
        if earlier is None:
            return None
        store.record_audit(
            who=request.who, recipients=allowed, parts=parts, message_ids=[],
            outcome=f"refused: duplicate of {', '.join(earlier['message_ids']) or 'an earlier send'}",
            tx=tx,
        )  # fmt: skip
        reply = duplicate_reply(earlier, store.now())
        return Delivery(reply, refused=reply)

    def _addresses(self, request: SendRequest) -> list[str]:
        if request.addresses is not None:
            return list(request.addresses)
        tokens = list(request.recipients)
        store = self._ctx.store
        state = store.directory() if recipients.has_names(tokens) else {}
        return [r.tel for r in recipients.resolve(state, tokens, self._ctx.rules)]

    def _record(
        self, request: SendRequest, reservation: int, report: SendReport, key: str, parts: int
    ) -> None:
        """Quota, audit and follow-ups of one send, in one transaction."""
        ctx = self._ctx
        store = ctx.store
        with store.transaction() as tx:
            now = store.now()
            store.settle_quota(reservation, report.billed, tx)
            store.record_audit(
                who=request.who, recipients=[r.address for r in report.recipients], parts=parts,
                message_ids=report.message_ids, outcome=report.audit_outcome(),
                dedup_key=key, tx=tx,
            )  # fmt: skip
            if ctx.settings.follow_up and report.message_ids:
                store.add_follow_ups(
                    [
                        FollowUp(mid, request.where, addresses, now, now + FOLLOW_UP_FIRST)
                        for mid, addresses in _addresses_by_id(report).items()
                    ],
                    tx,
                )
        if self._on_sent is not None:
            self._on_sent(request, report)


def _refused(reason: str, *, all_opted_out: bool = False) -> Delivery:
    return Delivery(f"Not sent: {reason}", refused=reason, all_opted_out=all_opted_out)


def _addresses_by_id(report: SendReport) -> dict[str, list[str]]:
    """Each message id the carrier returned, with the recipients of that request."""
    return {r.message_id: list(r.addresses) for r in report.requests if r.message_id}


def duplicate_reply(earlier: dict[str, Any], now: float) -> str:
    """The answer to a send refused as a duplicate of ``earlier`` (a ``recent_send`` row)."""
    minutes, seconds = divmod(max(0, int(now - earlier["when"])), 60)
    ago = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    ids = ", ".join(earlier["message_ids"]) or "no id (uncertain)"
    return (
        f"Not sent again: {earlier['who']} sent the same text to the same recipients {ago} ago "
        f"(message id {ids}). Use {AGAIN_FLAG} to send it anyway."
    )
