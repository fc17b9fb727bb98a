"""Operability of the running plugin: ``!sms health``, the metrics endpoint, room alerts.

Each test runs the plugin in errbot's test backend against the carrier sandbox over real
HTTP, and reads the metrics and probes over real HTTP from the plugin's own port.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from att_sms.carrier.client import AttSmsClient
from att_sms.carrier.errors import AuthenticationError, CarrierUnavailable
from botkit import Bot, sandbox_config
from prometheus_client.parser import text_string_to_metric_families

INBOX = "/sms/v3/messaging/inbox"
OUTBOX = "/sms/v3/messaging/outbox"
REFUSAL = {
    "RequestError": {
        "PolicyException": {
            "MessageId": "POL0003",
            "Text": "Too many addresses specified in message part %1",
            "Variables": "address",
        }
    }
}


@pytest.fixture
def bot(env: None, tmp_path: Path) -> Iterator[Bot]:
    b = Bot(data_dir=tmp_path / "data")
    yield b
    b.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed by prometheus_client: (name, labels) -> value."""
    status, text = http_get(base + "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_until(check, timeout: float = 20.0, every: float = 0.2):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


# ------------------------------------------------------------------ the client's health facts


def test_client_reachability_and_token_status(sandbox, client_id: str, client_secret: str) -> None:
    with AttSmsClient(sandbox.base_url, client_id, client_secret) as client:
        assert 0 < client.check_reachable() < 5  # the sandbox answers HEAD with 405: reachable
        assert client.token_status().seconds_left is None and client.token_requests == 0
        client.ensure_token()
        client.ensure_token()  # cached: not fetched again
        assert client.token_requests == 1
        assert 3500 < client.token_status().seconds_left <= 3540  # 3600 s less 60 s of margin
    sandbox.add_fault("/oauth/v4/token", method="HEAD", status=503)
    with AttSmsClient(sandbox.base_url, client_id, client_secret) as client:
        with pytest.raises(CarrierUnavailable, match="HTTP 503"):
            client.check_reachable()
    with AttSmsClient(sandbox.base_url, client_id, "wrong-" + client_secret) as client:
        with pytest.raises(AuthenticationError):
            client.ensure_token()
        status = client.token_status()
        assert status.seconds_left is None and "HTTP 401" in status.error
        assert client_secret not in status.error
    sandbox.stop()
    with AttSmsClient(sandbox.base_url, client_id, client_secret, get_retries=0) as client:
        with pytest.raises(CarrierUnavailable):
            client.check_reachable()


# ------------------------------------------------------------------ !sms health


def test_health_when_all_is_well_is_one_ok_line(
    bot: Bot, sandbox_factory, client_id: str, client_secret: str
) -> None:
    sandbox = sandbox_factory(delivery_delay=3600)  # the follow-up stays open
    sandbox.add_registration("reg-ops")
    assert bot.configure(sandbox_config(sandbox, client_id)) == "Plugin configuration done."
    assert bot.ask("!sms send +12125551234 db-1 is down").startswith("Sent to")
    assert "0 messages arrived" in bot.ask("!sms inbox")

    answer = bot.ask("!sms health")

    assert "\n" not in answer and answer.startswith("OK: carrier reachable (")
    for part in (
        "token valid 5",  # 3600 s less the renewal margin: 59 min
        "registration reg-ops (#ops) polled ",
        "0 messages waiting to be posted",
        "1 follow-up open",
        "sends last hour: 1 sent",
        "store sqlite ",
    ):
        assert part in answer, (part, answer)
    assert "PROBLEMS" not in answer and client_secret not in answer


def test_health_puts_what_is_wrong_first(
    bot: Bot, sandbox, client_id: str, client_secret: str
) -> None:
    sandbox.add_registration("reg-ops")  # reg-gone is unknown to the carrier: 404
    routes = {"reg-ops": "#ops", "reg-gone": "#gone"}
    config = sandbox_config(sandbox, client_id, INBOX_ROUTES=routes, FOLLOW_UP=False)
    assert bot.configure(config) == "Plugin configuration done."
    assert bot.ask("!sms send +12125551234 first").startswith("Sent to")
    sandbox.add_fault(OUTBOX, method="POST", status=500, when="after")
    assert "may or may not have gone out" in bot.ask("!sms send +12125551234 second")
    bot.fail_sends = lambda body: "SMS from" in body  # the room refuses the inbound post
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "on my way")
    bot.ask("!sms inbox")

    problems, ok = bot.ask("!sms health").split("\n")

    assert problems.startswith("PROBLEMS: registration reg-gone (#gone): no successful poll")
    assert "(1 failure, retrying every " in problems and "; last error: " in problems
    assert "404" in problems
    assert "1 send uncertain in the last hour (see !sms log)" in problems
    assert "registration reg-ops: inbound not posted: cannot post to #ops" in problems
    assert "reg-ops (#ops)" not in problems  # its polling is fine
    assert ok.startswith("OK: carrier reachable (")
    assert "registration reg-ops (#ops) polled " in ok and "sends last hour: 1 sent" in ok
    assert "1 message waiting to be posted" in ok

    sandbox.stop()  # the carrier goes away
    answer = bot.ask("!sms health")
    assert answer.startswith("PROBLEMS: carrier unreachable: ")
    assert client_secret not in answer


