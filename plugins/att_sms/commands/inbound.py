"""Inbound SMS: poll each registration's inbox into the store, then post from the store.

Each registration has its own schedule: one that fails (a decommissioned route answering
404) backs off alone while the others keep ``POLL_INTERVAL``. Posting reads the store, so a
message is posted once, in order, after any restart; a post counts as done only when the
chat confirmed it (``att_sms.chat.chat_posting``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from errbot.backends.base import Room

from att_sms.carrier.errors import AttSmsError, CarrierUnavailable
from att_sms.chat.chat_posting import PostFailed, is_slack, post_confirmed, post_size_limit
from att_sms.chat.conversations import group_by_number
from att_sms.inbound.fetcher import FetcherExited, FetcherProcess, drain_into
from att_sms.inbound.posts import COMBINED_POST_CHARS, Post, build_posts
from att_sms.store import StoredInbound
from att_sms.text.common import UTC_CLOCK, plural, utc_time
from att_sms.text.formatting import echo
from att_sms.text.numbers import canonical_sender

from .runtime import Runtime
from .threads import ConversationThreads

log = logging.getLogger("errbot.plugins.AttSms")

MAX_BACKOFF = 300.0
FETCH_REPLY_TIMEOUT = 300.0  # a fetch child that says nothing for this long is replaced
POLL_LOCK_WAIT = 60.0
POLL_TICK = 0.5  # how often the poller looks for due registrations (cheap)
CHILD_RETRY_AFTER = 60.0  # after a child could not start, in-process fetches until then


@dataclass
class RouteState:
    """One registration's polling schedule and health."""

    failures: int = 0
    next_at: float = 0.0
    problem: str | None = None
    last_ok: float | None = None
    first_failure: float | None = None
    backoff: float = 0.0  # current retry wait after failures, 0 when fine


