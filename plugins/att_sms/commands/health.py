"""``!sms health``, the metrics endpoint and the room alerts (see docs/OPERATIONS.md).

``att_sms.ops.health`` judges; :class:`HealthDesk` gathers what it judges: the inbound
poller's per-registration ``RouteState``, the store, the client's token cache and a
reachability check of the carrier. The metrics are the runtime's (``att_sms.ops.metrics``);
the endpoint is a ``MetricsServer`` of the plugin's own, on ``METRICS_PORT``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

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

from .inbound import MAX_BACKOFF, InboundPoller
from .runtime import Runtime

log = logging.getLogger("errbot.plugins.AttSms")

HEALTH_TICK = 1.0  # how often leadership and the poll alerts are checked (no I/O unless due)
ALERT_RETRY = 30.0  # an alert the chat did not take is tried again after this long
SCRAPE_CACHE = 1.0  # seconds the store's counts are shared by /metrics, /readyz and gauges
AUDIT_SCAN = 1000  # newest audit entries read to count the last hour's sends
ERROR_LENGTH = 120
#: Audit outcomes as ``!sms health`` and the metrics name them, in the order shown.
SEND_ORDER = ("sent", "refused", "uncertain", "partial")
_OUTCOME_NAMES = {"failed": "refused"}
_PROBE_KEY = "health_probe"


class HealthDesk:
    """``!sms health``, the metrics endpoint and the room alerts about polling."""

    def __init__(
        self, rt: Runtime, inbound: InboundPoller, *, may_work: Callable[[], bool]
    ) -> None:
        self._rt = rt
        self._inbound = inbound
        self._may_work = may_work
        settings = rt.settings
        #: None: polling is off, nothing can be stuck.
        self.stuck_after: float | None = (
            stuck_bound(settings.poll_interval, MAX_BACKOFF) if settings.poll_interval > 0 else None
        )
        #: When this replica began polling (activation, or taking the leader lease); None
        #: while another replica polls.
        self._polling_since: float | None = None
        self._poll_alerts = PollAlerts(settings.alert_after) if settings.alert_after > 0 else None
        self._unposted_alerts: dict[str, tuple[PollAlert, float]] = {}
        #: The store's counts for /metrics and /readyz: one read per SCRAPE_CACHE seconds.
        self._scrape_read = SharedRead(self._read_gauges, SCRAPE_CACHE)
        self._metrics_server: MetricsServer | None = None
        #: Between start() and stop(): the gauges and /readyz read the store.
        self._active = False

    def start(self) -> None:
        """Feed the gauges and start the metrics endpoint. The caller runs :meth:`tick`
        every ``HEALTH_TICK`` seconds when there are inbox routes."""
        self._active = True
        self._polling_since = time.time() if self._may_work() else None
        metrics = self._rt.metrics
        metrics.inbound_waiting_from(self._waiting_count)
        metrics.follow_ups_open_from(self._follow_ups_count)
        metrics.escalations_open_from(self._escalations_count)
        metrics.ready_from(self._readiness)
        self._start_metrics_server(self._rt.settings)

    def stop(self) -> None:
        """Stop the metrics endpoint (the alert poller stops with the plugin's pollers)."""
        self._active = False
        server, self._metrics_server = self._metrics_server, None
        if server is not None:
            server.stop()
        self._unposted_alerts = {}

    def _start_metrics_server(self, settings: Settings) -> None:
        if settings.metrics_port <= 0:
            return
        server = MetricsServer(
            self._rt.metrics.render, self._readiness, settings.metrics_host, settings.metrics_port
        )
        try:
            server.start()
        except MetricsServerError as exc:
            log.error("AttSms metrics endpoint not started: %s", exc)
            return
        self._metrics_server = server

    # ----------------------------------------------------------------- !sms health

    def health(self, msg: Any, args: str) -> str:
        """!sms health: problems first, then what is fine."""
        snapshot = self._health_snapshot(self._rt.client, self._rt.store)
        polling = self._polling_since is not None
        note = "" if polling else "the inbox is polled by another replica (see !sms replicas)"
        return format_health(
            snapshot,
            time.time(),
            self.stuck_after if polling else None,
            more_problems=self._posting_problems(),
            note=note,
        )

    def _health_snapshot(self, client: AttSmsClient, store: Store) -> HealthSnapshot:
        carrier = _check_carrier(client)
        store_health = self._store_health(store, with_size=True)
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
            for reg, problem in sorted(dict(self._inbound.post_problems).items())
        ]

    # ----------------------------------------------------------------- shared facts

    def _registrations(self) -> tuple[RegistrationHealth, ...]:
        """Each configured registration's polling, from the poller's own state."""
        rooms = self._rt.settings.inbox_routes
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
            for reg, state in sorted(dict(self._inbound.routes).items())
        )

    @staticmethod
    def _store_health(store: Store, *, with_size: bool) -> StoreHealth:
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
        stuck_after = self.stuck_after
        polling = stuck_after is not None and self._polling_since is not None
        snapshot = HealthSnapshot(
            store=self._scraped_store_health(),
            registrations=self._registrations() if polling else (),
        )
        return readiness(snapshot, time.time(), math.inf if stuck_after is None else stuck_after)

    # ----------------------------------------------------------------- gauges

    def _read_gauges(self) -> StoreGauges:
        if not self._active:
            raise NotActive()
        return read_gauges(self._rt.store)

    def _scraped(self) -> StoreGauges:
        """The store's counts, read at most once per SCRAPE_CACHE seconds (raises its error)."""
        if not self._active:
            raise NotActive()
        return self._scrape_read.get()

    def _scraped_store_health(self) -> StoreHealth:
        if not self._active:
            return StoreHealth("none", usable=False, error="the plugin is not active")
        store = self._rt.store
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

    def tick(self) -> None:
        """Note whether this replica polls; check the poll alerts. Never raises."""
        try:
            if not self._may_work():
                self._polling_since = None  # the leader polls; its alerts are its own
                return
            if self._polling_since is None:
                self._polling_since = time.time()
            self._alert_check()
        except Exception:  # the poller must survive anything
            log.exception("AttSms health check failed")

    def _alert_check(self) -> None:
        """Say in a registration's room when its polling has failed too long, and when it is back."""
        alerts = self._poll_alerts
        if alerts is None:
            return
        routes = dict(self._inbound.routes)
        failing = {reg: state.first_failure for reg, state in routes.items()}
        errors = {
            reg: echo(state.problem, ERROR_LENGTH) for reg, state in routes.items() if state.problem
        }
        for alert in alerts.check_all(failing, time.time(), errors):
            self._queue_alert(alert)
        self._post_alerts(self._rt.settings)

    def _queue_alert(self, alert: PollAlert) -> None:
        held = self._unposted_alerts.pop(alert.registration, None)
        if held is not None and held[0].kind == "down" and alert.kind == "recovered":
            return  # the room never heard it was down: nothing to take back
        self._unposted_alerts[alert.registration] = (alert, 0.0)

    def _post_alerts(self, settings: Settings) -> None:
        now = time.monotonic()
        for reg, (alert, retry_at) in list(self._unposted_alerts.items()):
            if not self._rt.current():
                return
            if now < retry_at:
                continue
            target = settings.inbox_routes.get(reg)
            if target is None:
                del self._unposted_alerts[reg]
                continue
            try:
                post_confirmed(self._rt.bot, self._rt.build_identifier(target), alert.text)
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
