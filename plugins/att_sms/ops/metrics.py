"""The plugin's Prometheus metrics, in a registry of their own.

Each :class:`Metrics` owns a private :class:`~prometheus_client.CollectorRegistry`: a
plugin that is deactivated and activated again (or two instances in one test process)
would otherwise collide on the global registry ("Duplicated timeseries").

Recording never raises into the caller: a page must not fail because a metric could not
be counted. Label values are bounded (known operations and outcomes, configured
registrations) so that a misbehaving caller cannot grow the series without limit.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "OPERATIONS", "SEND_OUTCOMES", "Metrics"]

log = logging.getLogger(__name__)

PREFIX = "att_sms"
#: What one chat send can come to.
SEND_OUTCOMES = ("sent", "refused", "uncertain", "partial")
#: The carrier exchanges the client reports (anything else is counted as "other").
OPERATIONS = ("token", "send", "status", "inbox")
OTHER = "other"
#: Seconds; the inbox read may wait up to a minute (the client's inbox read timeout).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_LABEL_VALUE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_REGISTRATIONS = 200


def _bounded(value: object, allowed: tuple[str, ...] | None = None) -> str:
    """``value`` as a label value: one of ``allowed`` (or a short identifier), else "other"."""
    text = str(value).strip().lower()
    if allowed is not None:
        return text if text in allowed else OTHER
    return text if _LABEL_VALUE.fullmatch(text) else OTHER


class _Reading:
    """A gauge's value: set directly, or read from a callback at scrape time."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._value = 0.0
        self._source: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self._source = None
        self._value = float(value)

    def follow(self, source: Callable[[], float]) -> None:
        self._source = source

    def read(self) -> float:
        source = self._source
        if source is None:
            return self._value
        try:
            return float(source())
        except Exception as exc:  # a scrape must not fail because one callback did
            log.warning(
                "metric %s: its callback failed: %s: %s", self._name, type(exc).__name__, exc
            )
            return math.nan


class _PollState:
    """Per registration: when it was first watched, its last success, failures in a row."""

    __slots__ = ("watched_since", "last_success", "consecutive_failures")

    def __init__(self, now: float) -> None:
        self.watched_since = now
        self.last_success: float | None = None
        self.consecutive_failures = 0