class InboundPoller:
    """The inbox poller, posting to the routes' rooms, and ``!sms inbox``."""

    def __init__(
        self,
        rt: Runtime,
        threads: ConversationThreads,
        *,
        may_work: Callable[[], bool],
        ack_notes: Callable[[list[StoredInbound]], dict[str, str]],
        lock: threading.Lock,
    ) -> None:
        self._rt = rt
        self._threads = threads
        self._may_work = may_work
        self._ack_notes = ack_notes
        self._poll_lock = lock  # one inbox fetch+post at a time (one per plugin instance)
        self._fetcher: FetcherProcess | None = None
        self._child_retry_at = 0.0
        #: Each registration's schedule and health (read by ``!sms health``).
        self.routes: dict[str, RouteState] = {}
        #: Why a registration's messages are not posted, as of the last posting run.
        self.post_problems: dict[str, str] = {}
        self._post_retry_at: dict[str, float] = {}

    def start(self) -> None:
        """Track the routes; post what an earlier run stored but did not post, without
        waiting a whole interval. The caller runs :meth:`tick` every ``POLL_TICK`` seconds
        when ``POLL_INTERVAL`` > 0 and there are routes."""
        settings = self._rt.settings
        self.routes = {reg: RouteState() for reg in settings.inbox_routes}
        self._rt.metrics.track_registrations(settings.inbox_routes)
        self.post_problems, self._post_retry_at = {}, {}
        threading.Thread(target=self._flush_pending, name="AttSms resume", daemon=True).start()

    def stop(self) -> None:
        """Let a running poll finish its store writes; no fetch child with old settings stays."""
        if self._fetcher is not None:
            self._fetcher.finish()  # a fetch in progress ends after the read it is in
        got_lock = self._poll_lock.acquire(timeout=POLL_LOCK_WAIT)
        try:
            if self._fetcher is not None:
                self._fetcher.close()
        finally:
            self._fetcher = None
            if got_lock:
                self._poll_lock.release()

    # ----------------------------------------------------------------- the poller

    def tick(self) -> None:
        """One poller run: fetch every due registration, store, post. Never raises."""
        if not self._may_work():
            return
        now = time.monotonic()
        due = sorted(reg for reg, state in self.routes.items() if state.next_at <= now)
        if not self._poll_lock.acquire(blocking=False):
            return  # a slow poll or an !sms inbox is still running
        try:
            if not self._rt.current():
                return
            if due:
                self._fetch(due)
            self._post_pending()
        except Exception:  # the poller must survive anything
            log.exception("AttSms poll failed unexpectedly")
        finally:
            self._poll_lock.release()

    def _flush_pending(self) -> None:
        """Post what was stored but not posted (after a restart)."""
        if not self._poll_lock.acquire(timeout=POLL_LOCK_WAIT):
            return
        try:
            if self._rt.current() and self._may_work():
                self._post_pending()
        except Exception:
            log.exception("AttSms could not post stored inbound messages")
        finally:
            self._poll_lock.release()

    def _fetch(self, registrations: list[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Fetch each registration into the store (caller holds the poll lock)."""
        metrics = self._rt.metrics
        fetched: dict[str, int] = {}
        errors: dict[str, str] = {}
        for registration in registrations:
            state = self.routes.setdefault(registration, RouteState())
            started = time.monotonic()
            try:
                fetched[registration] = self._drain(registration)
            except AttSmsError as exc:
                errors[registration] = str(exc)
                self._route_failed(registration, state, str(exc))
                metrics.poll_failed(registration)
            else:
                self._route_ok(registration, state)
                metrics.poll_succeeded(registration)
                metrics.inbound_fetched(registration, fetched[registration])
            if self._fetcher is not None:  # the child's exchanges are not seen by the observer
                outcome = "error" if registration in errors else "ok"
                metrics.observe_exchange("inbox", time.monotonic() - started, outcome)
        return fetched, errors

    def _route_ok(self, registration: str, state: RouteState) -> None:
        if state.problem is not None:
            log.warning("AttSms inbox of %s answers again", registration)
        state.failures, state.problem, state.first_failure, state.backoff = 0, None, None, 0.0
        state.last_ok = time.time()
        state.next_at = time.monotonic() + self._rt.settings.poll_interval

    def _route_failed(self, registration: str, state: RouteState, problem: str) -> None:
        state.failures += 1
        if state.first_failure is None:
            state.first_failure = time.time()
        interval = max(self._rt.settings.poll_interval, 1.0)
        delay = min(MAX_BACKOFF, interval * 2 ** min(state.failures, 10))
        state.backoff = delay
        state.next_at = time.monotonic() + delay
        if state.problem != problem:
            log.warning(
                "AttSms inbox of %s failed (%d in a row), next try in %.0f s: %s",
                registration, state.failures, delay, problem,
            )  # fmt: skip
        state.problem = problem

    def _drain(self, registration: str) -> int:
        """Fetch a registration's inbox into the store (caller holds the poll lock).

        The fetch runs in a child process (see ``att_sms.inbound.fetcher``) so that stopping or
        killing the bot cannot lose what the carrier already handed over; in-process for
        a while when no child can be started.
        """
        fetcher = self._fetch_process()
        if fetcher is None:
            return drain_into(self._rt.client, self._rt.store, registration)
        try:
            return fetcher.fetch(registration)
        except FetcherExited as exc:
            log.warning("AttSms inbox fetch child failed, fetching in-process this time: %s", exc)
            self._fetcher, self._child_retry_at = None, time.monotonic() + CHILD_RETRY_AFTER
            return drain_into(self._rt.client, self._rt.store, registration)

    def _fetch_process(self) -> FetcherProcess | None:
        if self._fetcher is not None and self._fetcher.alive:
            return self._fetcher
        if time.monotonic() < self._child_retry_at:
            return None
        settings = self._rt.settings
        try:
            self._fetcher = FetcherProcess(
                {
                    "base_url": settings.api_base_url,
                    "client_id": settings.client_id,
                    "client_secret": settings.client_secret,
                    "scope": settings.scope,
                    "read_timeout": settings.read_timeout,
                    "data_dir": self._rt.data_dir,
                    "default_region": settings.default_region,
                    "database_url": settings.database_url,
                    "database_password": settings.database_password,
                },
                reply_timeout=FETCH_REPLY_TIMEOUT,
            )
        except OSError as exc:
            log.warning("AttSms fetches the inbox in-process for now (no child process: %s)", exc)
            self._fetcher, self._child_retry_at = None, time.monotonic() + CHILD_RETRY_AFTER
        return self._fetcher

    # ----------------------------------------------------------------- posting

    def _post_pending(self) -> dict[str, str]:
        """Post every pending message to its route; mark each post done. Returns problems."""
        problems: dict[str, str] = {}
        by_registration: dict[str, list[StoredInbound]] = {}
        for message in self._rt.store.pending():
            by_registration.setdefault(message.registration_id, []).append(message)
        for registration, messages in by_registration.items():
            problem = self._post_registration(registration, messages)
            if problem:
                problems[registration] = problem
        for registration, problem in problems.items():
            if self.post_problems.get(registration) != problem:
                log.warning("AttSms inbound for %s not posted: %s", registration, problem)
        self.post_problems = problems
        return problems

    def _post_registration(self, registration: str, messages: list[StoredInbound]) -> str | None:
        """Post one registration's pending messages in order; a problem keeps the rest pending."""
        settings, store, bot = self._rt.settings, self._rt.store, self._rt.bot
        target = settings.inbox_routes.get(registration)
        if target is None:
            return "no route in INBOX_ROUTES; kept until one is configured"
        if time.monotonic() < self._post_retry_at.get(registration, 0.0):
            return self.post_problems.get(registration, "the chat asked to wait; kept")
        try:
            identifier = self._rt.build_identifier(target)
        except Exception as exc:  # ValueError and backend-specific errors
            return f"cannot post to {target!r}: {exc}"
        # On Slack the post's own answer says whether the bot is in the channel.
        if not is_slack(bot) and not in_room(identifier):
            return f"the bot is not in {target} yet (joining); kept"
        extra = self._ack_notes(messages)  # the pages these SMS replies acknowledged
        # Shown as +E164 however the carrier wrote the sender (tel:2125551234, 2125551234).
        shown = [
            replace(m, sender_address=canonical_sender(m.sender_address, settings.default_region))
            for m in messages
        ]

        def note_of(message: StoredInbound) -> str | None:
            return "; ".join(n for n in (message.note, extra.get(message.key)) if n) or None

        if self._threads.enabled():
            return self._post_in_threads(registration, target, identifier, shown, note_of)
        for post in self._posts_of(shown, note_of):
            try:
                post_confirmed(bot, identifier, post.text)
            except PostFailed as exc:
                if exc.retry_after:
                    self._post_retry_at[registration] = time.monotonic() + exc.retry_after
                return f"cannot post to {target}: {exc.reason}; kept"
            store.mark_posted(post.keys)
            self._rt.metrics.inbound_posted(registration, len(post.keys))
        return None

    def _posts_of(
        self, messages: list[StoredInbound], note_of: Callable[[StoredInbound], str | None]
    ) -> list[Post]:
        """The chat posts of ``messages`` (one each, or combined when many)."""
        return build_posts(
            messages,
            combine_above=self._rt.settings.combine_above,
            name_of=self._rt.store.name_of_sender,
            handle_of=_handle_of,
            note_of=note_of,
            max_chars=post_size_limit(self._rt.bot, COMBINED_POST_CHARS),
        )

    def _post_in_threads(
        self,
        registration: str,
        target: str,
        identifier: Any,
        shown: list[StoredInbound],
        note_of: Callable[[StoredInbound], str | None],
    ) -> str | None:
        """Each number's messages in its conversation's thread (Slack); in order per number."""
        store, metrics = self._rt.store, self._rt.metrics
        poster = self._threads.poster()

        def posted(post: Post) -> None:
            store.mark_posted(post.keys)
            metrics.inbound_posted(registration, len(post.keys))

        for number, messages in group_by_number(shown, lambda m: m.sender_address):
            posts = self._posts_of(messages, note_of)
            try:
                failed = poster.post_inbound(
                    identifier, number, posts,
                    from_address=messages[-1].destination_address, posted=posted,
                )  # fmt: skip
            except PostFailed as exc:  # the route's channel is unknown to Slack
                failed = exc
            if failed is not None:
                if failed.retry_after:
                    self._post_retry_at[registration] = time.monotonic() + failed.retry_after
                return f"cannot post to {target}: {failed.reason}; kept"
        return None

    # ----------------------------------------------------------------- !sms inbox

    def inbox(self, msg: Any, args: str) -> str:
        """!sms inbox: fetch now, post, and say what arrived and what is held back."""
        routes = self._rt.settings.inbox_routes
        wanted = args.split()
        if len(wanted) > 1:
            return "usage: !sms inbox [<registrationId>]"
        if wanted and wanted[0] not in routes:
            known = ", ".join(sorted(routes)) or "none"
            return f"No route for registration '{echo(wanted[0], 40)}' in INBOX_ROUTES (configured: {known})."
        if not routes:
            return "No INBOX_ROUTES configured: nowhere to post inbound SMS."
        registrations = wanted or sorted(routes)
        if not self._poll_lock.acquire(timeout=POLL_LOCK_WAIT):
            return "The inbox is busy with another fetch; try again in a minute."
        try:
            if not self._rt.current():
                return "Inbox not fetched: the plugin is being reconfigured; try again."
            fetched, errors = self._fetch(registrations)
            problems = self._post_pending()
        except CarrierUnavailable as exc:
            return f"Inbox not fetched: {exc}"
        finally:
            self._poll_lock.release()
        summary = ", ".join(f"{reg}: {fetched.get(reg, 0)} new" for reg in registrations)
        pending = self._rt.store.counts()["pending"]
        extra = f"; {pending} still waiting to be posted" if pending else ""
        notes = "".join(f"; {reg}: {err}" for reg, err in {**errors, **problems}.items())
        backing_off = [
            f"; {reg} is failing since {utc_time(s.first_failure, UTC_CLOCK)}"
            f" ({s.failures} in a row), polled less often"
            for reg, s in sorted(self.routes.items())
            if s.problem and reg not in errors and s.first_failure
        ]
        total = sum(fetched.values())
        return (
            f"Inbox: {plural(total, 'message')} arrived ({summary})"
            f"{extra}{notes}{''.join(backing_off)}"
        )


def _handle_of(message: StoredInbound) -> str:
    return message.handle


def in_room(identifier: Any) -> bool:
    """False when ``identifier`` is a room the bot has not joined (it then asks to join).

    On IRC a post to a channel the bot is not in is silently dropped by the server, and
    right after a restart the bot posts before errbot has re-joined its rooms.
    """
    if not isinstance(identifier, Room):
        return True
    try:
        if identifier.joined:
            return True
        identifier.join()
    except Exception:  # the backend cannot tell: let the post itself decide
        return True
    return False
