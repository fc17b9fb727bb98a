"""The send pipeline (att_sms.sending.parts) and idle connections, over real HTTP.

The pipeline talks to the carrier sandbox (which refuses a whole request for one
landline ``...0000`` or unreachable ``...1111`` address, or more than 10 addresses).
Idle connections are shown with a stand-in carrier that, like a NAT that forgot the
connection, never answers a request arriving on a connection idle longer than a bound.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from att_sms.carrier.client import KEEPALIVE_IDLE, AttSmsClient
from att_sms.sending.parts import (
    NOT_SENT,
    REFUSED,
    SENT,
    UNCERTAIN,
    RecipientOutcome,
    RequestOutcome,
    SendReport,
    send_parts,
)

from carrier_sandbox import Sandbox

CLIENT_ID = "sending-client"
CLIENT_SECRET = "sending-secret-7d2e"
OUTBOX = "/sms/v3/messaging/outbox"
SEND_KEY = "POST /sms/v3/messaging/outbox"
LANDLINE = "tel:+12125550000"
UNREACHABLE = "tel:+12125551111"
LANDLINE_REASON = "SVC0001: A service error occurred. Error code is Landline (HTTP 400)"
UNREACHABLE_REASON = "SVC0004: No valid addresses provided in message part address (HTTP 400)"


def numbers(count: int, first: int = 100) -> list[str]:
    """*count* ordinary mobile numbers (no reserved suffix)."""
    return [f"tel:+1212555{n:04d}" for n in range(first, first + count)]


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """A carrier sandbox (10 addresses per request at most) that checks the spec."""
    sandbox = Sandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, validate=True).start()
    try:
        yield sandbox
        assert sandbox.request_violations == [] and sandbox.response_violations == []
    finally:
        sandbox.stop()


@pytest.fixture
def client(box: Sandbox) -> Iterator[AttSmsClient]:
    with AttSmsClient(box.base_url, CLIENT_ID, CLIENT_SECRET, read_timeout=2.0) as made:
        yield made


def sends(box: Sandbox) -> list[dict[str, Any]]:
    """What the sandbox took, in order."""
    return box.state()["sent"]


def requests_made(box: Sandbox) -> int:
    return box.state()["requests"].get(SEND_KEY, 0)


# --------------------------------------------------------------------------- pipeline


def test_25_recipients_go_out_in_requests_of_10(box: Sandbox, client: AttSmsClient) -> None:
    group = numbers(25)
    report = send_parts(client, group, ["page"], max_recipients=10)
    taken = sends(box)
    assert [len(s["addresses"]) for s in taken] == [10, 10, 5]
    assert [a for s in taken for a in s["addresses"]] == group
    assert requests_made(box) == 3
    assert report.addresses(SENT) == group and report.billed == 25
    assert report.message_ids == [s["messageId"] for s in taken]
    ids = ", ".join(report.message_ids)
    assert report.reply_line() == (
        f"Sent to 25 recipients ({', '.join(group[:3])} and 22 more): message ids {ids}"
    )
    assert report.audit_outcome() == "sent"


def test_a_limit_set_too_high_still_reaches_everyone(box: Sandbox, client: AttSmsClient) -> None:
    """11 addresses in one request are refused whole (nothing taken); one each go out."""
    report = send_parts(client, numbers(11), ["page"], max_recipients=50)
    assert report.requests[0].status == REFUSED and report.requests[0].message_id is None
    assert [s["addresses"] for s in sends(box)] == [[a] for a in numbers(11)]
    assert requests_made(box) == 1 + 11
    assert report.addresses(SENT) == numbers(11) and report.billed == 11


def test_one_bad_number_does_not_stop_the_page(box: Sandbox, client: AttSmsClient) -> None:
    good = numbers(4)
    group = [good[0], good[1], LANDLINE, good[2], good[3]]
    report = send_parts(client, group, ["db down"])
    taken = sends(box)
    assert [s["addresses"] for s in taken] == [[a] for a in good]  # one request each
    assert requests_made(box) == 1 + 5
    assert report.requests[0] == RequestOutcome(1, tuple(group), REFUSED, None, LANDLINE_REASON)
    assert report.addresses(SENT) == good and report.billed == 4
    [bad] = [r for r in report.recipients if r.status == REFUSED]
    assert bad == RecipientOutcome(LANDLINE, REFUSED, [], 1, LANDLINE_REASON)
    ids = ", ".join(s["messageId"] for s in taken)
    assert report.reply_line() == (
        f"Sent to {', '.join(good)}: message ids {ids}\n"
        f"Not sent to {LANDLINE}: carrier refused it: {LANDLINE_REASON}."
    )
    assert report.audit_outcome() == f"partial: 4 sent, 1 refused; {LANDLINE}: {LANDLINE_REASON}"


def test_several_bad_numbers_each_named_with_its_reason(box: Sandbox, client: AttSmsClient) -> None:
    group = [UNREACHABLE, *numbers(2), LANDLINE]
    report = send_parts(client, group, ["hello"])
    assert report.addresses(SENT) == numbers(2)
    assert report.reply_line().splitlines()[1] == (
        f"Not sent to {UNREACHABLE}: carrier refused it: {UNREACHABLE_REASON}. "
        f"Not sent to {LANDLINE}: carrier refused it: {LANDLINE_REASON}."
    )


def test_duplicates_are_sent_once(box: Sandbox, client: AttSmsClient) -> None:
    alice, bob = numbers(2)
    report = send_parts(client, [alice, bob, alice], ["once each"])
    assert [s["addresses"] for s in sends(box)] == [[alice, bob]]
    assert report.billed == 2 and report.reply_line().startswith(f"Sent to {alice}, {bob}:")


def test_throttled_sends_nothing_and_bills_nothing(box: Sandbox, client: AttSmsClient) -> None:
    box.add_fault(OUTBOX, method="POST", status=429, headers={"Retry-After": "30"})
    group = numbers(25)
    report = send_parts(client, group, ["one", "two"])
    assert requests_made(box) == 1 and sends(box) == []  # stopped at the first refusal
    assert report.billed == 0 and report.message_ids == []
    assert report.addresses(NOT_SENT) == group
    assert report.stopped and "rate limit" in report.stopped
    line = report.reply_line()
    assert line.startswith(f"Not sent to 25 recipients ({', '.join(group[:3])} and 22 more)")
    assert "(part 1/2)" in line and "try again in 30 s" in line and "\n" not in line
    assert report.audit_outcome() == f"failed: {report.stopped}"


def test_uncertain_recipients_are_billed_and_get_no_later_part(
    box: Sandbox, client: AttSmsClient
) -> None:
    box.add_fault(OUTBOX, method="POST", status=503, when="after")  # taken, then 503
    group = numbers(15)
    report = send_parts(client, group, ["part one", "part two"])
    taken = sends(box)
    assert [len(s["addresses"]) for s in taken] == [10, 5, 5]
    assert [s["message"] for s in taken] == ["part one", "part one", "part two"]
    assert report.addresses(UNCERTAIN) == group[:10] and report.addresses(SENT) == group[10:]
    assert report.billed == 10 + 5 + 5
    assert requests_made(box) == 3  # never repeated
    sent_line, uncertain_line = report.reply_line().splitlines()
    first, second = taken[1]["messageId"], taken[2]["messageId"]
    assert sent_line == (
        f"Sent to {', '.join(group[10:])} in 2 parts: "
        f"message ids part 1/2 {first}, part 2/2 {second}"
    )
    assert uncertain_line.startswith(
        f"Send to 10 recipients ({', '.join(group[:3])} and 7 more) (part 1/2) "
        "may or may not have gone out: "
    )
    assert uncertain_line.endswith("Do not resend blindly: check the carrier first.")
    assert report.audit_outcome().startswith("partial: 5 sent, 10 uncertain; 10 recipients")


def test_multi_part_to_a_group(box: Sandbox, client: AttSmsClient) -> None:
    alice, bob = numbers(2)
    report = send_parts(client, [alice, bob], ["one", "two", "three"], sender="tel:+12125550101")
    taken = sends(box)
    assert [s["message"] for s in taken] == ["one", "two", "three"]
    assert all(s["senderAddress"] == "tel:+12125550101" for s in taken)
    ids = [s["messageId"] for s in taken]
    assert report.billed == 6
    assert report.reply_line() == (
        f"Sent to {alice}, {bob} in 3 parts: message ids "
        f"part 1/3 {ids[0]}, part 2/3 {ids[1]}, part 3/3 {ids[2]}"
    )
    assert report.recipients[0].message_ids == ids


def test_later_part_refused_names_parts_already_sent() -> None:
    group = numbers(3)
    # The carrier takes 160 characters at most; the spec says so too, hence no validation.
    with (
        Sandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as box,
        AttSmsClient(box.base_url, CLIENT_ID, CLIENT_SECRET) as client,
    ):
        report = send_parts(client, group, ["fits", "x" * 161])
        [first] = sends(box)
        assert requests_made(box) == 1 + 1 + 3  # part 2: group refused, then one each
    assert report.billed == 3
    reason = "SVC0002: Invalid input value for message part message (HTTP 400)"
    assert report.reply_line() == (
        f"Not sent to {', '.join(group)} (part 2/2): carrier refused it: {reason}. "
        f"Parts already sent: {first['messageId']}."
    )
    assert report.audit_outcome() == f"failed: {reason}"


def test_carrier_unreachable_is_not_sent(box: Sandbox) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    with AttSmsClient(base_url, CLIENT_ID, CLIENT_SECRET, backoff_factor=0.01) as offline:
        report = send_parts(offline, numbers(12), ["x"])
    assert report.addresses(NOT_SENT) == numbers(12) and report.billed == 0
    assert len(report.requests) == 1
    reason = f"could not reach the carrier at 127.0.0.1:{port}: connection refused"
    assert report.reply_line().endswith(f": {reason}.")
    assert report.audit_outcome() == f"failed: {reason}"


def test_refused_credentials_stop_the_page_without_fan_out(box: Sandbox) -> None:
    with AttSmsClient(box.base_url, CLIENT_ID, "wrong-secret-123") as refused:
        report = send_parts(refused, numbers(5), ["x"])
    assert box.state()["tokenRequests"] == 1 and requests_made(box) == 0
    assert report.addresses(NOT_SENT) == numbers(5)
    assert "wrong-secret-123" not in report.reply_line() + report.audit_outcome()
    assert "Invalid client credentials" in report.reply_line()


@pytest.mark.parametrize(
    ("addresses", "parts", "limit"),
    [([], ["x"], 10), (["tel:+12125550100"], [], 10), (["tel:+12125550100"], ["x"], 0)],
)
def test_bad_arguments(client: AttSmsClient, addresses: list, parts: list, limit: int) -> None:
    with pytest.raises(ValueError):
        send_parts(client, addresses, parts, max_recipients=limit)


def test_reply_stays_compact_for_many_different_refusals() -> None:
    recipients = [RecipientOutcome(f"tel:+1212555{n:04d}") for n in range(7)]
    for n, recipient in enumerate(recipients):
        recipient.status, recipient.failed_part, recipient.reason = REFUSED, 1, f"SVC000{n}: bad"
    report = SendReport(parts=1, recipients=recipients)
    line = report.reply_line()
    assert line.count("Not sent to tel:") == 5 and "\n" not in line
    assert line.endswith("Not sent to 2 more recipient(s): carrier refused it (other reasons).")
    assert report.audit_outcome().startswith("failed: 7 refused; tel:+12125550000: SVC0000: bad")


# --------------------------------------------------------------------------- idle connections


class _StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: IdleDroppingCarrier

    def setup(self) -> None:
        super().setup()
        self.last_answer: float | None = None
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        idle = None if self.last_answer is None else time.monotonic() - self.last_answer
        if idle is not None and idle > self.server.idle_limit:
            with self.server.lock:
                self.server.swallowed += 1
            self.server.release.wait()  # never answer; keep the socket open
            self.close_connection = True
            return
        if self.path.endswith("/token"):
            body: dict[str, Any] = {"access_token": "stand-in-token", "expires_in": 3600}
            status = 200
        else:
            with self.server.lock:
                self.server.taken += 1
                body = {"outboundSMSResponse": {"messageId": f"SMS{self.server.taken}"}}
            status = 201
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.last_answer = time.monotonic()


class IdleDroppingCarrier(ThreadingHTTPServer):
    """Answers tokens and sends, except on connections idle over ``idle_limit`` seconds."""

    daemon_threads = True

    def __init__(self, idle_limit: float) -> None:
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.idle_limit = idle_limit
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.connections = self.taken = self.swallowed = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def nat() -> Iterator[IdleDroppingCarrier]:
    server = IdleDroppingCarrier(idle_limit=1.0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def page_after_quiet_night(nat: IdleDroppingCarrier, max_idle: float) -> SendReport:
    """One page, an idle gap longer than the stand-in's limit, then a second page."""
    with AttSmsClient(
        nat.base_url, CLIENT_ID, CLIENT_SECRET, read_timeout=0.5, max_idle=max_idle
    ) as client:
        assert send_parts(client, ["tel:+12125550100"], ["evening"]).addresses(SENT)
        time.sleep(nat.idle_limit + 0.3)
        return send_parts(client, ["tel:+12125550100"], ["morning page"])


