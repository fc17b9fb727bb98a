"""AttSmsClient against the carrier sandbox over real HTTP (no mocking of requests).

Every client made by ``make_client`` is checked at teardown: the client secret and
every token it received never appear in its repr, in any exception a test
collected (``expect``), nor in the captured log; and every request it made
validates against the spec (the sandbox's ``requestViolations`` stay empty).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from att_sms.carrier.client import (
    AttSmsClient,
    DeliveryInfo,
    InboundBatch,
    InboundMessage,
    SendResult,
)
from att_sms.carrier.errors import (
    AttSmsError,
    AuthenticationError,
    CarrierError,
    CarrierUnavailable,
    NotFoundError,
    ProtocolError,
    SendUncertain,
    carrier_error_details,
    fill_variables,
)

from carrier_sandbox import Sandbox

OUTBOX = "/sms/v3/messaging/outbox"
INBOX = "/sms/v3/messaging/inbox"
TOKEN = "/oauth/v4/token"
SEND_KEY = "POST /sms/v3/messaging/outbox"
STATUS_KEY = "GET /sms/v3/messaging/outbox/{messageId}"
INBOX_KEY = "GET /sms/v3/messaging/inbox/{registrationId}"
ALICE = "tel:+12125551234"
BOB = "tel:+12125559876"


def svc(message_id: str, text: str, variables: Any, kind: str = "ServiceException") -> dict:
    """A carrier ``RequestError`` document."""
    return {"RequestError": {kind: {"MessageId": message_id, "Text": text, "Variables": variables}}}


class Harness:
    """Makes clients and collects what must never hold a secret."""

    def __init__(self, sandbox: Sandbox, client_id: str, client_secret: str) -> None:
        self.sandbox = sandbox
        self.client_id = client_id
        self.client_secret = client_secret
        self.clients: list[AttSmsClient] = []
        self.sandboxes: list[Sandbox] = [sandbox]
        self.raised: list[BaseException] = []

    def client(self, box: Sandbox | None = None, **kw: Any) -> AttSmsClient:
        """A client on *box* (default: the test's sandbox), fast backoff by default."""
        box = box or self.sandbox
        if box not in self.sandboxes:
            self.sandboxes.append(box)
        kw.setdefault("backoff_factor", 0.01)
        kw.setdefault("max_retry_after", 1.0)
        base_url = kw.pop("base_url", box.base_url)
        client = AttSmsClient(base_url, self.client_id, kw.pop("secret", self.client_secret), **kw)
        self.clients.append(client)
        return client

    def expect(self, error: type[BaseException], call: Callable[..., Any], *args: Any) -> Any:
        """Call and require *error*; keep the exception for the secret check."""
        with pytest.raises(error) as info:
            call(*args)
        self.raised.append(info.value)
        return info.value

    def secrets(self) -> set[str]:
        """The client secret and every token any client received."""
        found = {self.client_secret}
        for client in self.clients:
            found.update(client._issued)  # white-box: the tokens to look for
        return found


def exception_texts(exc: BaseException) -> Iterator[str]:
    """str, repr and args of *exc* and of everything it chains to."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (repr(arg) for arg in current.args)
        yield from (str(v) for v in vars(current).values())
        current = current.__cause__ or current.__context__


@pytest.fixture
def harness(sandbox: Sandbox, client_id: str, client_secret: str, caplog: Any) -> Iterator[Harness]:
    """Clients for the test; at teardown: no secret anywhere, no request violation."""
    caplog.set_level(logging.DEBUG)
    h = Harness(sandbox, client_id, client_secret)
    yield h
    secrets = h.secrets()
    try:
        for client in h.clients:
            shown = repr(client) + str(client)
            assert not any(s in shown for s in secrets)
        for exc in h.raised:
            for text in exception_texts(exc):
                assert not any(s in text for s in secrets), f"secret in {type(exc).__name__}"
        assert not any(s in caplog.text for s in secrets), "secret or token in the log"
        for box in h.sandboxes:
            assert box.state()["requestViolations"] == []
    finally:
        for client in h.clients:
            client.close()


def sent_messages(box: Sandbox) -> list[str]:
    """Texts the sandbox recorded as sent."""
    return [s["message"] for s in box.state()["sent"]]


def requests_to(box: Sandbox, key: str) -> int:
    """How many requests the sandbox got for an operation."""
    return box.state()["requests"].get(key, 0)


# --------------------------------------------------------------------------- happy paths


def test_send_one_address_reuses_one_connection(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client()
    results = [client.send([ALICE], f"hello {n}") for n in range(3)]
    first = results[0]
    assert isinstance(first, SendResult)
    assert first.addresses == (ALICE,)
    assert first.message_id.startswith("SMS")
    assert first.resource_url and first.resource_url.endswith(f"{OUTBOX}/{first.message_id}")
    state = sandbox.state()
    assert [s["message"] for s in state["sent"]] == ["hello 0", "hello 1", "hello 2"]
    assert state["sent"][0]["messageId"] == first.message_id
    assert state["tokenRequests"] == 1 and client.token_requests == 1
    assert state["connections"] == 1  # keep-alive: token and three sends on one connection


def test_send_several_addresses_with_sender(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client(base_url=sandbox.base_url + "/")
    result = client.send((ALICE, BOB), "to both", sender_address="tel:+12125550000")
    assert result.addresses == (ALICE, BOB)
    [sent] = sandbox.state()["sent"]
    assert sent["addresses"] == [ALICE, BOB]
    assert sent["senderAddress"] == "tel:+12125550000"


def test_send_rejects_no_address(harness: Harness) -> None:
    client = harness.client()
    with pytest.raises(ValueError):
        client.send([], "nobody")


def test_delivery_status(sandbox_factory: Callable[..., Sandbox], harness: Harness) -> None:
    box = sandbox_factory(delivery_delay=0)
    client = harness.client(box)
    result = client.send([ALICE, "tel:+12125559999"], "status please")
    infos = client.delivery_status(result.message_id)
    assert infos == [
        DeliveryInfo(ALICE, "DeliveredToTerminal"),
        DeliveryInfo("tel:+12125559999", "DeliveryImpossible"),
    ]


def test_unknown_message_quoted_and_not_found(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client()
    err = harness.expect(NotFoundError, client.delivery_status, "no such/id?x")
    assert str(err) == "SVC0002: Invalid input value for message part messageId (HTTP 404)"
    assert err.status == 404 and err.kind == "ServiceException" and err.message_id == "SVC0002"
    assert requests_to(sandbox, STATUS_KEY) == 1  # one quoted path segment


def test_inbound_drain_in_batches(
    sandbox_factory: Callable[..., Sandbox], harness: Harness
) -> None:
    box = sandbox_factory(inbox_batch=2)
    box.add_registration("reg-1")
    ids = [
        box.inject_inbound("reg-1", BOB, f"reply {n}", destination_address="tel:+12125550000")
        for n in range(3)
    ]
    client = harness.client(box)
    first = client.fetch_inbound("reg-1")
    assert isinstance(first, InboundBatch)
    assert [m.message_id for m in first.messages] == ids[:2] and first.pending == 1
    assert first.messages[0].message == "reply 0"
    assert first.messages[0].sender_address == BOB
    assert first.messages[0].destination_address == "tel:+12125550000"
    assert first.messages[0].date_time
    second = client.fetch_inbound("reg-1")
    assert [m.message_id for m in second.messages] == ids[2:] and second.pending == 0
    assert client.fetch_inbound("reg-1") == InboundBatch([], 0)


def test_unknown_registration(harness: Harness) -> None:
    client = harness.client()
    harness.expect(NotFoundError, client.fetch_inbound, "nope")


def test_base_url_path_prefix_is_kept(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client(base_url=sandbox.base_url + "/carrier/")
    harness.expect(NotFoundError, client.send, [ALICE], "x")
    assert requests_to(sandbox, "POST /carrier/oauth/v4/token") == 1


# --------------------------------------------------------------------------- historical shapes


def test_pascal_case_send(harness: Harness, sandbox: Sandbox) -> None:
    body = {
        "OutboundSMSResponse": {
            "MessageId": "SMSc04091ed284f5684",
            "ResourceReference": {
                "ResourceURL": "https://api.att.com/sms/v3/messaging/outbox/SMSc0"
            },
        }
    }
    sandbox.add_fault(OUTBOX, method="POST", status=201, body=body)
    result = harness.client().send([ALICE], "old style")
    assert result == SendResult(
        "SMSc04091ed284f5684", "https://api.att.com/sms/v3/messaging/outbox/SMSc0", (ALICE,)
    )


def test_pascal_case_status_single_object(harness: Harness, sandbox: Sandbox) -> None:
    body = {
        "DeliveryInfoList": {
            "DeliveryInfo": {"Id": "msg0", "Address": ALICE, "DeliveryStatus": "MessageWaiting"},
            "ResourceUrl": "https://api.att.com/sms/v3/messaging/outbox/SMSc0",
        }
    }
    sandbox.add_fault(OUTBOX, method="GET", status=200, body=body)
    assert harness.client().delivery_status("SMSc0") == [DeliveryInfo(ALICE, "MessageWaiting")]


def test_pascal_case_inbound(harness: Harness, sandbox: Sandbox) -> None:
    body = {
        "InboundSmsMessageList": {
            "InboundSmsMessage": [
                {
                    "DateTime": "Fri, 19 Apr 2013 10:00:00 UTC",
                    "DestinationAddress": "tel:+12125550000",
                    "MessageId": "6c0c2d8a",
                    "Message": "Old reply",
                    "SenderAddress": BOB,
                },
                {"MessageId": 42, "Message": "", "SenderAddress": BOB},
            ],
            "NumberOfMessagesInThisBatch": "2",
            "ResourceUrl": "https://api.att.com/sms/v3/messaging/inbox/reg",
            "TotalNumberOfPendingMessages": "5",
        }
    }
    sandbox.add_fault(INBOX, method="GET", status=200, body=body)
    batch = harness.client().fetch_inbound("reg")
    assert batch.pending == 5
    assert batch.messages == [
        InboundMessage(
            "6c0c2d8a", "Old reply", BOB, "tel:+12125550000", "Fri, 19 Apr 2013 10:00:00 UTC"
        ),
        InboundMessage("42", "", BOB, None, None),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"inboundSMSMessageList": {"inboundSMSMessage": {"messageId": "a", "senderAddress": BOB}}},
        {
            "INBOUNDSMSMESSAGELIST": {
                "InboundSMSMessage": [{"MESSAGEID": "a", "SENDERADDRESS": BOB}]
            }
        },
    ],
    ids=["single-object", "any-case"],
)
def test_inbound_lenient_shapes(harness: Harness, sandbox: Sandbox, body: dict) -> None:
    sandbox.add_fault(INBOX, method="GET", status=200, body=body)
    batch = harness.client().fetch_inbound("reg")
    assert batch == InboundBatch([InboundMessage("a", "", BOB, None, None)], None)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (INBOX, {"inboundSMSMessageList": {"numberOfMessagesInThisBatch": 0}}),
        (INBOX, {}),
        (OUTBOX, {"deliveryInfoList": {}}),
        (OUTBOX, {"DeliveryInfoList": {"DeliveryInfo": []}}),
    ],
)
def test_missing_list_is_empty(harness: Harness, sandbox: Sandbox, path: str, body: dict) -> None:
    sandbox.add_fault(path, method="GET", status=200, body=body)
    client = harness.client()
    if path == INBOX:
        assert client.fetch_inbound("reg").messages == []
    else:
        assert client.delivery_status("SMS1") == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/json", "", "application/json; charset=utf-8", "text/html; charset=x"],
    ids=["text-plain", "text-json", "missing", "charset", "html-label"],
)
def test_json_read_whatever_its_content_type(
    harness: Harness, sandbox: Sandbox, content_type: str
) -> None:
    """A 2xx body that parses as JSON is read, whatever the carrier labelled it."""
    status = {"DeliveryInfoList": {"DeliveryInfo": {"Address": ALICE, "DeliveryStatus": "x"}}}
    inbox = {
        "inboundSMSMessageList": {"inboundSMSMessage": [{"message": "hi", "senderAddress": BOB}]}
    }
    send = {"outboundSMSResponse": {"messageId": "SMS-typed"}}
    for path, method, body in (
        (OUTBOX, "GET", status),
        (INBOX, "GET", inbox),
        (OUTBOX, "POST", send),
    ):
        sandbox.add_fault(path, method=method, status=200, body=body, content_type=content_type)
    client = harness.client()
    assert client.delivery_status("SMS1") == [DeliveryInfo(ALICE, "x")]
    assert client.fetch_inbound("reg").messages == [InboundMessage("", "hi", BOB, None, None)]
    assert client.send([ALICE], "typed").message_id == "SMS-typed"


def test_send_answer_without_json_stays_uncertain(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(OUTBOX, method="POST", status=201, body="queued", content_type="text/plain")
    err = harness.expect(ProtocolError, harness.client().send, [ALICE], "x")
    assert "got text/plain" in str(err) and "do not send it again" in str(err)


ODD_BATCH = {
    "InboundSmsMessageList": {
        "InboundSmsMessage": [
            {"MessageId": "m1", "Message": "first", "SenderAddress": BOB},
            {"Message": "no id here", "SenderAddress": "tel:2125551234"},
            "a stray string",
            {"MessageId": "m4", "Message": "no sender"},
            {"MessageId": "m5", "DateTime": "Fri, 19 Apr 2013 10:00:00 UTC"},
            None,
            {"MessageId": "m7", "Message": {"nested": True}, "SenderAddress": ALICE},
            {"MessageId": 8, "Message": 42, "SenderAddress": "12125559876"},
        ],
        "NumberOfMessagesInThisBatch": "9",
        "TotalNumberOfPendingMessages": "3",
    }
}


def test_inbound_odd_items_never_cost_the_batch(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(INBOX, method="GET", status=200, body=ODD_BATCH)
    batch = harness.client().fetch_inbound("reg")
    assert batch.messages == [
        InboundMessage("m1", "first", BOB, None, None),
        InboundMessage("", "no id here", "tel:2125551234", None, None),
        InboundMessage("m4", "no sender", "", None, None),
        InboundMessage("m7", "", ALICE, None, None),
        InboundMessage("8", "42", "12125559876", None, None),
    ]
    assert batch.pending == 3
    assert batch.skipped == [
        "item 3: a string, not an object",
        "item 5: no message text and no sender (fields: MessageId, DateTime)",
        "item 6: a null, not an object",
        "the carrier counted 9 messages in this batch but sent 8",
    ]
    assert not any("stray" in line for line in batch.skipped)  # no message content


@pytest.mark.parametrize(
    ("box", "pending"),
    [
        ({"inboundSMSMessage": {"message": "solo", "senderAddress": BOB}}, None),
        (
            {
                "InboundSMSMessage": {"Message": "solo", "SenderAddress": BOB},
                "NumberOfMessagesInThisBatch": "1",
                "TotalNumberOfPendingMessages": "0",
            },
            0,
        ),
        (
            {
                "inboundSmsMessage": [{"message": "solo", "senderAddress": BOB}],
                "numberOfMessagesInThisBatch": 1,
                "totalNumberOfPendingMessages": 7.0,
            },
            7,
        ),
    ],
    ids=["single-object", "pascal-strings", "numbers"],
)
def test_inbound_counts_and_single_object(
    harness: Harness, sandbox: Sandbox, box: dict, pending: int | None
) -> None:
    sandbox.add_fault(INBOX, method="GET", status=200, body={"inboundSMSMessageList": box})
    batch = harness.client().fetch_inbound("reg")
    assert batch == InboundBatch([InboundMessage("", "solo", BOB, None, None)], pending)


def test_inbound_list_of_wrong_type_is_reported(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(INBOX, method="GET", status=200, body={"inboundSMSMessageList": "none"})
    batch = harness.client().fetch_inbound("reg")
    assert batch.messages == [] and batch.skipped == [
        "the message list is a string, not an object or a list"
    ]


# --------------------------------------------------------------------------- metrics hook


def test_observer_sees_every_exchange(harness: Harness, sandbox: Sandbox) -> None:
    seen: list[tuple[str, float, str]] = []
    client = harness.client(observer=lambda *call: seen.append(call), get_retries=0)
    sandbox.add_registration("reg")
    message_id = client.send([ALICE], "observed").message_id
    client.delivery_status(message_id)
    client.fetch_inbound("reg")
    sandbox.expire_tokens()
    client.delivery_status(message_id)
    sandbox.add_fault(OUTBOX, method="GET", status=503)
    harness.expect(CarrierUnavailable, client.delivery_status, message_id)
    assert [(op, outcome) for op, _, outcome in seen] == [
        ("token", "ok"),
        ("send", "ok"),
        ("status", "ok"),
        ("inbox", "ok"),
        ("status", "http_401"),
        ("token", "ok"),
        ("status", "ok"),
        ("status", "http_503"),
    ]
    assert all(isinstance(seconds, float) and seconds >= 0 for _, seconds, _ in seen)


def test_observer_failure_never_reaches_the_caller(
    harness: Harness, sandbox: Sandbox, caplog: Any
) -> None:
    calls: list[str] = []

    def explode(operation: str, seconds: float, outcome: str) -> None:
        calls.append(outcome)
        raise RuntimeError("metrics backend down")

    client = harness.client(observer=explode)
    assert client.send([ALICE], "still sent").message_id
    client = harness.client(base_url=f"http://127.0.0.1:{free_port()}", observer=explode)
    harness.expect(CarrierUnavailable, client.send, [ALICE], "x")
    assert calls == ["ok", "ok", "error"]
    assert "exchange observer failed (RuntimeError); ignored" in caplog.text


# --------------------------------------------------------------------------- tokens


def test_concurrent_cold_cache_fetches_one_token(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client(pool_size=10)
    barrier = threading.Barrier(50)

    def send(n: int) -> SendResult:
        barrier.wait()
        return client.send([ALICE], f"burst {n}")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(send, range(50)))
    state = sandbox.state()
    assert state["tokenRequests"] == 1 and client.token_requests == 1
    assert state["requests"][SEND_KEY] == 50
    assert sorted(s["message"] for s in state["sent"]) == sorted(f"burst {n}" for n in range(50))
    assert len({r.message_id for r in results}) == 50
    assert state["connections"] <= 10  # pool_block: never more than pool_size


def test_expired_token_is_replaced_before_use(
    sandbox_factory: Callable[..., Sandbox], harness: Harness
) -> None:
    box = sandbox_factory(token_ttl=1)
    client = harness.client(box)
    client.send([ALICE], "one")
    time.sleep(1.0)
    client.send([ALICE], "two")
    state = box.state()
    assert state["tokenRequests"] == 2 and client.token_requests == 2
    assert state["requests"][SEND_KEY] == 2  # no 401 round trip: refreshed ahead of expiry


def test_revoked_token_refreshed_once_and_retried_once(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client()
    client.send([ALICE], "before")
    sandbox.expire_tokens()
    client.send([ALICE], "after")
    state = sandbox.state()
    assert state["tokenRequests"] == 2
    assert state["requests"][SEND_KEY] == 3  # ok, 401, retry
    assert sent_messages(sandbox) == ["before", "after"]


def test_revoked_token_concurrent_callers_refresh_once(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client()
    client.delivery_status(client.send([ALICE], "x").message_id)
    sandbox.expire_tokens()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: client.send([ALICE], f"r{n}"), range(8)))
    assert sandbox.state()["tokenRequests"] == 2
    assert len(sent_messages(sandbox)) == 9


def test_401_after_refresh_is_authentication_error(harness: Harness, sandbox: Sandbox) -> None:
    body = svc("POL0001", "A policy error occurred. %1", "UnAuthorized Request", "PolicyException")
    sandbox.add_fault(OUTBOX, method="POST", status=401, body=body, count=2)
    client = harness.client()
    err = harness.expect(AuthenticationError, client.send, [ALICE], "x")
    assert str(err) == "POL0001: A policy error occurred. UnAuthorized Request (HTTP 401)"
    state = sandbox.state()
    assert state["tokenRequests"] == 2 and state["requests"][SEND_KEY] == 2
    assert state["sent"] == []


def test_wrong_secret_is_authentication_error(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client(secret="not-the-secret-123")
    err = harness.expect(AuthenticationError, client.send, [ALICE], "x")
    assert str(err) == "POL0001: A policy error occurred. Invalid client credentials (HTTP 401)"
    assert "not-the-secret-123" not in repr(err)
    assert requests_to(sandbox, SEND_KEY) == 0


def test_carrier_text_echoing_secrets_is_redacted(harness: Harness, sandbox: Sandbox) -> None:
    client = harness.client()
    client.send([ALICE], "warm up")
    [token] = client._issued
    sandbox.add_fault(OUTBOX, method="GET", status=400, body=svc("SVC0002", "bad %1", token))
    err = harness.expect(CarrierError, client.delivery_status, "SMS1")
    assert str(err) == "SVC0002: bad *** (HTTP 400)"
    secret = harness.client_secret
    sandbox.expire_tokens()
    oauth_error = {"error": "invalid_client", "error_description": secret}
    sandbox.add_fault(TOKEN, status=401, body=oauth_error)
    err = harness.expect(AuthenticationError, client.send, [ALICE], "x")
    assert str(err) == "invalid_client: *** (HTTP 401)"


# --------------------------------------------------------------------------- no duplicate sends


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("retry_after", [None, "1"])
def test_send_503_never_duplicates(
    harness: Harness, sandbox: Sandbox, when: str, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else None
    sandbox.add_fault(OUTBOX, method="POST", status=503, headers=headers, when=when)
    client = harness.client()
    err = harness.expect(SendUncertain, client.send, [ALICE], "once only")
    assert "may have been sent" in str(err) and err.status == 503
    assert requests_to(sandbox, SEND_KEY) == 1
    assert sent_messages(sandbox) == (["once only"] if when == "after" else [])


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 502, "body": "<html><body>Bad Gateway</body></html>"},
        {"status": 504, "body": ""},
        {"action": "reset"},
        {"action": "drop"},
        {"delay": 1.0},
    ],
    ids=["500", "502-html", "504-empty", "reset", "drop", "read-timeout"],
)
@pytest.mark.parametrize("when", ["before", "after"])
def test_send_uncertain_outcome_is_not_retried(
    harness: Harness, sandbox: Sandbox, fault: dict, when: str
) -> None:
    sandbox.add_fault(OUTBOX, method="POST", when=when, **fault)
    client = harness.client(read_timeout=0.3)
    started = time.monotonic()
    err = harness.expect(SendUncertain, client.send, [ALICE], "maybe")
    assert time.monotonic() - started < 1.0
    assert "may have been sent" in str(err)
    assert isinstance(err, CarrierUnavailable)
    assert requests_to(sandbox, SEND_KEY) == 1
    assert len(sent_messages(sandbox)) == (1 if when == "after" else 0)


@pytest.mark.parametrize("when", ["before", "after"])
def test_send_429_is_refused_never_repeated(harness: Harness, sandbox: Sandbox, when: str) -> None:
    sandbox.add_fault(OUTBOX, method="POST", status=429, headers={"Retry-After": "30"}, when=when)
    started = time.monotonic()
    err = harness.expect(CarrierUnavailable, harness.client().send, [ALICE], "throttled")
    assert time.monotonic() - started < 2.0
    assert not isinstance(err, SendUncertain)
    assert "rate limit" in str(err) and "try again in 30 s" in str(err)
    assert requests_to(sandbox, SEND_KEY) == 1
    assert len(sent_messages(sandbox)) == (1 if when == "after" else 0)


def test_send_accepted_but_unreadable_is_not_retried(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(OUTBOX, method="POST", action="malformed", when="after")
    err = harness.expect(ProtocolError, harness.client().send, [ALICE], "taken")
    assert "accepted" in str(err) and "do not send it again" in str(err)
    assert requests_to(sandbox, SEND_KEY) == 1 and sent_messages(sandbox) == ["taken"]


def test_send_201_without_message_id(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(OUTBOX, method="POST", status=201, body={"outboundSMSResponse": {}})
    err = harness.expect(ProtocolError, harness.client().send, [ALICE], "x")
    assert "accepted" in str(err)


# --------------------------------------------------------------------------- GET retries


def test_get_503_then_success(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_registration("reg")
    sandbox.add_fault(INBOX, method="GET", status=503, count=2)
    assert harness.client().fetch_inbound("reg").messages == []
    assert requests_to(sandbox, INBOX_KEY) == 3


@pytest.mark.parametrize("status", [429, 500, 502, 504])
def test_get_retried_on_status_honouring_retry_after(
    harness: Harness, sandbox: Sandbox, status: int
) -> None:
    sandbox.add_registration("reg")
    sandbox.add_fault(INBOX, method="GET", status=status, headers={"Retry-After": "60"})
    client = harness.client(max_retry_after=0.2)
    started = time.monotonic()
    client.fetch_inbound("reg")
    assert 0.15 < time.monotonic() - started < 2.0  # waited, capped at max_retry_after
    assert requests_to(sandbox, INBOX_KEY) == 2


def test_get_gives_up_after_retries(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(INBOX, method="GET", status=503, count=10)
    err = harness.expect(CarrierUnavailable, harness.client(get_retries=2).fetch_inbound, "reg")
    assert str(err) == "SVC0001: A service error has occurred. Error code is 503 (HTTP 503)"
    assert requests_to(sandbox, INBOX_KEY) == 3


def test_get_read_timeout_retried(harness: Harness, sandbox: Sandbox) -> None:
    message_id = harness.client().send([ALICE], "hi").message_id
    status_key = "GET /sms/v3/messaging/outbox/{messageId}"
    sandbox.add_fault(OUTBOX + "/", method="GET", delay=0.6)
    client = harness.client(read_timeout=0.3)
    assert [i.address for i in client.delivery_status(message_id)] == [ALICE]
    assert requests_to(sandbox, status_key) == 2


def test_get_read_timeouts_exhausted(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.add_fault(OUTBOX + "/", method="GET", delay=0.5, count=2)
    client = harness.client(read_timeout=0.2, get_retries=1)
    err = harness.expect(CarrierUnavailable, client.delivery_status, "some-id")
    assert not isinstance(err, SendUncertain)
    assert "did not answer within 0.2 s" in str(err)


def test_inbox_read_waits_longer_than_other_reads(harness: Harness, sandbox: Sandbox) -> None:
    """The inbox read is destructive: an answer the client stopped waiting for is lost."""
    sandbox.inject_inbound("reg", "tel:+12125559876", "slow but safe")
    sandbox.add_fault(INBOX, method="GET", delay=0.6)
    client = harness.client(read_timeout=0.2, inbox_read_timeout=2.0)
    assert [m.message for m in client.fetch_inbound("reg").messages] == ["slow but safe"]
    assert requests_to(sandbox, INBOX_KEY) == 1


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_fast_and_plain(harness: Harness) -> None:
    client = harness.client(base_url=f"http://127.0.0.1:{free_port()}", backoff_factor=0.3)
    started = time.monotonic()
    err = harness.expect(CarrierUnavailable, client.send, [ALICE], "nobody home")
    assert time.monotonic() - started < 3.0
    assert not isinstance(err, SendUncertain)  # nothing reached the carrier
    assert str(err) == f"could not reach the carrier at {client.base_url[7:]}: connection refused"
    harness.expect(CarrierUnavailable, client.delivery_status, "SMS1")


# --------------------------------------------------------------------------- error shapes


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (
            400,
            svc("SVC0002", "Invalid input value for message part %1", "message"),
            CarrierError,
            "SVC0002: Invalid input value for message part message (HTTP 400)",
        ),
        (
            403,
            svc("POL0001", "%1 is over %2 messages", ["tel:+1212", "5"], "PolicyException"),
            CarrierError,
            "POL0001: tel:+1212 is over 5 messages (HTTP 403)",
        ),
        (
            400,
            {
                "requestError": {
                    "serviceException": {
                        "messageId": "SVC0004",
                        "text": "No %1, %2",
                        "variables": "address, message",
                    }
                }
            },
            CarrierError,
            "SVC0004: No address, message (HTTP 400)",
        ),
        (
            400,
            svc("SVC0001", "A service error occurred", None),
            CarrierError,
            "SVC0001: A service error occurred (HTTP 400)",
        ),
        (
            404,
            svc("SVC0002", "Unknown %1", "messageId"),
            NotFoundError,
            "SVC0002: Unknown messageId (HTTP 404)",
        ),
        (404, "<html>Not Found</html>", NotFoundError, "HTTP 404 from carrier"),
        (400, "", CarrierError, "HTTP 400 from carrier"),
        (409, {"unexpected": True}, CarrierError, "HTTP 409 from carrier"),
        (502, "<html><h1>502 Bad Gateway</h1></html>", CarrierUnavailable, "HTTP 502 from carrier"),
        (
            500,
            svc("SVC0001", "A service error has occurred. Error code is %1", "500"),
            CarrierUnavailable,
            "SVC0001: A service error has occurred. Error code is 500 (HTTP 500)",
        ),
        (429, "", CarrierUnavailable, "HTTP 429 from carrier"),
    ],
)
def test_error_shapes(
    harness: Harness, sandbox: Sandbox, status: int, body: Any, error: type, text: str
) -> None:
    sandbox.add_fault(OUTBOX, method="GET", status=status, body=body)
    err = harness.expect(error, harness.client(get_retries=0).delivery_status, "SMS1")
    assert str(err) == text
    assert isinstance(err, AttSmsError)
    if isinstance(err, CarrierError):
        assert err.status == status


def test_real_carrier_rejection(harness: Harness) -> None:
    err = harness.expect(CarrierError, harness.client().send, ["tel:12"], "bad address")
    assert str(err) == "SVC0004: No valid addresses provided in the message part address (HTTP 400)"
    assert err.kind == "ServiceException"


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "malformed"},
        {"status": 200, "body": "<html>ok</html>", "content_type": "text/html"},
        {"status": 200, "body": ["not", "an", "object"]},
        {"status": 200, "body": {"deliveryInfoList": {"deliveryInfo": [{"address": ALICE}]}}},
    ],
    ids=["malformed", "html", "array", "missing-status"],
)
def test_unreadable_answers_are_protocol_errors(
    harness: Harness, sandbox: Sandbox, fault: dict
) -> None:
    sandbox.add_fault(OUTBOX, method="GET", **fault)
    harness.expect(ProtocolError, harness.client().delivery_status, "SMS1")


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "malformed"},
        {"status": 200, "body": {"token_type": "bearer"}},
        {"status": 200, "body": "token=abc", "content_type": "text/plain"},
    ],
    ids=["malformed", "no-token", "not-json"],
)
def test_unreadable_token_answer(harness: Harness, sandbox: Sandbox, fault: dict) -> None:
    sandbox.add_fault(TOKEN, **fault)
    harness.expect(ProtocolError, harness.client().send, [ALICE], "x")
    assert requests_to(sandbox, SEND_KEY) == 0


# --------------------------------------------------------------------------- secrets


def test_no_secret_in_repr_or_debug_log(
    harness: Harness, sandbox: Sandbox, caplog: Any, client_secret: str
) -> None:
    client = harness.client()
    assert repr(client) == f"AttSmsClient(base_url={sandbox.base_url!r}, client_id='test-client')"
    sandbox.add_registration("reg")
    client.fetch_inbound("reg")
    sandbox.expire_tokens()
    client.delivery_status(client.send([ALICE], "secretive").message_id)
    assert len(client._issued) == 2
    assert any(r.name == "att_sms.carrier.client" for r in caplog.records)
    for value in (client_secret, *client._issued):
        assert value not in caplog.text
        assert value not in repr(client._tokens.get())
    assert "secretive" not in caplog.text  # no bodies in the log


def test_close_and_context_manager(harness: Harness, sandbox: Sandbox) -> None:
    with harness.client() as client:
        client.send([ALICE], "one")
    client.send([ALICE], "two")  # a closed client can still be used: it reconnects
    assert sandbox.state()["tokenRequests"] == 2


# --------------------------------------------------------------------------- errors module


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("part %1", "message", "part message"),
        ("%1 and %2", "a, b", "a and b"),
        ("%1 and %2", ["x", 3], "x and 3"),
        ("%2 before %1", "a,b", "b before a"),
        ("%1 %3", "a", "a %3"),
        ("100%", None, "100%"),
        ("%1%1", "%2", "%2%2"),
    ],
)
def test_fill_variables(text: str, variables: Any, expected: str) -> None:
    assert fill_variables(text, variables) == expected


def test_carrier_error_details_and_str() -> None:
    assert carrier_error_details({"nope": 1}) is None
    assert carrier_error_details("text") is None
    kind, mid, text = carrier_error_details(
        {
            "RequestError": {
                "PolicyException": {"MessageId": "POL0003", "Text": "Max %1", "Variables": "10"}
            }
        }
    )
    assert (kind, mid, text) == ("PolicyException", "POL0003", "Max 10")
    assert str(CarrierError("HTTP 502 from carrier", status=502)) == "HTTP 502 from carrier"
    assert str(CarrierError("plain")) == "plain"
    assert issubclass(SendUncertain, CarrierUnavailable)
    assert issubclass(NotFoundError, CarrierError) and issubclass(AuthenticationError, CarrierError)
