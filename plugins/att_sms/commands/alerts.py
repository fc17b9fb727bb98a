"""Pages from alerts: the errbot side. ``POST /att_sms/alerts`` (errbot's Webserver plugin
serves it once configured), ``!sms alerts``, and the poller that sends the SMS owed about
alert pages (resolved notices, acknowledgement answers). The logic is in ``att_sms.alerts``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from errbot import botcmd, webhook

from att_sms.alerts.intake import AlertConfig, AlertIntake
from att_sms.pages.escalation import Page
from att_sms.pages.escalation_text import sms_text
from att_sms.pages.page_outcomes import ack_word
from att_sms.sending.pipeline import NotActive, SendRequest
from att_sms.store import Store
from att_sms.text.common import format_elapsed
from att_sms.text.formatting import neutralise
from att_sms.text.splitting import MessageError, plan_message

log = logging.getLogger("errbot.plugins.AttSms")

ALERT_SMS_TICK = 1.0


class AlertCommands:
    """Mixed into the AttSms plugin: the alerts endpoint, ``!sms alerts``, owed SMS."""

    def _alert_intake(self) -> AlertIntake:
        intake = self.__dict__.get("_att_alert_intake")
        if intake is None:
            intake = AlertIntake(
                config=self._alert_config,
                store=lambda: self._sms_store,
                resolve=self._alert_targets,
            )
            self.__dict__["_att_alert_intake"] = intake
        return intake

    def _alert_config(self) -> AlertConfig | None:
        settings = self._settings
        if settings is None:
            return None
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
        return self._page_recipients(self._context(), tokens)

    @webhook("/att_sms/alerts", methods=("POST",), raw=True)
    def att_sms_alerts(self, request: Any) -> tuple[str, int, dict[str, str]]:
        """Alertmanager's / Grafana's webhook (see docs/ALERTS.md)."""
        self._begin_command()
        try:
            answer = self._alert_intake().handle(
                request.headers, request.args.get("route"), request.content_length,
                request.stream.read,
            )  # fmt: skip
        except NotActive:
            return "the AttSms plugin is being reconfigured; retry\n", 503, {}
        finally:
            self._end_command()
        if answer.status == 200 and answer.text.startswith(("open:", "repage:")):
            # The page's first SMS goes out from the escalation poller's code, now rather
            # than at its next tick (a no-op when a run is already going on).
            threading.Thread(
                target=self._pages_tick, args=(self._generation,), name="AttSms alert page",
                daemon=True,
            ).start()  # fmt: skip
        headers = {"Content-Type": "text/plain; charset=utf-8", **dict(answer.headers)}
        return answer.text + "\n", answer.status, headers

    # ----------------------------------------------------------------- owed SMS

    def _alert_sms_tick(self, generation: int) -> None:
        """Send the SMS owed about alert pages, each at most once. Never raises."""
        if generation != self._generation or self._settings is None:
            return
        self._begin_command()
        try:
            if not self._may_work():
                return
            ctx = self._context()
            for owed in ctx.store.pending_owed_sms():
                if generation != self._generation:
                    return
                if not ctx.store.claim_owed_sms(owed.id):
                    continue
                request = SendRequest(
                    who=owed.created_by, where=owed.room, text=owed.text,
                    addresses=(owed.tel,), again=True,
                )  # fmt: skip
                try:
                    self._send_pipeline(ctx).deliver(request)
                except Exception:  # claimed: it may have gone out, never sent again
                    log.exception("AttSms SMS %s to %s failed", owed.key, owed.tel)
        except NotActive:
            return
        except Exception:
            log.exception("AttSms owed SMS run failed unexpectedly")
        finally:
            self._end_command()

    # ----------------------------------------------------------------- command

    @botcmd
    def sms_alerts(self, msg: Any, args: str) -> str:
        """The alert groups still firing, with their pages (from Alertmanager or Grafana)."""
        if self._settings is None:
            return self._not_configured()
        store = self._sms_store
        if store is None:
            return "Alerts not available: the plugin is being reconfigured; try again."
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


__all__ = ["AlertCommands"]