class _PollCollector(Collector):
    """Poll age and consecutive failures per registration, computed at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        now = self._metrics.clock()
        age = GaugeMetricFamily(
            f"{PREFIX}_poll_age_seconds",
            "Seconds since the registration's last successful inbox poll "
            "(since the bot started watching it, when none succeeded yet).",
            labels=["registration"],
        )
        last = GaugeMetricFamily(
            f"{PREFIX}_poll_last_success_timestamp_seconds",
            "Unix time of the registration's last successful inbox poll.",
            labels=["registration"],
        )
        failures = GaugeMetricFamily(
            f"{PREFIX}_poll_consecutive_failures",
            "Inbox polls of the registration that failed since its last success.",
            labels=["registration"],
        )
        for registration, state in self._metrics.poll_states():
            since = state.last_success if state.last_success is not None else state.watched_since
            age.add_metric([registration], max(0.0, now - since))
            if state.last_success is not None:
                last.add_metric([registration], state.last_success)
            failures.add_metric([registration], state.consecutive_failures)
        yield age
        yield last
        yield failures


class Metrics:
    """Counters, gauges and histograms of one plugin instance; ``render()`` exposes them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._polls: dict[str, _PollState] = {}
        self._build_metrics()
        self._readings = {
            "waiting": self._reading_gauge(
                "inbound_waiting", "Inbound messages stored but not yet posted to chat."
            ),
            "follow_ups": self._reading_gauge(
                "follow_ups_open", "Sends whose delivery is still being followed up."
            ),
            "escalations": self._reading_gauge(
                "escalations_open", "Escalations started and not yet finished."
            ),
            "ready": self._reading_gauge(
                "ready", "1 when the bot is ready (what /readyz answers), else 0."
            ),
        }
        self._readings["ready"].set(1)
        self.registry.register(_PollCollector(self))
        # The labelled series a send touches, looked up once (``labels()`` validates and
        # locks on every call): by outcome, by operation, by (operation, outcome).
        self._sent_by: dict[str, Any] = {o: self._sends.labels(o) for o in (*SEND_OUTCOMES, OTHER)}
        self._latency_by: dict[str, Any] = {}
        self._exchanges_by: dict[tuple[str, str], Any] = {}

    def _build_metrics(self) -> None:
        reg = self.registry
        self._sends = Counter(
            f"{PREFIX}_sends", "Chat sends by outcome.", ["outcome"], registry=reg
        )
        for outcome in (*SEND_OUTCOMES, OTHER):
            self._sends.labels(outcome)
        self._latency = Histogram(
            f"{PREFIX}_carrier_request_duration_seconds",
            "Round trip of carrier exchanges by operation (retries included).",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._exchanges = Counter(
            f"{PREFIX}_carrier_requests",
            "Carrier exchanges by operation and outcome.",
            ["operation", "outcome"],
            registry=reg,
        )
        for operation in OPERATIONS:
            self._latency.labels(operation)
        self._token_fetches = Counter(
            f"{PREFIX}_token_fetches", "OAuth token requests by outcome.", ["outcome"], registry=reg
        )
        self._fetched = Counter(
            f"{PREFIX}_inbound_fetched",
            "Inbound messages taken from the carrier.",
            ["registration"],
            registry=reg,
        )
        self._posted = Counter(
            f"{PREFIX}_inbound_posted",
            "Inbound messages posted to chat.",
            ["registration"],
            registry=reg,
        )
        self._poll_failures = Counter(
            f"{PREFIX}_poll_failures",
            "Inbox polls that failed, by registration.",
            ["registration"],
            registry=reg,
        )

    def _reading_gauge(self, name: str, documentation: str) -> _Reading:
        reading = _Reading(name)
        gauge = Gauge(f"{PREFIX}_{name}", documentation, registry=self.registry)
        gauge.set_function(reading.read)
        return reading

    # ------------------------------------------------------------------ sends

    def record_send(self, outcome: str) -> None:
        """Count one chat send: ``sent``, ``refused``, ``uncertain`` or ``partial``."""
        label = _bounded(outcome, SEND_OUTCOMES)
        if label == OTHER:
            log.warning("metrics: unknown send outcome %r counted as %r", outcome, OTHER)
        self._sent_by[label].inc()

    # ---------------------------------------------------------------- carrier

    def observe_exchange(self, operation: str, seconds: float, outcome: str) -> None:
        """The client's observer: one carrier exchange took ``seconds`` and ended in ``outcome``.

        ``operation`` is one of :data:`OPERATIONS`; ``outcome`` a short word such as
        ``ok``, ``refused``, ``unavailable``, ``timeout``. A ``token`` exchange is also
        counted as a token fetch.
        """
        try:
            op = _bounded(operation, OPERATIONS)
            result = _bounded(outcome)
            elapsed = float(seconds)
            latency = self._latency_by.get(op)
            if latency is None:
                latency = self._latency_by[op] = self._latency.labels(op)
            latency.observe(elapsed if elapsed >= 0 else 0.0)
            exchanges = self._exchanges_by.get((op, result))
            if exchanges is None:
                exchanges = self._exchanges_by[op, result] = self._exchanges.labels(op, result)
            exchanges.inc()
            if op == "token":
                self._token_fetches.labels(result).inc()
        except Exception:  # the client's request must never fail on a metric
            log.warning("metrics: could not record a carrier exchange", exc_info=True)

    # ---------------------------------------------------------------- inbound

    def inbound_fetched(self, registration: str, count: int = 1) -> None:
        """``count`` inbound messages were taken from the carrier for ``registration``."""
        if count > 0 and self._known(registration):
            self._fetched.labels(registration).inc(count)

    def inbound_posted(self, registration: str, count: int = 1) -> None:
        """``count`` inbound messages of ``registration`` were posted to chat."""
        if count > 0 and self._known(registration):
            self._posted.labels(registration).inc(count)

    def inbound_waiting_from(self, source: Callable[[], float]) -> None:
        """Read the waiting count from ``source()`` at every scrape (must be quick)."""
        self._readings["waiting"].follow(source)

    def set_follow_ups_open(self, count: float) -> None:
        """Open follow-ups (replaces any callback)."""
        self._readings["follow_ups"].set(count)

    def follow_ups_open_from(self, source: Callable[[], float]) -> None:
        """Read the open follow-ups from ``source()`` at every scrape."""
        self._readings["follow_ups"].follow(source)

    def set_escalations_open(self, count: float) -> None:
        """Open escalations (replaces any callback)."""
        self._readings["escalations"].set(count)

    def escalations_open_from(self, source: Callable[[], float]) -> None:
        """Read the open escalations from ``source()`` at every scrape."""
        self._readings["escalations"].follow(source)

    def ready_from(self, readiness: Callable[[], tuple[bool, str]]) -> None:
        """Expose ``readiness()`` (the ``/readyz`` callable) as ``att_sms_ready`` 1 or 0."""

        def ready() -> float:
            try:
                return 1.0 if readiness()[0] else 0.0
            except Exception as exc:  # as /readyz does: a failing check is "not ready"
                log.warning("metrics: the readiness check failed: %s", type(exc).__name__)
                return 0.0

        self._readings["ready"].follow(ready)

    # ------------------------------------------------------------------ polls

    def track_registrations(self, registrations: Iterable[str]) -> None:
        """Watch exactly these registrations (the configured routes); forget any other.

        Their series start at zero now, so that rate and age alerts see them before
        the first poll.
        """
        wanted = list(dict.fromkeys(registrations))[:_MAX_REGISTRATIONS]
        now = self.clock()
        with self._lock:
            for gone in set(self._polls) - set(wanted):
                del self._polls[gone]
                for counter in (self._fetched, self._posted, self._poll_failures):
                    _remove_label(counter, gone)
            for registration in wanted:
                if registration not in self._polls:
                    self._polls[registration] = _PollState(now)
                    for counter in (self._fetched, self._posted, self._poll_failures):
                        counter.labels(registration)

    def poll_succeeded(self, registration: str, at: float | None = None) -> None:
        """An inbox poll of ``registration`` worked (at ``at``, default now)."""
        when = self.clock() if at is None else at
        with self._lock:
            state = self._state(registration, when)
            if state is not None:
                state.last_success = when
                state.consecutive_failures = 0

    def poll_failed(self, registration: str) -> None:
        """An inbox poll of ``registration`` failed."""
        with self._lock:
            state = self._state(registration, self.clock())
            if state is None:
                return
            state.consecutive_failures += 1
        self._poll_failures.labels(registration).inc()

    def poll_states(self) -> list[tuple[str, _PollState]]:
        """A copy of the per-registration poll state, by registration."""
        with self._lock:
            return [(reg, _copy(state)) for reg, state in sorted(self._polls.items())]

    def _state(self, registration: str, now: float) -> _PollState | None:
        """The registration's state, created on first sight (caller holds the lock)."""
        state = self._polls.get(registration)
        if state is None and len(self._polls) < _MAX_REGISTRATIONS:
            state = self._polls[registration] = _PollState(now)
        return state

    def _known(self, registration: str) -> bool:
        with self._lock:
            return self._state(registration, self.clock()) is not None

    # ----------------------------------------------------------------- render

    def render(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _copy(state: _PollState) -> _PollState:
    copy = _PollState(state.watched_since)
    copy.last_success = state.last_success
    copy.consecutive_failures = state.consecutive_failures
    return copy


def _remove_label(counter: Counter, value: str) -> None:
    try:
        counter.remove(value)
    except KeyError:
        pass