def test_send_after_idle_gap_uses_a_fresh_connection(nat: IdleDroppingCarrier) -> None:
    report = page_after_quiet_night(nat, max_idle=0.5)
    assert report.addresses(SENT) == ["tel:+12125550100"]
    assert report.reply_line() == "Sent to tel:+12125550100: message id SMS2"
    assert (nat.taken, nat.swallowed, nat.connections) == (2, 0, 2)


def test_without_retirement_the_page_after_idle_is_uncertain(nat: IdleDroppingCarrier) -> None:
    report = page_after_quiet_night(nat, max_idle=1e9)
    assert report.addresses(UNCERTAIN) == ["tel:+12125550100"]
    assert "may or may not have gone out" in report.reply_line()
    assert (nat.taken, nat.swallowed, nat.connections) == (1, 1, 1)


def test_pooled_connections_use_tcp_keepalive(nat: IdleDroppingCarrier) -> None:
    with AttSmsClient(nat.base_url, CLIENT_ID, CLIENT_SECRET) as client:
        client.send(["tel:+12125550100"], "probe")
        # white-box: the pooled socket the next request would use
        pools = client._session.get_adapter(nat.base_url).poolmanager.pools
        [pool] = [pools[key] for key in pools.keys()]
        [sock] = [c.sock for c in list(pool.pool.queue) if c is not None and c.sock]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE
