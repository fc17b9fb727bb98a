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
from att_sms.sending.pipeline import SendRequest, dedup_key
from att_sms.store import DuplicatePage, Store, StoredInbound
from att_sms.text.arguments import USAGE_SEND, ArgumentError
from att_sms.text.formatting import echo
from att_sms.text.numbers import NumberError
from att_sms.text.splitting import MessageError, describe_cost, normalise_text, plan_message

from .page_posts import PagePoster
from .runtime import Runtime, reply_target, user_of
from .sending import SendDesk, send_words
from .threads import ConversationThreads

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


class PageDesk:
    """``!sms page``, ``ack``, ``cancel``, ``pages``; the poller that runs due pages and makes
    the queued room posts; acknowledgement by SMS (for the inbound posts)."""

    def __init__(
        self,
        rt: Runtime,
        sending: SendDesk,
        threads: ConversationThreads,
        *,
        may_work: Callable[[], bool],
        lock: threading.Lock,
    ) -> None:
        self._rt = rt
        self._sending = sending
        self._threads = threads
        self._may_work = may_work
        #: One page run at a time in this process (replicas are kept apart by versions); one
        #: per plugin, as a run of an earlier activation may still hold it.
        self._lock = lock
        self._poster = PagePoster(rt, threads)
        #: Whether this activation's runs recovered interrupted pages (again after a pause).
        self._recovered = False
        #: Pages whose send this process began but could not record (a store error).
        self._cut_short: set[str] = set()

    # ----------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Let a running page run finish its store writes."""
        if self._lock.acquire(timeout=PAGES_LOCK_WAIT):
            self._lock.release()

    def tick(self) -> None:
        """One poller run: run every due page, then make the queued posts. Never raises.

        The first run of an activation recovers interrupted pages."""
        if not self._lock.acquire(blocking=False):
            return  # a page command or a slow send is running
        try:
            if not self._rt.current():
                return
            if not self._may_work():
                self._recovered = False  # recover again when working
                return
            store = self._rt.store
            if not self._recovered:
                self._recover_pages(store)
                self._recovered = True
            elif self._cut_short:
                self._recover_pages(store, only=self._cut_short)
            self._run_due_pages(store)
            self._poster.post_queued(store)
        except Exception:  # the poller must survive anything
            log.exception("AttSms page run failed unexpectedly")
        finally:
            self._lock.release()

    def _recover_pages(self, store: Store, only: set[str] | None = None) -> None:
        """A step found being sent when this bot starts (or takes over the work), or one
        whose run failed here, may or may not have gone out: never resent, the room told."""
        for page in store.open_pages():
            if only is not None and page.id not in only:
                continue
            self._cut_short.discard(page.id)
            if page.send_state != SENDING:
                continue
            recovered = recover_interrupted(page, store.now())
            text = interrupted_text(recovered, page_names(store, page))
            if store.save_page(recovered, expected_version=page.version, posts=[text]):
                log.warning("AttSms page %s was interrupted mid-send; not sent again", page.id)
        if only is not None:
            only.clear()  # the rest are closed or gone

    def _run_due_pages(self, store: Store) -> None:
        now = store.now()
        for page in store.open_pages():
            if not self._rt.current():
                return
            if next_action(page, now).kind in (WAIT, BUSY, NOTHING):
                continue
            try:
                self._run_page(page, queue=True)
            except Exception:  # one bad page must not stop the others
                log.exception("AttSms page %s could not run", page.id)

    # ----------------------------------------------------------------- running a page

    def _run_page(self, page: Page, *, queue: bool) -> list[str]:
        """Apply what is due to ``page``; the room posts it made (queued when ``queue``)."""
        store = self._rt.store
        names = page_names(store, page)
        texts: list[str] = []
        current = page

        def save(new: Page) -> None:
            nonlocal current
            if new.send_state == SENDING and not self._rt.current():
                raise _Stopped
            posts = self._save_transition(store, current, new, names, queue)
            if posts is None:
                if current.send_state == SENDING and new.send_state != SENDING:
                    texts.extend(self._settle_send(store, new, names, queue))
                raise _Superseded
            texts.extend(posts)
            current = new

        try:
            run_due(page, store.now, save=save, send=self._send_step)
        except (_Superseded, _Stopped):
            pass
        except Exception:
            if current.send_state == SENDING:  # recovered by a later run, as after a crash
                self._cut_short.add(page.id)
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

    def _send_step(self, page: Page, recipient: str) -> SendOutcome:
        """Send the current step through the send pipeline; every error is an outcome.

        A rotation (``rotation:<name>``) is whoever is on call now, at this step.
        """
        rt = self._rt
        text = sms_text(page, ack_word(rt.settings))
        to = None
        try:
            if recipients.rotation_of(recipient) is not None:
                try:
                    found = recipients.oncall_target(rt.store.directory(), recipient, rt.rules)
                except (directory.DirectoryError, NumberError) as exc:
                    return SendOutcome(FAILED, detail=str(exc))
                recipient = to = found.tel
            request = SendRequest(
                who=page.created_by, where=page.room, text=text, addresses=(recipient,),
                again=True, page_id=page.id,
            )  # fmt: skip
            delivery = self._sending.pipeline().deliver(request)
            outcome = dataclasses.replace(step_outcome(delivery), to=to)
        except Exception as exc:  # it may have gone out: never send it again
            log.exception("AttSms page %s step %d failed unexpectedly", page.id, page.number)
            outcome = SendOutcome(UNCERTAIN, detail=f"internal error ({type(exc).__name__})", to=to)
        rt.metrics.record_send(_OUTCOME_METRIC[outcome.outcome])
        return outcome

    # ----------------------------------------------------------------- for other areas

    def ack_notes(self, messages: list[StoredInbound]) -> dict[str, str]:
        """Acknowledge pages from SMS replies; a note for each acknowledging message's post."""
        return SmsAcks(self._rt.store, self._rt.settings, self._threads.mark_page_ack).notes(
            messages
        )

    def recipients(self, tokens: list[str]) -> list[str]:
        """The numbers a page to ``tokens`` texts, in order (also for pages from alerts).

        A rotation stays a rotation: each step pages whoever is on call then."""
        rt = self._rt
        found = recipients.resolve(rt.store.directory(), tokens, rt.rules, keep_rotations=True)
        return list(dict.fromkeys(r.tel for r in found))

    # ----------------------------------------------------------------- commands

    def page(self, msg: Any, args: str) -> str | None:
        """``!sms page``: start an escalating page (None: answered in a thread already)."""
        try:
            again, tokens, text = send_words(args)
        except ArgumentError as exc:
            return f"Not paged: {echo(str(exc).replace(USAGE_SEND, USAGE_PAGE), 300)}"
        return self._threads.in_conversation(
            msg, lambda: self._start_page(msg, tokens, text, again)
        )

    def _start_page(self, msg: Any, tokens: list[str], text: str, again: bool) -> str:
        settings, store = self._rt.settings, self._rt.store
        user, room = user_of(msg), reply_target(msg)
        try:
            recipients = self.recipients(tokens)
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
        if not self._lock.acquire(timeout=PAGES_LOCK_WAIT):
            return "Not paged: another page is being sent; try again in a minute."
        try:
            window = 0.0 if again else settings.dedup_window
            page = store.create_page(build, dedup_key=key, dedup_window=window)
            texts = self._run_page(page, queue=False)
        except DuplicatePage as dup:
            store.record_audit(
                who=user, recipients=recipients, parts=0, message_ids=[],
                outcome=f"refused: duplicate of page {dup.earlier.id}",
            )  # fmt: skip
            return duplicate_page_reply(dup.earlier, store.now(), "!sms page --again ...")
        finally:
            self._lock.release()
        return started_reply(page, texts, describe_cost(plan, 1), store.now())

    def ack(self, msg: Any, args: str) -> str:
        """``!sms ack <page>``: acknowledge a page from chat."""
        return self._close_page(msg, args, "ack", acknowledge)

    def cancel(self, msg: Any, args: str) -> str:
        """``!sms cancel <page>``: stop a page."""
        return self._close_page(msg, args, "cancel", cancel)

    def pages(self, msg: Any, args: str) -> str:
        """``!sms pages``: one line per open page."""
        store = self._rt.store
        pages = store.open_pages()
        if not pages:
            return "No open pages."
        now = store.now()
        return "\n".join(list_line(p, now, page_names(store, p)) for p in pages)

    def _close_page(
        self, msg: Any, args: str, verb: str, close: Callable[[Page, str, float], Page]
    ) -> str:
        words = (args or "").split()
        page_id = parse_page_id(words[0], bare=True) if len(words) == 1 else None
        if page_id is None:
            return f"usage: !sms {verb} <page> (the page id, e.g. P7)"
        store = self._rt.store
        user = user_of(msg)
        for _ in range(CONFLICT_RETRIES):
            page = store.get_page(page_id)
            if page is None:
                return f"No page {page_id}."
            names = page_names(store, page)
            if page.state != OPEN:
                return closed_text(page, names)
            closed = close(page, user, store.now())
            text = acked_text(closed, names) if verb == "ack" else cancelled_text(closed)
            elsewhere = [text] if page.room != reply_target(msg) else []
            if elsewhere and verb == "ack":
                self._threads.mark_page_ack(closed.id, closed.room, text)
            if store.save_page(closed, expected_version=page.version, posts=elsewhere):
                return text
        return f"Nothing done: page {page_id} keeps changing; try again."
