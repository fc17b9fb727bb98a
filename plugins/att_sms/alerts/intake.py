"""``POST /att_sms/alerts``: the endpoint's logic, apart from errbot and the web framework.

``AlertIntake.handle`` takes what the request carries (headers, the ``route`` query
parameter, the body reader) and answers a status and one line:

- 503 when ``ATT_WEBHOOK_TOKEN`` is not set (nothing is accepted without a token), when the
  plugin is not configured, or when the store cannot be used (Alertmanager retries);
- 401 without ``Authorization: Bearer <token>`` or with a wrong one (constant-time check);
- 413 over 1 MiB; 400 not JSON or not a notification, with the reason; 404 an unknown route;
- 422 when the route's targets cannot be resolved (a contact was removed), with the reason;
- 200 once the decision (a page opened, a repeat ignored, a change posted, resolved) is
  committed. The page's SMS go out from the escalation poller, within a second.

Nothing is written before every check passed, and the decision is one transaction.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from att_sms.pages.escalation import OPEN, Page, cancel, new_page, paged_numbers
from att_sms.text.arguments import ArgumentError, split_recipients

from ..store import Store, Tx
from ..store.alerts import AlertGroup
from .decide import CHANGED, IGNORE, OPEN_PAGE, REPAGE, RESOLVE, Decision, GroupState, decide
from .payload import FIRING, RESOLVED, Notification, PayloadError, parse_notification
from .routes import AlertRoute, selected_name
from .text import (
    changed_line,
    opened_line,
    page_text,
    repaged_line,
    resolved_line,
    resolved_sms,
    summary_of,
)

log = logging.getLogger("errbot.plugins.AttSms")

TOKEN_ENV = "ATT_WEBHOOK_TOKEN"
MAX_BODY = 1024 * 1024
CONFLICT_RETRIES = 5
RESOLVED_BY = "Alertmanager (resolved)"


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()
    #: What was decided about a notification taken (200): open, ignore, repage...
    decision: str | None = None
    #: A page was opened (a new group, or one paged again): its first SMS is due now.
    opened_page: bool = False


@dataclass(frozen=True)
class AlertConfig:
    """What the intake needs of the settings, taken once per request."""

    routes: Mapping[str, AlertRoute]
    repage_after: float
    resolved_sms: bool
    escalate_after: float
    escalate_rounds: int
    #: Whether the SMS a page with this text sends fits MAX_PARTS.
    fits: Callable[[Page], bool]


class _Conflict(Exception):
    """The page changed under the transaction (the poller wrote it): try again."""


class AlertIntake:
    """Turns notifications into pages. Everything it uses comes in through the constructor:
    ``config()`` (None: not configured), ``store()`` (None: not open), ``resolve(store,
    tokens)`` (the numbers ``!sms page`` would text), and the environment for the token."""

    def __init__(
        self,
        *,
        config: Callable[[], AlertConfig | None],
        store: Callable[[], Store | None],
        resolve: Callable[[Store, list[str]], list[str]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._resolve = resolve
        self._env = os.environ if env is None else env
        #: Committed decisions by kind (open, ignore, changed, resolve, repage), this process.
        self.decisions: Counter[str] = Counter()

    def handle(
        self,
        headers: Mapping[str, str],
        query_route: str | None,
        content_length: int | None,
        read: Callable[[int], bytes],
    ) -> Answer:
        token = self._env.get(TOKEN_ENV, "")
        if not token:
            return Answer(
                503, f"alert intake is off: {TOKEN_ENV} is not set in the bot's environment"
            )
        if not _authorised(headers.get("Authorization", ""), token):
            return Answer(401, "missing or wrong Authorization: Bearer token",
                          (("WWW-Authenticate", 'Bearer realm="att_sms"'),))  # fmt: skip
        if content_length is not None and content_length > MAX_BODY:
            return Answer(413, f"body over {MAX_BODY} bytes")
        body = read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return Answer(413, f"body over {MAX_BODY} bytes")
        try:
            notification = parse_notification(body)
        except PayloadError as exc:
            return Answer(400, str(exc))
        config, store = self._config(), self._store()
        if config is None or store is None:
            return Answer(503, "the AttSms plugin is not configured or is being reconfigured")
        name = selected_name(query_route, notification.receiver)
        route = config.routes.get(name)
        if route is None:
            known = ", ".join(sorted(config.routes)) or "none"
            return Answer(404, f"unknown route {name[:64]!r} (ALERT_ROUTES has: {known[:200]})")
        try:
            answer = self._apply(store, config, route, notification)
            if answer.decision is not None:
                self.decisions[answer.decision] += 1
            return answer
        except _Refused as exc:
            return Answer(422, str(exc))
        except Exception as exc:  # the store (or something under it) failed: retry later
            log.exception("AttSms alert %s could not be recorded", notification.group_key[:80])
            return Answer(503, f"the store is unavailable ({type(exc).__name__}); retry")

    # -- one notification -------------------------------------------------------------

    def _apply(
        self, store: Store, config: AlertConfig, route: AlertRoute, notification: Notification
    ) -> Answer:
        builder = None
        if notification.status == FIRING:
            builder = self._builder(store, config, route, notification)
        for _ in range(CONFLICT_RETRIES):
            try:
                with store.transaction() as tx:
                    return self._decide_in(tx, store, config, route, notification, builder)
            except _Conflict:
                continue
        return Answer(503, "the page kept changing; retry")

    def _builder(
        self, store: Store, config: AlertConfig, route: AlertRoute, notification: Notification
    ) -> Callable[[int, float], Page]:
        """Resolve the route's targets and write the text, before the transaction."""
        try:
            recipients = self._resolve(store, split_recipients(route.page))
        except (ArgumentError, ValueError) as exc:
            raise _Refused(f"route {route.name!r}: cannot page {route.page!r}: {exc}") from None
        if not recipients:
            raise _Refused(f"route {route.name!r}: {route.page!r} names nobody")

        def build(number: int, now: float, text: str) -> Page:
            return new_page(
                number, route.room, text, recipients, now, created_by=f"alerts ({route.name})",
                escalate_after=config.escalate_after, rounds=config.escalate_rounds,
            )  # fmt: skip

        try:
            text = page_text(notification, lambda t: config.fits(build(999_999_999, 0.0, t)))
        except ValueError as exc:
            raise _Refused(f"route {route.name!r}: {exc}") from None
        return lambda number, now: build(number, now, text)

    def _decide_in(
        self,
        tx: Tx,
        store: Store,
        config: AlertConfig,
        route: AlertRoute,
        notification: Notification,
        builder: Callable[[int, float], Page] | None,
    ) -> Answer:
        store.lock_alerts(tx)
        now = store.now()
        group = store.alert_group_in(tx, route.name, notification.group_key)
        page = store.page_in(tx, group.page_id) if group else None
        decision = decide(_state(group, page), notification, now, config.repage_after)
        key = notification.group_key
        save = _Saver(store, tx, route, notification, new=group is None)
        if decision.kind in (OPEN_PAGE, REPAGE):
            assert builder is not None
            opened = store.insert_page_in(tx, builder)
            if decision.kind == REPAGE and group is not None:
                line = repaged_line(opened.id, group.page_id, route.name, notification)
            else:
                line = opened_line(opened.id, route.name, notification, route.page)
            store.queue_posts_in(tx, opened, [line])
            save(opened.id, FIRING, opened=True)
            return _answer(decision, f"page {opened.id} opened for group {key[:80]}")
        assert group is not None or decision.kind == IGNORE
        if decision.kind == CHANGED:
            assert group is not None
            if page is not None:
                before = len(group.fingerprints)
                store.queue_posts_in(tx, page, [changed_line(page.id, notification, before)])
            save(group.page_id, FIRING)
            return _answer(decision, f"page {group.page_id}: change posted, nobody paged again")
        if decision.kind == RESOLVE:
            assert group is not None
            self._resolve_in(tx, store, config, group, page, notification)
            save(group.page_id, RESOLVED)
            return _answer(decision, f"page {group.page_id} resolved")
        if group is not None and notification.status == FIRING:
            save(group.page_id, FIRING)
        return _answer(decision, f"nothing to do ({decision.why})")

    @staticmethod
    def _resolve_in(
        tx: Tx,
        store: Store,
        config: AlertConfig,
        group: AlertGroup,
        page: Page | None,
        notification: Notification,
    ) -> None:
        if page is None:
            return
        closing = page.state == OPEN
        if closing:
            closed = cancel(page, RESOLVED_BY, store.now())
            if not store.update_page_in(tx, closed, page.version):
                raise _Conflict
        store.queue_posts_in(tx, page, [resolved_line(page.id, notification, closing)])
        if config.resolved_sms:
            text = resolved_sms(page.id, notification)
            for tel in paged_numbers(page):
                store.owe_sms_in(tx, key=f"resolved:{page.id}:{tel}", page=page, tel=tel, text=text)


