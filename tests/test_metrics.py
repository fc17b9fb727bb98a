"""Metrics and probes read back over real HTTP from the plugin's own metrics server.

The exposition is parsed with prometheus_client's own parser; the carrier figures come
from a real client talking to the carrier sandbox.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import requests
from att_sms.carrier.client import AttSmsClient
from att_sms.carrier.errors import AttSmsError
from att_sms.ops.health import HealthSnapshot, RegistrationHealth, StoreHealth, readiness
from att_sms.ops.metrics import Metrics
from att_sms.ops.metrics_server import MetricsServer, MetricsServerError
from prometheus_client.parser import text_string_to_metric_families

INBOX = "/sms/v3/messaging/inbox"


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_776_592_800.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(clock=clock)


@pytest.fixture
def serve() -> Iterator[Callable[..., MetricsServer]]:
    """Start metrics servers on free loopback ports; all stopped at teardown."""
    servers: list[MetricsServer] = []

    def start(render: Callable[[], tuple[bytes, str]], ready=lambda: (True, "ready")):
        server = MetricsServer(render, ready, host="127.0.0.1", port=0).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of one GET /metrics."""
    response = requests.get(server.url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_every_metric_reads_back_over_http(
    metrics: Metrics, clock: Clock, serve: Callable[..., MetricsServer]
) -> None:
    server = serve(metrics.render)
    metrics.track_registrations(["reg-a", "reg-b"])
    for outcome in ("sent", "sent", "uncertain", "refused", "partial"):
        metrics.record_send(outcome)
    metrics.observe_exchange("send", 0.2, "ok")
    metrics.observe_exchange("send", 3.0, "http_503")
    metrics.observe_exchange("token", 0.03, "ok")
    metrics.inbound_fetched("reg-a", 3)
    metrics.inbound_posted("reg-a", 2)
    waiting = [4]
    metrics.inbound_waiting_from(lambda: waiting[0])
    metrics.set_follow_ups_open(2)
    metrics.set_escalations_open(1)
    metrics.poll_succeeded("reg-a")
    metrics.poll_failed("reg-b")
    metrics.poll_failed("reg-b")
    clock.now += 90

    s = scrape(server)
    assert value(s, "att_sms_sends_total", outcome="sent") == 2
    assert value(s, "att_sms_sends_total", outcome="uncertain") == 1
    assert value(s, "att_sms_sends_total", outcome="refused") == 1
    assert value(s, "att_sms_sends_total", outcome="partial") == 1
    name = "att_sms_carrier_request_duration_seconds"
    assert value(s, f"{name}_count", operation="send") == 2
    assert value(s, f"{name}_sum", operation="send") == pytest.approx(3.2)
    assert value(s, f"{name}_bucket", operation="send", le="0.25") == 1
    assert value(s, f"{name}_bucket", operation="send", le="5.0") == 2
    assert value(s, f"{name}_count", operation="inbox") == 0  # present before any poll
    assert value(s, "att_sms_carrier_requests_total", operation="send", outcome="http_503") == 1
    assert value(s, "att_sms_token_fetches_total", outcome="ok") == 1
    assert value(s, "att_sms_inbound_fetched_total", registration="reg-a") == 3
    assert value(s, "att_sms_inbound_fetched_total", registration="reg-b") == 0
    assert value(s, "att_sms_inbound_posted_total", registration="reg-a") == 2
    assert value(s, "att_sms_inbound_waiting") == 4
    assert value(s, "att_sms_follow_ups_open") == 2
    assert value(s, "att_sms_escalations_open") == 1
    assert value(s, "att_sms_poll_age_seconds", registration="reg-a") == 90
    assert value(s, "att_sms_poll_age_seconds", registration="reg-b") == 90  # never succeeded
    assert value(s, "att_sms_poll_last_success_timestamp_seconds", registration="reg-a") == (
        clock.now - 90
    )
    assert ("att_sms_poll_last_success_timestamp_seconds", (("registration", "reg-b"),)) not in s
    assert value(s, "att_sms_poll_failures_total", registration="reg-b") == 2
    assert value(s, "att_sms_poll_consecutive_failures", registration="reg-b") == 2

    waiting[0] = 0  # the callback is read at every scrape
    metrics.poll_succeeded("reg-b")
    clock.now += 5
    s = scrape(server)
    assert value(s, "att_sms_inbound_waiting") == 0
    assert value(s, "att_sms_poll_age_seconds", registration="reg-b") == 5
    assert value(s, "att_sms_poll_consecutive_failures", registration="reg-b") == 0
    assert value(s, "att_sms_poll_failures_total", registration="reg-b") == 2


def test_client_observer_against_the_sandbox(
    sandbox, client_id: str, client_secret: str, metrics: Metrics, serve
) -> None:
    sandbox.add_registration("reg-a")
    sandbox.add_fault(INBOX, status=503, count=1)
    client = AttSmsClient(
        sandbox.base_url,
        client_id,
        client_secret,
        get_retries=0,
        observer=metrics.observe_exchange,
    )
    with client:
        client.send(["tel:+12125551234"], "disk full on db-1")
        with pytest.raises(AttSmsError):
            client.fetch_inbound("reg-a")
        client.fetch_inbound("reg-a")
    s = scrape(serve(metrics.render))
    assert value(s, "att_sms_token_fetches_total", outcome="ok") == 1
    assert value(s, "att_sms_carrier_requests_total", operation="send", outcome="ok") == 1
    assert value(s, "att_sms_carrier_requests_total", operation="inbox", outcome="http_503") == 1
    assert value(s, "att_sms_carrier_requests_total", operation="inbox", outcome="ok") == 1
    assert value(s, "att_sms_carrier_request_duration_seconds_count", operation="inbox") == 2
    assert 0 < value(s, "att_sms_carrier_request_duration_seconds_sum", operation="token") < 5


def test_two_instances_do_not_clash(clock: Clock) -> None:
    first, second = Metrics(clock=clock), Metrics(clock=clock)
    first.record_send("sent")
    assert b'att_sms_sends_total{outcome="sent"} 1.0' in first.render()[0]
    assert b'att_sms_sends_total{outcome="sent"} 0.0' in second.render()[0]


def test_bad_input_is_bounded_and_never_raises(metrics: Metrics) -> None:
    metrics.observe_exchange("Mystery Op", -1.0, "Weird Outcome!")
    metrics.observe_exchange("send", float("nan"), "ok")
    metrics.observe_exchange("send", "slow", "ok")  # type: ignore[arg-type]
    metrics.record_send("exploded")
    metrics.follow_ups_open_from(lambda: 1 / 0)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}
    requests_total = {
        (s.labels["operation"], s.labels["outcome"]): s.value
        for s in families["att_sms_carrier_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests_total == {("other", "other"): 1, ("send", "ok"): 1}
    sends = {s.labels["outcome"]: s.value for s in families["att_sms_sends"].samples}
    assert sends["other"] == 1
    follow_ups = families["att_sms_follow_ups_open"].samples[0].value
    assert follow_ups != follow_ups  # NaN: the scrape survived the failing callback


def test_forgotten_registrations_leave_the_exposition(metrics: Metrics) -> None:
    metrics.track_registrations(["reg-a", "reg-b"])
    metrics.poll_failed("reg-b")
    metrics.track_registrations(["reg-a"])
    text = metrics.render()[0].decode()
    assert 'registration="reg-a"' in text
    assert "reg-b" not in text


def test_probes_and_bad_requests(serve) -> None:
    state = {"ready": (True, "ready")}
    server = serve(lambda: (b"x 1\n", "text/plain"), lambda: state["ready"])
    assert requests.get(server.url + "/healthz", timeout=5).text == "ok\n"
    assert requests.get(server.url + "/nope", timeout=5).status_code == 404
    post = requests.post(server.url + "/metrics", data=b"x", timeout=5)
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
    assert requests.head(server.url + "/metrics", timeout=5).status_code == 200
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET / / HTTP/1.1\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.0 400")
    state["ready"] = (False, "registration reg-b: no successful poll for 14 min")
    response = requests.get(server.url + "/readyz", timeout=5)
    assert response.status_code == 503 and "reg-b" in response.text
    state["ready"] = (True, "ready")
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 200
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200


def test_failing_callbacks_are_answered_not_raised(serve) -> None:
    def broken() -> tuple[bytes, str]:
        raise RuntimeError("boom")

    def unsure() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = serve(broken, unsure)
    assert requests.get(server.url + "/metrics", timeout=5).status_code == 500
    response = requests.get(server.url + "/readyz", timeout=5)
    assert response.status_code == 503 and "RuntimeError" in response.text
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200


def test_start_and_stop_are_idempotent(metrics: Metrics) -> None:
    server = MetricsServer(metrics.render, lambda: (True, "ready"), port=0)
    server.stop()
    assert server.start() is server.start()
    port = server.port
    assert port != 0 and requests.get(server.url + "/healthz", timeout=5).ok
    with pytest.raises(MetricsServerError, match="cannot listen"):
        MetricsServer(metrics.render, lambda: (True, "ready"), port=port).start()
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_readiness_fails_and_recovers_with_sandbox_faults(
    sandbox, client_id: str, client_secret: str, clock: Clock, metrics: Metrics, serve
) -> None:
    """A poll loop against the sandbox: its inbox fails for a while, then works again."""
    sandbox.add_registration("reg-a")
    sandbox.add_registration("reg-b")
    polls = {reg: RegistrationHealth(reg, clock.now) for reg in ("reg-a", "reg-b")}
    store = StoreHealth("sqlite", 4096)

    def ready() -> tuple[bool, str]:
        return readiness(HealthSnapshot(store, registrations=tuple(polls.values())), clock(), 60.0)

    metrics.ready_from(ready)
    server = serve(metrics.render, ready)
    client = AttSmsClient(sandbox.base_url, client_id, client_secret, get_retries=0)

    def poll_all() -> None:
        for registration in ("reg-a", "reg-b"):
            old = polls[registration]
            try:
                client.fetch_inbound(registration)
            except AttSmsError as exc:
                polls[registration] = replace(
                    old,
                    consecutive_failures=old.consecutive_failures + 1,
                    backoff=30,
                    last_error=str(exc),
                )
            else:
                polls[registration] = RegistrationHealth(
                    registration, old.watched_since, last_success=clock.now
                )

    def probe() -> requests.Response:
        return requests.get(server.url + "/readyz", timeout=5)

    with client:
        poll_all()
        assert probe().status_code == 200
        assert value(scrape(server), "att_sms_ready") == 1
        sandbox.add_fault(f"{INBOX}/reg-b", status=503, count=3)
        for _ in range(3):
            clock.now += 30
            poll_all()
        answer = probe()
        assert answer.status_code == 503
        assert "registration reg-b: no successful poll for 1 min" in answer.text
        assert "reg-a" not in answer.text
        assert value(scrape(server), "att_sms_ready") == 0
        clock.now += 30
        poll_all()  # the faults are used up: the carrier answers again
        assert probe().status_code == 200 and probe().text == "ready\n"
        assert value(scrape(server), "att_sms_ready") == 1
