"""``!sms health``, the metrics endpoint and the room alerts (see docs/OPERATIONS.md).

``att_sms.ops.health`` judges; this mixin gathers what it judges from the plugin itself: the
poller's per-registration ``RouteState``, the store, the client's token cache and a
reachability check of the carrier. The metrics are ``self.metrics`` (``att_sms.ops.metrics``);
the endpoint is a ``MetricsServer`` of the plugin's own, on ``METRICS_PORT``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from errbot import botcmd

from att_sms.carrier.client import AttSmsClient
from att_sms.carrier.errors import AttSmsError
from att_sms.chat.chat_posting import PostFailed, post_confirmed
from att_sms.ops.health import (
    CarrierCheck,
    HealthSnapshot,
    RegistrationHealth,
    StoreHealth,
    TokenState,
    count_sends,
    format_health,
    readiness,
    stuck_bound,
)
from att_sms.ops.metrics_server import MetricsServer, MetricsServerError
from att_sms.ops.poll_alerts import PollAlert, PollAlerts
from att_sms.ops.read_cache import SharedRead
from att_sms.sending.pipeline import NotActive
from att_sms.settings import Settings
from att_sms.store import Store
from att_sms.store.gauges import StoreGauges, read_gauges
from att_sms.text.formatting import echo

from .inbound import MAX_BACKOFF

log = logging.getLogger("errbot.plugins.AttSms")

HEALTH_TICK = 1.0  # how often leadership and the poll alerts are checked (no I/O unless due)
ALERT_RETRY = 30.0  # an alert the chat did not take is tried again after this long
SCRAPE_CACHE = 1.0  # seconds the store's counts are shared by /metrics, /readyz and gauges
AUDIT_SCAN = 1000  # newest audit entries read to count the last hour's sends
ERROR_LENGTH = 120
#: Audit outcomes as ``!sms health`` and the metrics name them, in the order shown.
SEND_ORDER = ("sent", "refused", "uncertain", "partial")
_OUTCOME_NAMES = {"failed": "refused"}
_PROBLEMS = "PROBLEMS: "
_PROBE_KEY = "health_probe"


class HealthCommands:
    """Mixed into the AttSms plugin: ``!sms health``, the metrics endpoint, poll alerts."""

    _metrics_server: MetricsServer | None = None
    _stuck_after: float | None = None  # None: polling is off, nothing can be stuck
    #: When this replica began polling (activation, or taking the leader lease); None
    #: while another replica polls.
    _polling_since: float | None = None
    _poll_alerts: PollAlerts | None = None
    _unposted_alerts: dict[str, tuple[PollAlert, float]]  # set by _start_health
    #: The store's counts for /metrics and /readyz: one read per SCRAPE_CACHE seconds.
    _scrape_read: SharedRead[StoreGauges] | None = None

    def _start_health(self, generation: int) -> None:
        """Feed the gauges, start the metrics endpoint and the poll-alert checks."""
        settings: Settings = self._settings
        self._polling_since = time.time() if self._may_work() else None
        self._stuck_after = (
            stuck_bound(settings.poll_interval, MAX_BACKOFF) if settings.poll_interval > 0 else None
        )
        self._poll_alerts = PollAlerts(settings.alert_after) if settings.alert_after > 0 else None
        self._unposted_alerts = {}
        self._scrape_read = SharedRead(self._read_gauges, SCRAPE_CACHE)
        self.metrics.inbound_waiting_from(self._waiting_count)
        self.metrics.follow_ups_open_from(self._follow_ups_count)
        self.metrics.escalations_open_from(self._escalations_count)
        self.metrics.ready_from(self._readiness)
        self._start_metrics_server(settings)
        if settings.inbox_routes:
            self.start_poller(HEALTH_TICK, self._health_tick, args=(generation,))

    def _stop_health(self) -> None:
        """Stop the metrics endpoint (the alert poller stops with the plugin's pollers)."""
        server, self._metrics_server = self._metrics_server, None
        if server is not None:
            server.stop()
        self._unposted_alerts = {}

    def _start_metrics_server(self, settings: Settings) -> None:
        if settings.metrics_port <= 0:
            return
        server = MetricsServer(
            self.metrics.render, self._readiness, settings.metrics_host, settings.metrics_port
        )
        try:
            server.start()
        except MetricsServerError as exc:
            log.error("AttSms metrics endpoint not started: %s", exc)
            return
        self._metrics_server = server

    # ----------------------------------------------------------------- !sms health

    @botcmd
    def sms_health(self, msg: Any, args: str) -> str:
        """The bot's health at a glance, problems first: carrier, token, polls, posts, sends, store."""
        if self._settings is None:
            return self._not_configured()
        self._begin_command()
        try:
            ctx = self._context()
            snapshot = self._health_snapshot(ctx.client, ctx.store)
        except NotActive:
            return "Health not available: the plugin is being reconfigured; try again."
        finally:
            self._end_command()
        polling = self._polling_since is not None
        text = format_health(snapshot, time.time(), self._stuck_after if polling else None)
        note = "" if polling else "the inbox is polled by another replica (see !sms replicas)"
        return _amend(text, self._posting_problems(), note)

    def _health_snapshot(self, client: AttSmsClient, store: Store) -> HealthSnapshot:
        carrier = _check_carrier(client)
        store_health = self._store_health(with_size=True)
        waiting, oldest, follow_ups, escalations, sends = 0, None, 0, None, {}
        if store_health.usable:
            try:
                pending = store.pending()
                waiting = len(pending)
                oldest = pending[0].fetched_at if pending else None
                follow_ups = store.follow_up_count()
                escalations = _open_escalations(store)
                sends = _sends_last_hour(store)
            except Exception as exc:  # the store failed between the probe and now
                store_health = _unusable(store, exc)
        return HealthSnapshot(
            store=store_health,
            carrier=carrier,
            token=_token_state(client, carrier.reachable),
            registrations=self._registrations(),
            waiting_posts=waiting,
            oldest_waiting=oldest,
            follow_ups_open=follow_ups,
            escalations_open=escalations,
            sends_last_hour=sends,
        )

    def _posting_problems(self) -> list[str]:
        """Why inbound messages are held back, per registration (the last posting run's view)."""
        return [
            f"registration {reg}: inbound not posted: {echo(problem, ERROR_LENGTH)}"
            for reg, problem in sorted(dict(self._post_problems).items())
        ]

    # ----------------------------------------------------------------- shared facts

    def _registrations(self) -> tuple[RegistrationHealth, ...]:
        """Each configured registration's polling, from the poller's own state."""
        settings = self._settings
        rooms = settings.inbox_routes if settings is not None else {}
        since = self._polling_since or time.time()
        return tuple(
            RegistrationHealth(
                registration=reg,
                watched_since=since,
                last_success=state.last_ok,
                consecutive_failures=state.failures,
                backoff=float(getattr(state, "backoff", 0.0) or 0.0),
                last_error=echo(state.problem, ERROR_LENGTH) if state.problem else None,
                room=rooms.get(reg),
            )
            for reg, state in sorted(dict(self._routes).items())
        )

    def _store_health(self, *, with_size: bool) -> StoreHealth:
        store = self._sms_store
        if store is None:
            return StoreHealth("none", usable=False, error="the plugin is not active")
        try:
            store.get_meta(_PROBE_KEY)  # one small read: the database answers
            size = store.size_bytes() if with_size else None
        except Exception as exc:
            return _unusable(store, exc)
        return StoreHealth(store.database.dialect, size)

    def _readiness(self) -> tuple[bool, str]:
        """What ``/readyz`` answers: the store works and no registration's polling is stuck.

        Polling counts only on the replica that polls (a standby has nothing to be stuck).
        """
        stuck_after = self._stuck_after
        polling = stuck_after is not None and self._polling_since is not None
        snapshot = HealthSnapshot(
            store=self._scraped_store_health(),
            registrations=self._registrations() if polling else (),
        )
        return readiness(snapshot, time.time(), math.inf if stuck_after is None else stuck_after)

    # ----------------------------------------------------------------- gauges

    def _read_gauges(self) -> StoreGauges:
        store = self._sms_store
        if store is None:
            raise NotActive()
        return read_gauges(store)

    def _scraped(self) -> StoreGauges:
        """The store's counts, read at most once per SCRAPE_CACHE seconds (raises its error)."""
        shared = self._scrape_read
        if shared is None:
            raise NotActive()
        return shared.get()

    def _scraped_store_health(self) -> StoreHealth:
        store = self._sms_store
        if store is None:
            return StoreHealth("none", usable=False, error="the plugin is not active")
        try:
            self._scraped()
        except NotActive:
            return StoreHealth("none", usable=False, error="the plugin is not active")
        except Exception as exc:
            return _unusable(store, exc)
        return StoreHealth(store.database.dialect)

    def _gauge(self, name: str) -> float:
        """One of the store's counts; NaN when inactive (a store error: the metrics log it)."""
        try:
            return float(getattr(self._scraped(), name))
        except NotActive:
            return math.nan

    def _waiting_count(self) -> float:
        return self._gauge("waiting")

    def _follow_ups_count(self) -> float:
        return self._gauge("follow_ups")

    def _escalations_count(self) -> float:
        return self._gauge("escalations")

    # ----------------------------------------------------------------- the tick

    def _health_tick(self, generation: int) -> None:
        """Note whether this replica polls; check the poll alerts. Never raises."""
        if generation != self._generation or self._settings is None:
            return
        try:
            if not self._may_work():
                self._polling_since = None  # the leader polls; its alerts are its own
                return
            if self._polling_since is None:
                self._polling_since = time.time()
            self._alert_check(generation)
        except Exception:  # the poller must survive anything
            log.exception("AttSms health check failed")

    def _alert_check(self, generation: int) -> None:
        """Say in a registration's room when its polling has failed too long, and when it is back."""
        alerts, settings = self._poll_alerts, self._settings
        if alerts is None or settings is None:
            return
        routes = dict(self._routes)
        failing = {reg: state.first_failure for reg, state in routes.items()}
        errors = {
            reg: echo(state.problem, ERROR_LENGTH) for reg, state in routes.items() if state.problem
        }
        for alert in alerts.check_all(failing, time.time(), errors):
            self._queue_alert(alert)
        self._post_alerts(generation, settings)

    def _queue_alert(self, alert: PollAlert) -> None:
        held = self._unposted_alerts.pop(alert.registration, None)
        if held is not None and held[0].kind == "down" and alert.kind == "recovered":
            return  # the room never heard it was down: nothing to take back
        self._unposted_alerts[alert.registration] = (alert, 0.0)

    def _post_alerts(self, generation: int, settings: Settings) -> None:
        now = time.monotonic()
        for reg, (alert, retry_at) in list(self._unposted_alerts.items()):
            if generation != self._generation:
                return
            if now < retry_at:
                continue
            target = settings.inbox_routes.get(reg)
            if target is None:
                del self._unposted_alerts[reg]
                continue
            try:
                post_confirmed(self._bot, self.build_identifier(target), alert.text)
            except Exception as exc:  # PostFailed, or the backend refusing the identifier
                wait = getattr(exc, "retry_after", None) or ALERT_RETRY
                self._unposted_alerts[reg] = (alert, now + wait)
                reason = exc.reason if isinstance(exc, PostFailed) else type(exc).__name__
                log.warning("AttSms %s alert for %s not posted yet: %s", alert.kind, reg, reason)
                continue
            log.warning("AttSms said in %s: inbound of %s %s", target, reg, alert.kind)
            del self._unposted_alerts[reg]


def _check_carrier(client: AttSmsClient) -> CarrierCheck:
    try:
        return CarrierCheck(True, round_trip=client.check_reachable())
    except AttSmsError as exc:
        return CarrierCheck(False, error=echo(str(exc), ERROR_LENGTH))


def _token_state(client: AttSmsClient, reachable: bool) -> TokenState:
    """The cached token; when none is cached and the carrier answers, one is fetched now."""
    if reachable:
        try:
            client.ensure_token()
        except AttSmsError:
            pass  # the token status below carries the failure
    status = client.token_status()
    if status.seconds_left is not None:
        return TokenState(valid=True, seconds_left=status.seconds_left)
    if status.error:
        return TokenState(valid=False, error=echo(status.error, ERROR_LENGTH))
    return TokenState()


def _unusable(store: Store, exc: Exception) -> StoreHealth:
    return StoreHealth(store.database.dialect, usable=False, error=f"{type(exc).__name__}: {exc}")


def _open_escalations(store: Store) -> int:
    """Open escalating pages."""
    return len(store.open_pages())



def _sends_last_hour(store: Store) -> dict[str, int]:
    """Sends per outcome in the last hour, named as the metrics name them."""
    counts: dict[str, int] = {}
    for outcome, count in count_sends(store.last_audit(AUDIT_SCAN), store.now()).items():
        name = _OUTCOME_NAMES.get(outcome, outcome)
        counts[name] = counts.get(name, 0) + count
    rank = {name: i for i, name in enumerate(SEND_ORDER)}
    return dict(sorted(counts.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _amend(text: str, problems: list[str], note: str) -> str:
    """``format_health``'s answer with more ``problems`` first and ``note`` on the OK line."""
    lines = text.split("\n")
    if note:
        lines[-1] = f"{lines[-1]}, {note}"
    if problems and lines[0].startswith(_PROBLEMS):
        lines[0] = f"{lines[0]}; {'; '.join(problems)}"
    elif problems:
        lines.insert(0, _PROBLEMS + "; ".join(problems))
    return "\n".join(lines)
