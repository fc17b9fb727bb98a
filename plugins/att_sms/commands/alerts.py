"""Pages from alerts: the plugin's side. ``POST /att_sms/alerts`` (errbot's Webserver plugin
serves it once configured), ``!sms alerts``, and the poller that sends the SMS owed about
alert pages (resolved notices, acknowledgement answers). The logic is in ``att_sms.alerts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from att_sms.alerts.intake import AlertConfig, AlertIntake, Answer
from att_sms.pages.escalation import Page
from att_sms.pages.escalation_text import sms_text
from att_sms.pages.page_outcomes import ack_word
from att_sms.sending.pipeline import SendRequest
from att_sms.store import Store
from att_sms.text.common import format_elapsed
from att_sms.text.formatting import neutralise
from att_sms.text.splitting import MessageError, plan_message

from .pages import PageDesk
from .runtime import Runtime
from .sending import SendDesk

log = logging.getLogger("errbot.plugins.AttSms")

ALERT_SMS_TICK = 1.0

#: What the endpoint answers: the body, the HTTP status, the headers.
HttpAnswer = tuple[str, int, dict[str, str]]


class AlertDesk:
    """The alerts endpoint, ``!sms alerts`` and the SMS owed about alert pages."""

    def __init__(
        self,
        rt: Runtime,
        pages: PageDesk,
        sending: SendDesk,
        *,
        may_work: Callable[[], bool],
        run_pages_soon: Callable[[], None],
    ) -> None:
        self._rt = rt
        self._pages = pages
        self._sending = sending
        self._may_work = may_work
        self._run_pages_soon = run_pages_soon
        #: The endpoint's logic (its ``decisions`` are read by tests and checks).
        self.intake = AlertIntake(
            config=self._alert_config,
            store=lambda: rt.store,
            resolve=self._alert_targets,
        )

    def _alert_config(self) -> AlertConfig:
        settings = self._rt.settings
        word = ack_word(settings)

        def fits(page: Page) -> bool:
            try:
                plan_message(
                    sms_text(page, word), max_parts=settings.max_parts,
                    smart=settings.smart_characters,
                )  # fmt: skip
            except MessageError:
                return False
            return True

        return AlertConfig(
            routes=settings.alert_routes,
            repage_after=settings.repage_after,
            resolved_sms=settings.resolved_sms,
            escalate_after=settings.escalate_after,
            escalate_rounds=settings.escalate_rounds,
            fits=fits,
        )

    def _alert_targets(self, store: Store, tokens: list[str]) -> list[str]:
        return self._pages.recipients(tokens)

    def webhook(self, request: Any) -> HttpAnswer:
        """``POST /att_sms/alerts``: one notification (errbot's raw request)."""
        answer = self.intake.handle(
            request.headers, request.args.get("route"), request.content_length,
            request.stream.read,
        )  # fmt: skip
        if answer.status == 200 and answer.opened_page:
            # The page's first SMS goes out from the escalation poller's code, now rather
            # than at its next tick (a no-op when a run is already going on).
            self._run_pages_soon()
        return http_answer(answer)

    # ----------------------------------------------------------------- owed SMS

    def owed_sms_tick(self) -> None:
        """Send the SMS owed about alert pages, each at most once. Never raises."""
        try:
            if not self._may_work():
                return
            store = self._rt.store
            for owed in store.pending_owed_sms():
                if not self._rt.current():
                    return
                if not store.claim_owed_sms(owed.id):
                    continue
                request = SendRequest(
                    who=owed.created_by, where=owed.room, text=owed.text,
                    addresses=(owed.tel,), again=True,
                )  # fmt: skip
                try:
                    self._sending.pipeline().deliver(request)
                except Exception:  # claimed: it may have gone out, never sent again
                    log.exception("AttSms SMS %s to %s failed", owed.key, owed.tel)
        except Exception:
            log.exception("AttSms owed SMS run failed unexpectedly")

    # ----------------------------------------------------------------- command

    def alerts(self, msg: Any, args: str) -> str:
        """``!sms alerts``: one line per firing alert group, with its page."""
        store = self._rt.store
        groups = store.alert_groups()
        if not groups:
            return "No firing alert groups."
        now = store.now()
        lines = []
        for group in groups:
            page = store.get_page(group.page_id)
            state = page.state if page is not None else "gone"
            if page is not None and page.acked_by:
                state += f" by {neutralise(store.name_of(page.acked_by) or page.acked_by, max_length=60)}"
            lines.append(
                f"{neutralise(group.summary, max_length=120)} (route {neutralise(group.route, max_length=64)},"
                f" {len(group.fingerprints)} firing, since {format_elapsed(now - group.opened_at)}):"
                f" page {group.page_id} {state}"
            )
        return "\n".join(lines)


def http_answer(answer: Answer) -> HttpAnswer:
    """The intake's answer as errbot's webhook returns it: one line, its status, headers."""
    headers = {"Content-Type": "text/plain; charset=utf-8", **dict(answer.headers)}
    return answer.text + "\n", answer.status, headers


def webhook_unconfigured(request: Any) -> HttpAnswer:
    """``POST /att_sms/alerts`` while the plugin is not configured (or between activations):
    the same checks (token, authorisation, size, payload) as configured, then 503, so that
    Alertmanager retries."""
    intake = AlertIntake(config=lambda: None, store=lambda: None, resolve=_nobody)
    answer = intake.handle(
        request.headers, request.args.get("route"), request.content_length, request.stream.read
    )
    return http_answer(answer)


def _nobody(store: Store, tokens: list[str]) -> list[str]:
    return []  # never called: without a configuration the intake stops before resolving


__all__ = ["ALERT_SMS_TICK", "AlertDesk", "http_answer", "webhook_unconfigured"]
