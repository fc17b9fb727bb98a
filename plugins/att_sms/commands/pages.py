"""Escalating pages (``!sms page``): the commands, the poller that runs due pages, the room
posts and acknowledgement by SMS; see docs/ESCALATION.md.

The state machine is ``att_sms.pages.escalation``. Every transition is saved with a version
check (``store.save_page``), with the room post it owes queued in the same transaction; the
poller posts queued posts with the chat's confirmation and keeps a refused one for later,
without touching the step. A step is one ``SendPipeline.deliver`` call, so opt-outs, quotas,
the audit log and delivery follow-ups apply to each step. Times are the store's clock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from errbot import botcmd

from att_sms.pages.escalation import (
    BUSY,
    FAILED,
    NOTHING,
    OPEN,
    SENDING,
    SENT,
    UNCERTAIN,
    WAIT,
    Page,
    acknowledge,
    cancel,
    next_action,
    parse_page_id,
    record_send,
    recover_interrupted,
)
from att_sms.pages.escalation_loop import SendOutcome, run_due
from att_sms.pages.escalation_text import (
    acked_text,
    cancelled_text,
    event_text,
    interrupted_text,
    list_line,
    sms_text,
)
from att_sms.pages.page_outcomes import (
    ack_word,
    closed_text,
    duplicate_page_reply,
    events_between,
    page_builder,
    started_reply,
    step_outcome,
)
from att_sms.pages.sms_acks import CONFLICT_RETRIES, SmsAcks, page_names
from att_sms.sending import directory, recipients
from att_sms.sending.pipeline import Context, NotActive, SendRequest, dedup_key
from att_sms.store import DuplicatePage, Store, StoredInbound
from att_sms.text.arguments import USAGE_SEND, ArgumentError
from att_sms.text.formatting import echo
from att_sms.text.numbers import NumberError
from att_sms.text.splitting import MessageError, describe_cost, normalise_text, plan_message

from .page_posts import PagePosts
from .sending import send_words

log = logging.getLogger("errbot.plugins.AttSms")

PAGES_TICK = 1.0  # how often the poller looks for due pages and queued posts
PAGES_LOCK_WAIT = 60.0
LARGEST_PAGE_NUMBER = 999_999_999  # sizes the SMS check before the page has its number
USAGE_PAGE = "usage: !sms page [--again] <to>[,<to>...] <text>"
_OUTCOME_METRIC = {SENT: "sent", UNCERTAIN: "uncertain", FAILED: "refused"}


class _Superseded(Exception):
    """Someone else changed the page first; this run stops (its send, if any, is recorded)."""


class _Stopped(Exception):
    """The plugin is being deactivated: no new step starts."""


class PageCommands(PagePosts):
    """Mixed into the AttSms plugin: ``!sms page``, ``ack``, ``cancel``, ``pages``."""

    # ----------------------------------------------------------------- lifecycle

    def _pages_lock(self) -> threading.Lock:
        """One page run at a time in this process (replicas are kept apart by versions)."""
        lock = self.__dict__.get("_att_pages_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_att_pages_lock", threading.Lock())
        return lock

    def _start_pages(self, generation: int) -> None:
        """Start the escalation poller; its first run recovers interrupted pages."""
        self._pages_lock()
        self.__dict__["_att_pages_recovered"] = None
        self.start_poller(PAGES_TICK, self._pages_tick, args=(generation,))

    def _stop_pages(self) -> None:
        """Let a running page run finish its store writes."""
        lock = self._pages_lock()
        if lock.acquire(timeout=PAGES_LOCK_WAIT):
            lock.release()

    def _pages_tick(self, generation: int) -> None:
        """One poller run: run every due page, then make the queued posts. Never raises."""
        if generation != self._generation or self._settings is None:
            return
        lock = self._pages_lock()
        if not lock.acquire(blocking=False):
            return  # a page command or a slow send is running
        self._begin_command()
        try:
            if generation != self._generation:
                return
            if not self._may_work():
                self.__dict__["_att_pages_recovered"] = None  # recover again when working
                return
            ctx = self._context()
            if self.__dict__.get("_att_pages_recovered") != generation:
                self._recover_pages(ctx.store)
                self.__dict__["_att_pages_recovered"] = generation
            elif self._cut_short():
                self._recover_pages(ctx.store, only=self._cut_short())
            self._run_due_pages(ctx, generation)
            self._post_page_events(ctx.store, generation)
        except NotActive:
            return
        except Exception:  # the poller must survive anything
            log.exception("AttSms page run failed unexpectedly")
        finally:
            self._end_command()
            lock.release()

    def _cut_short(self) -> set[str]:
        """Pages whose send this process began but could not record (a store error)."""
        return self.__dict__.setdefault("_att_pages_cut_short", set())

    def _recover_pages(self, store: Store, only: set[str] | None = None) -> None:
        """A step found being sent when this bot starts (or takes over the work), or one
        whose run failed here, may or may not have gone out: never resent, the room told."""
        for page in store.open_pages():
            if only is not None and page.id not in only:
                continue
            self._cut_short().discard(page.id)
            if page.send_state != SENDING:
                continue
            recovered = recover_interrupted(page, store.now())
            text = interrupted_text(recovered, page_names(store, page))
            if store.save_page(recovered, expected_version=page.version, posts=[text]):
                log.warning("AttSms page %s was interrupted mid-send; not sent again", page.id)
        if only is not None:
            only.clear()  # the rest are closed or gone

    def _run_due_pages(self, ctx: Context, generation: int) -> None:
        now = ctx.store.now()
        for page in ctx.store.open_pages():
            if generation != self._generation:
                return
            if next_action(page, now).kind in (WAIT, BUSY, NOTHING):
                continue
            try:
                self._run_page(ctx, page, generation, queue=True)
            except Exception:  # one bad page must not stop the others
                log.exception("AttSms page %s could not run", page.id)

    # ----------------------------------------------------------------- running a page

    def _run_page(self, ctx: Context, page: Page, generation: int, *, queue: bool) -> list[str]:
        """Apply what is due to ``page``; the room posts it made (queued when ``queue``)."""
        store = ctx.store
        names = page_names(store, page)
        texts: list[str] = []
        current = page

        def save(new: Page) -> None:
            nonlocal current
            if new.send_state == SENDING and generation != self._generation:
                raise _Stopped
            posts = self._save_transition(store, current, new, names, queue)
            if posts is None:
                if current.send_state == SENDING and new.send_state != SENDING:
                    texts.extend(self._settle_send(store, new, names, queue))
                raise _Superseded
            texts.extend(posts)
            current = new

        def send(step: Page, recipient: str) -> SendOutcome:
            return self._send_step(ctx, step, recipient)

        try:
            run_due(page, store.now, save=save, send=send)
        except (_Superseded, _Stopped):
            pass
        except Exception:
            if current.send_state == SENDING:  # recovered by a later run, as after a crash
                self._cut_short().add(page.id)
            raise
        return texts

    @staticmethod
    def _save_transition(
        store: Store, old: Page, new: Page, names: dict[str, str], queue: bool
    ) -> list[str] | None:
        """Save ``old`` -> ``new`` with the posts it owes; None when ``old`` is stale."""
        posts = [event_text(event, names) for event in events_between(old, new)]
        saved = store.save_page(new, expected_version=old.version, posts=posts if queue else ())
        return posts if saved else None

    def _settle_send(
        self, store: Store, sent: Page, names: dict[str, str], queue: bool
    ) -> list[str]:
        """Record a finished send on a page someone changed meanwhile (acked, cancelled)."""
        entry = sent.history[-1]
        for _ in range(CONFLICT_RETRIES):
            fresh = store.get_page(sent.id)
            if fresh is None or fresh.send_state != SENDING or fresh.number != sent.number:
                log.warning("AttSms page %s: send outcome not recorded (page changed)", sent.id)
                return []
            settled = record_send(
                fresh, sent.send_state, entry["at"],
                message_ids=sent.message_ids, detail=entry["detail"], to=entry["to"],
            )  # fmt: skip
            posts = self._save_transition(store, fresh, settled, names, queue)
            if posts is not None:
                return posts
        return []

    def _send_step(self, ctx: Context, page: Page, recipient: str) -> SendOutcome:
        """Send the current step through the send pipeline; every error is an outcome.

        A rotation (``rotation:<name>``) is whoever is on call now, at this step.
        """
        text = sms_text(page, ack_word(ctx.settings))
        to = None
        try:
            if recipients.rotation_of(recipient) is not None:
                try:
                    found = recipients.oncall_target(ctx.store.directory(), recipient, ctx.rules)
                except (directory.DirectoryError, NumberError) as exc:
                    return SendOutcome(FAILED, detail=str(exc))
                recipient = to = found.tel
            request = SendRequest(
                who=page.created_by, where=page.room, text=text, addresses=(recipient,),
                again=True, page_id=page.id,
            )  # fmt: skip
            delivery = self._send_pipeline(ctx).deliver(request)
            outcome = dataclasses.replace(step_outcome(delivery), to=to)
        except Exception as exc:  # it may have gone out: never send it again
            log.exception("AttSms page %s step %d failed unexpectedly", page.id, page.number)
            outcome = SendOutcome(UNCERTAIN, detail=f"internal error ({type(exc).__name__})", to=to)
        self.metrics.record_send(_OUTCOME_METRIC[outcome.outcome])
        return outcome

    # ----------------------------------------------------------------- acknowledgement by SMS

    def _page_ack_notes(self, messages: list[StoredInbound]) -> dict[str, str]:
        """Acknowledge pages from SMS replies; a note for each acknowledging message's post."""
        settings, store = self._settings, self._sms_store
        if settings is None or store is None:
            return {}
        return SmsAcks(store, settings, self._mark_page_ack).notes(messages)

    # ----------------------------------------------------------------- commands

    @botcmd
    def sms_page(self, msg: Any, args: str) -> str:
        """[--again] <to>[,<to>...] <text>: page each in turn until one acknowledges.

        Recipients as in !sms send (numbers, contacts, groups in the order added). Each
        waits ESCALATE_AFTER seconds for an acknowledgement (an SMS reply such as ACK or OK,
        or !sms ack) before the next is paged. The same page within DEDUP_WINDOW is refused
        unless --again is given.
        """
        if self._settings is None:
            return self._not_configured()
        try:
            again, tokens, text = send_words(args)
        except ArgumentError as exc:
            return f"Not paged: {echo(str(exc).replace(USAGE_SEND, USAGE_PAGE), 300)}"
        self._begin_command()
        try:
            return self._in_conversation(
                msg, lambda: self._start_page(msg, self._context(), tokens, text, again)
            )
        except NotActive:
            return "Not paged: the plugin is being reconfigured; try again in a moment."
        finally:
            self._end_command()

    def _start_page(self, msg: Any, ctx: Context, tokens: list[str], text: str, again: bool) -> str:
        settings, store = ctx.settings, ctx.store
        user, room = self._user_of(msg), self._reply_target(msg)
        try:
            recipients = self._page_recipients(ctx, tokens)
            build = page_builder(room, text, recipients, user, settings)
            plan = plan_message(
                sms_text(build(LARGEST_PAGE_NUMBER, 0.0), ack_word(settings)),
                max_parts=settings.max_parts,
                smart=settings.smart_characters,
            )
        except (MessageError, directory.DirectoryError, NumberError) as exc:
            return f"Not paged: {echo(str(exc), 400)}"
        if not set(recipients) - store.opted_out(recipients):
            return f"Not paged: every recipient opted out ({', '.join(recipients)})."
        key = dedup_key(recipients, normalise_text(text))
        lock = self._pages_lock()
        if not lock.acquire(timeout=PAGES_LOCK_WAIT):
            return "Not paged: another page is being sent; try again in a minute."
        try:
            window = 0.0 if again else settings.dedup_window
            page = store.create_page(build, dedup_key=key, dedup_window=window)
            texts = self._run_page(ctx, page, self._generation, queue=False)
        except DuplicatePage as dup:
            store.record_audit(
                who=user, recipients=recipients, parts=0, message_ids=[],
                outcome=f"refused: duplicate of page {dup.earlier.id}",
            )  # fmt: skip
            return duplicate_page_reply(dup.earlier, store.now(), "!sms page --again ...")
        finally:
            lock.release()
        return started_reply(page, texts, describe_cost(plan, 1), store.now())

    @staticmethod
    def _page_recipients(ctx: Context, tokens: list[str]) -> list[str]:
        """The numbers a page to ``tokens`` texts, in order (also for pages from alerts).

        A rotation stays a rotation: each step pages whoever is on call then."""
        found = recipients.resolve(ctx.store.directory(), tokens, ctx.rules, keep_rotations=True)
        return list(dict.fromkeys(r.tel for r in found))

    @botcmd
    def sms_ack(self, msg: Any, args: str) -> str:
        """<page>: acknowledge a page from chat (P7); nobody else is paged."""
        return self._close_page(msg, args, "ack", acknowledge)

    @botcmd
    def sms_cancel(self, msg: Any, args: str) -> str:
        """<page>: stop a page (P7); nobody else is paged."""
        return self._close_page(msg, args, "cancel", cancel)

    @botcmd
    def sms_pages(self, msg: Any, args: str) -> str:
        """The open pages: step, who was paged when, what comes next, the text."""
        if self._settings is None:
            return self._not_configured()
        store = self._sms_store
        if store is None:
            return "Pages not available: the plugin is being reconfigured; try again."
        pages = store.open_pages()
        if not pages:
            return "No open pages."
        now = store.now()
        return "\n".join(list_line(p, now, page_names(store, p)) for p in pages)

    def _close_page(
        self, msg: Any, args: str, verb: str, close: Callable[[Page, str, float], Page]
    ) -> str:
        if self._settings is None:
            return self._not_configured()
        words = (args or "").split()
        page_id = parse_page_id(words[0], bare=True) if len(words) == 1 else None
        if page_id is None:
            return f"usage: !sms {verb} <page> (the page id, e.g. P7)"
        store = self._sms_store
        if store is None:
            return "Nothing done: the plugin is being reconfigured; try again."
        user = self._user_of(msg)
        for _ in range(CONFLICT_RETRIES):
            page = store.get_page(page_id)
            if page is None:
                return f"No page {page_id}."
            names = page_names(store, page)
            if page.state != OPEN:
                return closed_text(page, names)
            closed = close(page, user, store.now())
            text = acked_text(closed, names) if verb == "ack" else cancelled_text(closed)
            elsewhere = [text] if page.room != self._reply_target(msg) else []
            if elsewhere and verb == "ack":
                self._mark_page_ack(closed.id, closed.room, text)
            if store.save_page(closed, expected_version=page.version, posts=elsewhere):
                return text
        return f"Nothing done: page {page_id} keeps changing; try again."