# ------------------------------------------------------------------ metrics and probes


def test_metrics_are_served_and_parse(bot: Bot, sandbox_factory, client_id: str) -> None:
    sandbox = sandbox_factory(delivery_delay=3600)
    sandbox.add_registration("reg-ops")
    port = free_port()
    config = sandbox_config(sandbox, client_id, METRICS_PORT=port)
    assert bot.configure(config) == "Plugin configuration done."
    base = f"http://127.0.0.1:{port}"
    assert bot.ask("!sms send +12125551234 one").startswith("Sent to")
    sandbox.add_fault(OUTBOX, method="POST", status=400, body=REFUSAL)
    assert bot.ask("!sms send +12125551234 two").startswith("Not sent")
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "on my way")
    assert "1 message arrived" in bot.ask("!sms inbox")

    samples = scrape(base)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("att_sms_sends_total", outcome="sent") == 1
    assert value("att_sms_sends_total", outcome="refused") == 1
    assert value("att_sms_sends_total", outcome="uncertain") == 0
    sends = value("att_sms_carrier_request_duration_seconds_count", operation="send")
    assert sends == 2
    assert (
        value("att_sms_carrier_request_duration_seconds_bucket", operation="send", le="+Inf") == 2
    )
    assert value("att_sms_carrier_request_duration_seconds_sum", operation="send") > 0
    assert value("att_sms_carrier_request_duration_seconds_count", operation="inbox") >= 1
    assert value("att_sms_token_fetches_total", outcome="ok") >= 1
    assert value("att_sms_inbound_fetched_total", registration="reg-ops") == 1
    assert value("att_sms_inbound_posted_total", registration="reg-ops") == 1
    assert 0 <= value("att_sms_poll_age_seconds", registration="reg-ops") < 60
    assert value("att_sms_poll_consecutive_failures", registration="reg-ops") == 0
    assert value("att_sms_inbound_waiting") == 0
    assert value("att_sms_follow_ups_open") == 1
    assert value("att_sms_ready") == 1
    assert http_get(base + "/healthz") == (200, "ok\n")
    assert http_get(base + "/readyz") == (200, "ready\n")

    # Reconfiguring restarts the endpoint on the same port; the counts go on.
    assert bot.configure(config) == "Plugin configuration done."
    assert scrape(base)[("att_sms_sends_total", (("outcome", "sent"),))] == 1


def test_stuck_polling_fails_readiness_and_is_said_once_in_the_room(
    bot: Bot, sandbox, client_id: str
) -> None:
    sandbox.add_registration("reg-ops")
    port = free_port()
    config = sandbox_config(
        sandbox, client_id, POLL_INTERVAL=1, ALERT_AFTER=1, METRICS_PORT=port, FOLLOW_UP=False
    )
    assert bot.configure(config) == "Plugin configuration done."
    # The bound is 303 s at POLL_INTERVAL 1 (the longest retry wait is 300 s): lower it.
    bot.plugin.services.health.stuck_after = 3.0
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: http_get(base + "/readyz")[0] == 200)

    sandbox.add_fault(INBOX, status=503, count=10_000)
    status, reason = wait_until(lambda: _unready(base))
    assert status == 503
    assert reason.startswith("registration reg-ops: no successful poll for ")
    assert "(limit 3 s)" in reason
    assert wait_until(lambda: bot.posts_containing("are not coming in"))
    assert scrape(base)[("att_sms_ready", ())] == 0

    sandbox.clear_faults()  # the poller's next try (within its backoff) works again
    assert wait_until(lambda: http_get(base + "/readyz") == (200, "ready\n"), timeout=30)
    assert wait_until(lambda: bot.posts_containing("are coming in again"))
    time.sleep(1.5)  # a few more alert checks: nothing more is said
    down = bot.posts_containing("are not coming in")
    assert len(down) == 1 and down[0][0] == "#ops"
    assert "registration reg-ops" in down[0][1] and "503" in down[0][1]
    back = bot.posts_containing("are coming in again")
    assert len(back) == 1 and back[0][0] == "#ops"