class _Refused(Exception):
    """The route cannot page (its targets do not resolve): 422 with the reason."""


class _Saver:
    def __init__(
        self, store: Store, tx: Tx, route: AlertRoute, notification: Notification, new: bool
    ) -> None:
        self._args = (store, tx, route, notification, new)

    def __call__(self, page_id: str, status: str, *, opened: bool = False) -> None:
        store, tx, route, notification, new = self._args
        store.save_alert_group_in(
            tx, route=route.name, group_key=notification.group_key, page_id=page_id,
            status=status, fingerprints=notification.firing_fingerprints,
            summary=summary_of(notification), new=new, opened=opened,
        )  # fmt: skip


def _state(group: AlertGroup | None, page: Page | None) -> GroupState | None:
    if group is None:
        return None
    return GroupState(
        route=group.route, group_key=group.group_key, page_id=group.page_id,
        status=group.status, fingerprints=group.fingerprints,
        page_open=page is not None and page.state == OPEN,
        page_ended_at=page.ended_at if page is not None else 0.0,
    )  # fmt: skip


def _answer(decision: Decision, text: str) -> Answer:
    opened = decision.kind in (OPEN_PAGE, REPAGE)
    return Answer(200, f"{decision.kind}: {text}", decision=decision.kind, opened_page=opened)


def _authorised(header: str, token: str) -> bool:
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