def test_no_alert_when_alert_after_is_0(bot: Bot, sandbox, client_id: str) -> None:
    config = sandbox_config(sandbox, client_id, POLL_INTERVAL=1, ALERT_AFTER=0)
    sandbox.add_fault(INBOX, status=503, count=10_000)  # reg-ops is failing from the start
    assert bot.configure(config) == "Plugin configuration done."
    assert "no successful poll" in wait_until(lambda: _first_line(bot.ask("!sms health")))
    time.sleep(1.5)
    assert bot.posts_containing("coming in") == []


def _unready(base: str) -> tuple[int, str] | None:
    status, body = http_get(base + "/readyz")
    return (status, body.strip()) if status != 200 else None


def _first_line(answer: str) -> str:
    first = answer.split("\n")[0]
    return first if first.startswith("PROBLEMS") else ""


# ------------------------------------------------------------------ reachability is any answer


TOKEN = "/oauth/v4/token"


@pytest.mark.parametrize("status", [501, 405, 404, 500])
def test_any_http_answer_to_the_probe_is_reachable(
    sandbox, client_id: str, client_secret: str, status: int
) -> None:
    sandbox.add_fault(TOKEN, method="HEAD", status=status)
    with AttSmsClient(sandbox.base_url, client_id, client_secret) as client:
        assert 0 < client.check_reachable() < 5


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_without_carrier_is_unreachable(
    sandbox, client_id: str, client_secret: str, status: int
) -> None:
    sandbox.add_fault(TOKEN, method="HEAD", status=status)
    with AttSmsClient(sandbox.base_url, client_id, client_secret, get_retries=0) as client:
        with pytest.raises(CarrierUnavailable, match=f"HTTP {status}"):
            client.check_reachable()


def test_health_of_a_carrier_without_head_then_with_revoked_credentials(
    bot: Bot, sandbox, client_id: str, client_secret: str
) -> None:
    sandbox.add_registration("reg-ops")
    sandbox.add_fault(TOKEN, method="HEAD", status=501, count=10_000)  # HEAD not implemented
    assert bot.configure(sandbox_config(sandbox, client_id)) == "Plugin configuration done."
    assert bot.ask("!sms send +12125551234 db-1 is down").startswith("Sent to")

    answer = bot.ask("!sms health")
    assert answer.startswith("OK: carrier reachable ("), answer
    assert "HTTP 501" not in answer and "PROBLEMS" not in answer

    sandbox.revoke_credentials()  # the carrier no longer takes the bot's id and secret
    assert "Not sent" in bot.ask("!sms send +12125551234 db-2 is down")
    problems = bot.ask("!sms health").split("\n")[0]
    assert problems.startswith("PROBLEMS: no valid token: "), problems
    assert "401" in problems and "unreachable" not in problems
    assert client_secret not in problems


def test_a_scrape_reads_the_store_once_a_second_at_most(bot: Bot, sandbox, client_id: str) -> None:
    """/metrics, /readyz and the gauges share one store transaction per second."""
    port = free_port()
    config = sandbox_config(sandbox, client_id, INBOX_ROUTES={}, METRICS_PORT=port, FOLLOW_UP=False)
    assert bot.configure(config) == "Plugin configuration done."
    base = f"http://127.0.0.1:{port}"
    assert http_get(base + "/readyz") == (200, "ready\n")
    time.sleep(1.1)  # what was read for that answer is now too old
    transactions: list[str] = []
    database = bot.plugin.services.runtime.store.database._db  # the SQLite connection itself
    database.set_trace_callback(lambda sql: sql.startswith("BEGIN") and transactions.append(sql))
    try:
        started = time.monotonic()
        for _ in range(3):
            assert ("att_sms_ready", ()) in scrape(base)
            assert http_get(base + "/readyz") == (200, "ready\n")
            assert http_get(base + "/healthz") == (200, "ok\n")
        elapsed = time.monotonic() - started
    finally:
        database.set_trace_callback(None)
    assert elapsed < 1.0, "too slow a machine to tell; the bound below assumes under 1 s"
    assert len(transactions) == 1, transactions
