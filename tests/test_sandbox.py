"""The carrier sandbox over real HTTP with plain `requests`: every endpoint, errors, faults.

The `sandbox` fixture validates every response against the spec (openapi-core) and
fails the test at teardown on any response violation.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from carrier_sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
TOKEN = "/oauth/v4/token"
OUTBOX = "/sms/v3/messaging/outbox"
INBOX = "/sms/v3/messaging/inbox"
SEND = "POST /sms/v3/messaging/outbox"
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ----------------------------------------------------------------------------- helpers
def token_form(client_id: str, client_secret: str) -> dict[str, str]:
    """The client-credentials form of the spec's token request."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": "SMS",
    }


def get_token(sb: Sandbox, client_id: str, client_secret: str) -> str:
    r = requests.post(
        sb.base_url + TOKEN,
        data=token_form(client_id, client_secret),
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def auth(sandbox: Sandbox, client_id: str, client_secret: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + get_token(sandbox, client_id, client_secret)}


def send(sb: Sandbox, headers: dict[str, str], addresses, message="hello", **extra):
    body = {"outboundSMSRequest": {"address": addresses, "message": message, **extra}}
    return requests.post(sb.base_url + OUTBOX, json=body, headers=headers, timeout=5)


def error_of(r: requests.Response) -> tuple[str, dict]:
    """(kind, exception) of a RequestError answer, asserting its shape."""
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert list(doc) == ["RequestError"]
    ((kind, exc),) = doc["RequestError"].items()
    assert kind in ("ServiceException", "PolicyException")
    assert set(exc) == {"MessageId", "Text", "Variables"}
    assert all(isinstance(v, str) for v in exc.values())
    assert "%1" in exc["Text"]
    return kind, exc


# ----------------------------------------------------------------------------- OAuth
def test_token_issued(sandbox: Sandbox, client_id: str, client_secret: str) -> None:
    r = requests.post(
        sandbox.base_url + TOKEN,
        data=token_form(client_id, client_secret),
        timeout=5,
    )
    assert r.status_code == 200
    doc = r.json()
    assert doc["token_type"] == "bearer"
    assert doc["expires_in"] == 3600
    assert doc["scope"] == "SMS"
    assert len(doc["access_token"]) >= 32
    assert r.headers["Cache-Control"] == "no-store"
    other = get_token(sandbox, client_id, client_secret)
    assert other != doc["access_token"]
    state = sandbox.state()
    assert state["tokenRequests"] == 2 and state["tokensIssued"] == 2
    dumped = json.dumps(state)
    assert doc["access_token"] not in dumped and client_secret not in dumped


def test_token_wrong_credentials(sandbox: Sandbox, client_id: str) -> None:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "nope"}
    r = requests.post(sandbox.base_url + TOKEN, data={**form, "scope": "SMS"}, timeout=5)
    assert r.status_code == 401
    kind, exc = error_of(r)
    assert kind == "PolicyException" and exc["MessageId"] == "POL0001"
    r = requests.post(
        sandbox.base_url + TOKEN, data={**form, "client_id": "x", "scope": "SMS"}, timeout=5
    )
    assert r.status_code == 401
    state = sandbox.state()
    assert state["tokenRequests"] == 2 and state["tokensIssued"] == 0


@pytest.mark.parametrize(
    "data, content_type, variable",
    [
        ({"client_id": "test-client", "client_secret": "s", "scope": "SMS"}, None, "grant_type"),
        ({"grant_type": "password", "client_id": "a", "client_secret": "b"}, None, "grant_type"),
        ({"grant_type": "client_credentials", "client_secret": "b"}, None, "client_id"),
        ({"grant_type": "client_credentials", "client_id": "a"}, None, "client_secret"),
        ('{"grant_type": "client_credentials"}', "application/json", "Content-Type"),
        (b"\xff\xfe=", "application/x-www-form-urlencoded", "body"),
    ],
)
def test_token_bad_form(sandbox: Sandbox, data, content_type, variable) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = requests.post(sandbox.base_url + TOKEN, data=data, headers=headers, timeout=5)
    assert r.status_code == 400
    kind, exc = error_of(r)
    assert (kind, exc["MessageId"], exc["Variables"]) == ("ServiceException", "SVC0002", variable)


@pytest.mark.parametrize(
    "method, path",
    [("POST", OUTBOX), ("GET", OUTBOX + "/x"), ("GET", INBOX + "/reg")],
)
@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc", "Bearer "])
def test_api_requires_bearer(sandbox: Sandbox, method: str, path: str, header) -> None:
    headers = {"Authorization": header} if header else {}
    r = requests.request(method, sandbox.base_url + path, headers=headers, json={}, timeout=5)
    assert r.status_code == 401
    kind, exc = error_of(r)
    assert kind == "PolicyException"
    assert exc == {
        "MessageId": "POL0001",
        "Text": "A policy error occurred. %1",
        "Variables": "UnAuthorized Request",
    }
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert sandbox.state()["sent"] == []


def test_token_expires_after_ttl(sandbox_factory, client_id: str, client_secret: str) -> None:
    sb = sandbox_factory(token_ttl=1)
    headers = {"Authorization": "Bearer " + get_token(sb, client_id, client_secret)}
    assert send(sb, headers, ["tel:+12125551234"]).status_code == 201
    time.sleep(1.2)
    assert send(sb, headers, ["tel:+12125551234"]).status_code == 401
    headers = {"Authorization": "Bearer " + get_token(sb, client_id, client_secret)}
    assert send(sb, headers, ["tel:+12125551234"]).status_code == 201


def test_expire_tokens_python_and_http(sandbox: Sandbox, auth: dict, client_id, client_secret):
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 201
    sandbox.expire_tokens()
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 401
    fresh = {"Authorization": "Bearer " + get_token(sandbox, client_id, client_secret)}
    assert send(sandbox, fresh, ["tel:+12125551234"]).status_code == 201
    r = requests.post(sandbox.base_url + "/sandbox/expire-tokens", timeout=5)
    assert r.status_code == 200
    assert send(sandbox, fresh, ["tel:+12125551234"]).status_code == 401
    assert sandbox.state()["tokensActive"] == 0


# ----------------------------------------------------------------------------- send
def test_send_accepted_and_recorded(sandbox: Sandbox, auth: dict) -> None:
    r = send(
        sandbox,
        auth,
        ["tel:+12125551234", "tel:+447700900123"],
        "db-1 is down",
        senderAddress="tel:+15550001",
    )
    assert r.status_code == 201
    resp = r.json()["outboundSMSResponse"]
    mid = resp["messageId"]
    url = f"{sandbox.base_url}{OUTBOX}/{mid}"
    assert resp["resourceReference"]["resourceURL"] == url
    assert r.headers["Location"] == url
    (sent,) = sandbox.state()["sent"]
    assert sent["messageId"] == mid
    assert sent["addresses"] == ["tel:+12125551234", "tel:+447700900123"]
    assert sent["message"] == "db-1 is down"
    assert sent["senderAddress"] == "tel:+15550001"
    assert RFC3339_Z.match(sent["time"])
    assert sandbox.state()["requests"][SEND] == 1


def test_send_accepts_single_string_address(sandbox: Sandbox, auth: dict) -> None:
    r = send(sandbox, auth, "tel:+12125551234", "x" * 160)
    assert r.status_code == 201
    assert sandbox.state()["sent"][0]["addresses"] == ["tel:+12125551234"]
    assert sandbox.state()["sent"][0]["message"] == "x" * 160


@pytest.mark.parametrize(
    "addresses",
    [
        [],
        ["12125551234"],
        ["tel:12125551234"],
        ["tel:+0212555"],
        ["tel:+1"],
        ["tel:+1234567890123456"],
        ["tel:+12125551234", "bad"],
        [5],
        None,
        {"a": 1},
        "",
    ],
)
def test_send_invalid_addresses(sandbox: Sandbox, auth: dict, addresses) -> None:
    r = send(sandbox, auth, addresses)
    assert r.status_code == 400
    kind, exc = error_of(r)
    assert kind == "ServiceException"
    assert exc == {
        "MessageId": "SVC0004",
        "Text": "No valid addresses provided in the message part %1",
        "Variables": "address",
    }
    assert sandbox.state()["sent"] == []


@pytest.mark.parametrize("message", ["", "x" * 161, None, 42])
def test_send_invalid_message(sandbox: Sandbox, auth: dict, message) -> None:
    r = send(sandbox, auth, ["tel:+12125551234"], message)
    assert r.status_code == 400
    kind, exc = error_of(r)
    assert (kind, exc["MessageId"], exc["Variables"]) == ("ServiceException", "SVC0002", "message")
    assert exc["Text"] == "Invalid input value for message part %1"
    assert sandbox.state()["sent"] == []


def test_send_too_long_message_is_a_request_violation(sandbox: Sandbox, auth: dict) -> None:
    assert send(sandbox, auth, ["tel:+12125551234"], "x" * 161).status_code == 400
    violations = sandbox.state()["requestViolations"]
    assert len(violations) == 1 and "too long" in violations[0]
    assert sandbox.state()["responseViolations"] == []


def test_send_max_recipients(sandbox_factory, client_id: str, client_secret: str) -> None:
    ten = [f"tel:+1212555{2000 + i}" for i in range(11)]
    sb = sandbox_factory()  # default: 10, as the historical service's own tests show
    assert sb.max_recipients == 10
    headers = {"Authorization": "Bearer " + get_token(sb, client_id, client_secret)}
    assert send(sb, headers, ten[:10]).status_code == 201
    r = send(sb, headers, ten)
    assert r.status_code == 400
    assert error_of(r) == (
        "ServiceException",
        {
            "MessageId": "SVC0004",
            "Text": "No valid addresses provided in message part %1",
            "Variables": "address",
        },
    )
    assert [len(s["addresses"]) for s in sb.state()["sent"]] == [10]  # the refusal took nothing
    small = sandbox_factory(max_recipients=2)
    headers = {"Authorization": "Bearer " + get_token(small, client_id, client_secret)}
    assert send(small, headers, ten[:2]).status_code == 201
    assert error_of(send(small, headers, ten[:3]))[1]["MessageId"] == "SVC0004"
    unlimited = sandbox_factory(max_recipients=0)
    headers = {"Authorization": "Bearer " + get_token(unlimited, client_id, client_secret)}
    many = [f"tel:+1646555{2000 + i}" for i in range(60)]
    assert send(unlimited, headers, many).status_code == 201


NORMAL = "tel:+12125551234"


@pytest.mark.parametrize(
    "addresses, kind, exc",
    [
        (
            [NORMAL, "tel:+12125550000"],
            "ServiceException",
            {
                "MessageId": "SVC0001",
                "Text": "A service error occurred. Error code is %1",
                "Variables": "Landline",
            },
        ),
        (
            ["tel:+12125551111", NORMAL],
            "ServiceException",
            {
                "MessageId": "SVC0004",
                "Text": "No valid addresses provided in message part %1",
                "Variables": "address",
            },
        ),
        (
            [NORMAL, "tel:+447700900123", NORMAL, "tel:+447700900123", NORMAL],
            "PolicyException",
            {
                "MessageId": "POL0013",
                "Text": "Duplicated addresses %1",
                "Variables": "tel:+12125551234,tel:+447700900123",
            },
        ),
    ],
    ids=["landline", "unreachable", "duplicates"],
)
def test_send_refused_whole(sandbox: Sandbox, auth: dict, addresses, kind, exc) -> None:
    r = send(sandbox, auth, addresses)
    assert r.status_code == 400
    assert error_of(r) == (kind, exc)
    assert "Location" not in r.headers
    assert sandbox.state()["sent"] == []  # one bad address: nothing taken, nobody reached
    assert send(sandbox, auth, [NORMAL]).status_code == 201  # the good one alone goes out


def test_reserved_numbers_only_concern_destinations(sandbox: Sandbox, auth: dict) -> None:
    r = send(sandbox, auth, [NORMAL], senderAddress="tel:+12125550000")
    assert r.status_code == 201
    sandbox.inject_inbound("r", "tel:+12125551111", "from an odd number")
    (msg,) = inbox(sandbox, auth, "r").json()["inboundSMSMessageList"]["inboundSMSMessage"]
    assert msg["senderAddress"] == "tel:+12125551111"


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"outboundSMSRequest": "x"}', b"\xff", b""]
)
def test_send_malformed_body(sandbox: Sandbox, auth: dict, body: bytes) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    r = requests.post(sandbox.base_url + OUTBOX, data=body, headers=headers, timeout=5)
    assert r.status_code == 400
    kind, exc = error_of(r)
    assert kind == "ServiceException" and exc["MessageId"] == "SVC0002"


def test_send_invalid_sender_address(sandbox: Sandbox, auth: dict) -> None:
    r = send(sandbox, auth, ["tel:+12125551234"], senderAddress=12)
    assert r.status_code == 400
    assert error_of(r)[1]["Variables"] == "senderAddress"


# ----------------------------------------------------------------------------- status
def status_of(sb: Sandbox, headers: dict, mid: str) -> dict[str, str]:
    r = requests.get(f"{sb.base_url}{OUTBOX}/{mid}", headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    doc = r.json()["deliveryInfoList"]
    assert doc["resourceURL"] == f"{sb.base_url}{OUTBOX}/{mid}"
    return {i["address"]: i["deliveryStatus"] for i in doc["deliveryInfo"]}


def test_delivery_states_over_time(sandbox: Sandbox, auth: dict) -> None:
    normal, impossible, waiting = "tel:+12125551234", "tel:+12125559999", "tel:+12125558888"
    mid = send(sandbox, auth, [normal, impossible, waiting]).json()["outboundSMSResponse"][
        "messageId"
    ]
    assert status_of(sandbox, auth, mid) == {
        normal: "DeliveredToNetwork",
        impossible: "DeliveredToNetwork",
        waiting: "MessageWaiting",
    }
    time.sleep(0.4)
    assert status_of(sandbox, auth, mid) == {
        normal: "DeliveredToTerminal",
        impossible: "DeliveryImpossible",
        waiting: "MessageWaiting",
    }


def test_delivery_status_unknown_id(sandbox: Sandbox, auth: dict) -> None:
    r = requests.get(f"{sandbox.base_url}{OUTBOX}/SMSnope", headers=auth, timeout=5)
    assert r.status_code == 404
    kind, exc = error_of(r)
    assert (kind, exc["MessageId"], exc["Variables"]) == (
        "ServiceException",
        "SVC0002",
        "messageId",
    )


# ----------------------------------------------------------------------------- inbox
def inbox(sb: Sandbox, headers: dict, reg: str) -> requests.Response:
    return requests.get(f"{sb.base_url}{INBOX}/{reg}", headers=headers, timeout=5)


def test_inbox_drains_on_read(sandbox: Sandbox, auth: dict) -> None:
    first = sandbox.inject_inbound("reg-1", "tel:+12125559876", "On it")
    second = sandbox.inject_inbound(
        "reg-1",
        "tel:+12125559877",
        "Me too",
        destination_address="tel:+15550001",
        date_time="2026-04-19T10:00:00Z",
        message_id="in_fixed",
    )
    assert second == "in_fixed"
    assert sandbox.state()["pendingInbound"] == {"reg-1": 2}
    r = inbox(sandbox, auth, "reg-1")
    assert r.status_code == 200
    doc = r.json()["inboundSMSMessageList"]
    assert doc["numberOfMessagesInThisBatch"] == 2
    assert doc["totalNumberOfPendingMessages"] == 0
    assert doc["resourceURL"] == f"{sandbox.base_url}{INBOX}/reg-1"
    one, two = doc["inboundSMSMessage"]
    assert one["messageId"] == first and one["message"] == "On it"
    assert one["senderAddress"] == "tel:+12125559876" and RFC3339_Z.match(one["dateTime"])
    assert two == {
        "messageId": "in_fixed",
        "message": "Me too",
        "senderAddress": "tel:+12125559877",
        "destinationAddress": "tel:+15550001",
        "dateTime": "2026-04-19T10:00:00Z",
    }
    again = inbox(sandbox, auth, "reg-1").json()["inboundSMSMessageList"]
    assert again["inboundSMSMessage"] == [] and again["numberOfMessagesInThisBatch"] == 0
    assert sandbox.state()["pendingInbound"] == {"reg-1": 0}


def test_inbox_unknown_registration(sandbox: Sandbox, auth: dict) -> None:
    r = inbox(sandbox, auth, "nobody")
    assert r.status_code == 404
    kind, exc = error_of(r)
    assert (kind, exc["MessageId"], exc["Variables"]) == (
        "ServiceException",
        "SVC0002",
        "registrationId",
    )


def test_inbox_registrations_from_options_and_control(sandbox_factory, client_id, client_secret):
    sb = sandbox_factory(registrations=("alpha", "beta"))
    headers = {"Authorization": "Bearer " + get_token(sb, client_id, client_secret)}
    assert inbox(sb, headers, "alpha").status_code == 200
    assert inbox(sb, headers, "gamma").status_code == 404
    r = requests.post(
        sb.base_url + "/sandbox/registrations", json={"registrationId": "gamma"}, timeout=5
    )
    assert r.status_code == 201
    assert inbox(sb, headers, "gamma").json()["inboundSMSMessageList"]["inboundSMSMessage"] == []
    assert sb.state()["pendingInbound"] == {"alpha": 0, "beta": 0, "gamma": 0}


def test_inbox_batches(sandbox_factory, client_id: str, client_secret: str) -> None:
    sb = sandbox_factory(inbox_batch=2)
    headers = {"Authorization": "Bearer " + get_token(sb, client_id, client_secret)}
    ids = [sb.inject_inbound("r", "tel:+12125559876", f"m{i}") for i in range(5)]
    seen = []
    for expected_batch, expected_left in ((2, 3), (2, 1), (1, 0), (0, 0)):
        doc = inbox(sb, headers, "r").json()["inboundSMSMessageList"]
        assert doc["numberOfMessagesInThisBatch"] == expected_batch
        assert doc["totalNumberOfPendingMessages"] == expected_left
        seen += [m["messageId"] for m in doc["inboundSMSMessage"]]
    assert seen == ids


def test_inject_over_http(sandbox: Sandbox, auth: dict) -> None:
    r = requests.post(
        sandbox.base_url + "/sandbox/inbound",
        json={
            "registrationId": "ops",
            "senderAddress": "tel:+12125559876",
            "message": "hi <@here>",
        },
        timeout=5,
    )
    assert r.status_code == 201
    mid = r.json()["messageId"]
    (msg,) = inbox(sandbox, auth, "ops").json()["inboundSMSMessageList"]["inboundSMSMessage"]
    assert msg["messageId"] == mid and msg["message"] == "hi <@here>"
    bad = requests.post(sandbox.base_url + "/sandbox/inbound", json={"message": "x"}, timeout=5)
    assert bad.status_code == 400 and "registrationId" in bad.json()["error"]


# ----------------------------------------------------------------------------- raw inbox
HISTORICAL_INBOX = {
    "InboundSmsMessageList": {
        "InboundSmsMessage": [
            {"MessageId": "6c0c2d8a", "Message": "On it", "SenderAddress": "tel:2125559876"},
            {"Message": "no id here", "SenderAddress": "+12125559877"},
        ],
        "NumberOfMessagesInThisBatch": "2",
        "ResourceUrl": "http://example.invalid/inbox",
        "TotalNumberOfPendingMessages": "0",
    }
}


def test_raw_inbox_answered_once_exactly(sandbox: Sandbox, auth: dict) -> None:
    sandbox.inject_inbound("reg-raw", "tel:+12125559876", "stored")
    assert sandbox.inject_raw_inbox("reg-raw", HISTORICAL_INBOX, content_type="text/plain") == 1
    assert sandbox.state()["rawInboxPending"] == {"reg-raw": 1}
    r = inbox(sandbox, auth, "reg-raw")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain"
    assert json.loads(r.content) == HISTORICAL_INBOX
    assert sandbox.state()["pendingInbound"] == {"reg-raw": 1}  # stored messages untouched
    assert sandbox.state()["rawInboxPending"] == {}
    (msg,) = inbox(sandbox, auth, "reg-raw").json()["inboundSMSMessageList"]["inboundSMSMessage"]
    assert msg["message"] == "stored"  # the next read is the ordinary, spec-shaped one
    # deliberately off-spec: never recorded as a response violation (the fixture checks too)
    assert sandbox.response_violations == []


def test_raw_inbox_over_http_queues_in_order(sandbox: Sandbox, auth: dict) -> None:
    url = sandbox.base_url + "/sandbox/inbound-raw"
    text = (
        '{"inboundSMSMessageList": {"inboundSMSMessage": [], "numberOfMessagesInThisBatch": "0"}}'
    )
    bodies = [
        {
            "registrationId": "new-reg",
            "body": text,
            "contentType": "application/json;charset=UTF-8",
        },
        {"registrationId": "new-reg", "body": {"x": 1}, "contentType": None, "status": 202},
        {"registrationId": "new-reg", "body": "<html>busy</html>", "status": 503},
    ]
    for n, doc in enumerate(bodies, 1):
        r = requests.post(url, json=doc, timeout=5)
        assert r.status_code == 201 and r.json() == {"registrationId": "new-reg", "rawPending": n}
    assert "new-reg" in sandbox.state()["registrations"]
    first = inbox(sandbox, auth, "new-reg")
    assert (first.status_code, first.text) == (200, text)
    assert first.headers["Content-Type"] == "application/json;charset=UTF-8"
    second = inbox(sandbox, auth, "new-reg")
    assert second.status_code == 202 and second.content == b'{"x": 1}'
    assert "Content-Type" not in second.headers
    third = inbox(sandbox, auth, "new-reg")
    assert (third.status_code, third.text) == (503, "<html>busy</html>")
    assert third.headers["Content-Type"] == "application/json"
    assert (
        inbox(sandbox, auth, "new-reg").json()["inboundSMSMessageList"]["inboundSMSMessage"] == []
    )


def test_raw_inbox_still_needs_a_token_and_reset_drops_it(sandbox: Sandbox, auth: dict) -> None:
    sandbox.inject_raw_inbox("r", HISTORICAL_INBOX)
    assert inbox(sandbox, {}, "r").status_code == 401
    assert sandbox.state()["rawInboxPending"] == {"r": 1}  # refused reads do not use it up
    sandbox.add_fault(INBOX, status=503)
    assert inbox(sandbox, auth, "r").status_code == 503  # a "before" fault keeps it queued too
    assert inbox(sandbox, auth, "r").json() == HISTORICAL_INBOX
    sandbox.inject_raw_inbox("r", HISTORICAL_INBOX)
    sandbox.reset()
    assert sandbox.state()["rawInboxPending"] == {}


@pytest.mark.parametrize(
    "doc",
    [
        {"body": {}},
        {"registrationId": "", "body": {}},
        {"registrationId": "r"},
        {"registrationId": "r", "body": {}, "status": 99},
        {"registrationId": "r", "body": {}, "status": "200"},
        {"registrationId": "r", "body": {}, "contentType": 5},
        {"registrationId": "r", "body": {}, "bogus": 1},
    ],
)
def test_raw_inbox_rejects_bad_requests(sandbox: Sandbox, doc: dict) -> None:
    r = requests.post(sandbox.base_url + "/sandbox/inbound-raw", json=doc, timeout=5)
    assert r.status_code == 400 and r.json()["error"]
    assert sandbox.state()["rawInboxPending"] == {}


def test_raw_inbox_python_api_validates(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.inject_raw_inbox("", {})
    with pytest.raises(ValueError):
        sandbox.inject_raw_inbox("r", {}, status=700)


# ----------------------------------------------------------------------------- HTTP details
def test_unknown_path_and_wrong_method(sandbox: Sandbox, auth: dict) -> None:
    r = requests.get(sandbox.base_url + "/nope", headers=auth, timeout=5)
    assert r.status_code == 404
    error_of(r)
    r = requests.get(sandbox.base_url + OUTBOX, headers=auth, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.delete(f"{sandbox.base_url}{INBOX}/x", headers=auth, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"


def test_keep_alive_and_connection_count(sandbox: Sandbox, client_id, client_secret) -> None:
    with requests.Session() as s:
        r = s.post(
            sandbox.base_url + TOKEN,
            data=token_form(client_id, client_secret),
        )
        headers = {"Authorization": "Bearer " + r.json()["access_token"]}
        for _ in range(5):
            r = s.post(
                sandbox.base_url + OUTBOX,
                json={"outboundSMSRequest": {"address": ["tel:+12125551234"], "message": "k"}},
                headers=headers,
            )
            assert r.status_code == 201
            assert r.raw.version == 11
            assert "Content-Length" in r.headers
    state = sandbox.state()
    assert state["connections"] == 1
    assert state["requests"] == {"POST /oauth/v4/token": 1, SEND: 5}


def test_fifty_concurrent_clients(sandbox: Sandbox, auth: dict) -> None:
    def one(i: int) -> str:
        r = send(sandbox, auth, [f"tel:+1212555{2000 + i}"], f"m{i}")  # no reserved suffix
        assert r.status_code == 201
        return r.json()["outboundSMSResponse"]["messageId"]

    with ThreadPoolExecutor(50) as pool:
        ids = list(pool.map(one, range(200)))
    assert len(set(ids)) == 200
    state = sandbox.state()
    assert len(state["sent"]) == 200 and state["requests"][SEND] == 200
    assert state["connections"] >= 50


def test_reset(sandbox: Sandbox, auth: dict) -> None:
    send(sandbox, auth, ["tel:+12125551234"])
    sandbox.inject_inbound("r", "tel:+12125559876", "x")
    sandbox.add_fault(OUTBOX, count=3, status=503)
    r = requests.post(sandbox.base_url + "/sandbox/reset", timeout=5)
    assert r.status_code == 200
    state = sandbox.state()
    assert state["sent"] == [] and state["pendingInbound"] == {} and state["faultsPending"] == 0
    assert state["tokenRequests"] == 0 and state["requests"] == {}
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 401  # tokens are gone too


def test_state_over_http_matches_python(sandbox: Sandbox, auth: dict) -> None:
    send(sandbox, auth, ["tel:+12125551234"])
    r = requests.get(sandbox.base_url + "/sandbox/state", timeout=5)
    assert r.status_code == 200
    doc = r.json()
    for key in (
        "tokenRequests",
        "tokensIssued",
        "connections",
        "requests",
        "sent",
        "pendingInbound",
        "specViolations",
        "requestViolations",
        "responseViolations",
        "faultsPending",
        "rawInboxPending",
    ):
        assert key in doc
    assert doc["sent"] == sandbox.state()["sent"]


# ----------------------------------------------------------------------------- faults
def test_fault_respond_status_body_headers(sandbox: Sandbox, auth: dict) -> None:
    sandbox.add_fault(OUTBOX, method="POST", status=503, body="busy", headers={"Retry-After": "1"})
    r = send(sandbox, auth, ["tel:+12125551234"])
    assert r.status_code == 503 and r.text == "busy" and r.headers["Retry-After"] == "1"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert sandbox.state()["sent"] == []  # "before": nothing was sent
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 201  # count=1 used up


def test_fault_default_body_json_and_content_type(sandbox: Sandbox, auth: dict) -> None:
    sandbox.add_fault(OUTBOX, status=500)
    r = send(sandbox, auth, ["tel:+12125551234"])
    assert r.status_code == 500 and error_of(r)[1]["MessageId"] == "SVC0001"
    body = {
        "RequestError": {
            "PolicyException": {"MessageId": "POL0004", "Text": "t %1", "Variables": "v"}
        }
    }
    sandbox.add_fault(OUTBOX, status=429, body=body, content_type="application/json;charset=UTF-8")
    r = send(sandbox, auth, ["tel:+12125551234"])
    assert r.status_code == 429 and r.json() == body
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"


def test_fault_matching_count_method_prefix(sandbox: Sandbox, auth: dict) -> None:
    sandbox.inject_inbound("r", "tel:+12125559876", "x")
    sandbox.add_fault("/sms/v3/messaging/", method="GET", count=2, status=502)
    assert sandbox.state()["faultsPending"] == 2
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 201  # POST not matched
    assert inbox(sandbox, auth, "r").status_code == 502
    assert requests.get(f"{sandbox.base_url}{OUTBOX}/x", headers=auth, timeout=5).status_code == 502
    assert inbox(sandbox, auth, "r").status_code == 200
    assert sandbox.state()["faultsPending"] == 0


def test_fault_after_keeps_the_effect(sandbox: Sandbox, auth: dict) -> None:
    sandbox.add_fault(OUTBOX, status=500, when="after")
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 500
    assert len(sandbox.state()["sent"]) == 1  # recorded although the answer was an error
    sandbox.inject_inbound("r", "tel:+12125559876", "x")
    sandbox.add_fault(INBOX, status=503, when="after")
    assert inbox(sandbox, auth, "r").status_code == 503
    assert sandbox.state()["pendingInbound"] == {"r": 0}  # drained all the same


def test_fault_before_keeps_inbox(sandbox: Sandbox, auth: dict) -> None:
    sandbox.inject_inbound("r", "tel:+12125559876", "x")
    sandbox.add_fault(INBOX, status=503)
    assert inbox(sandbox, auth, "r").status_code == 503
    assert sandbox.state()["pendingInbound"] == {"r": 1}


@pytest.mark.parametrize("when, recorded", [("before", 0), ("after", 1)])
def test_fault_drop(sandbox: Sandbox, auth: dict, when: str, recorded: int) -> None:
    sandbox.add_fault(OUTBOX, action="drop", when=when)
    with pytest.raises(requests.exceptions.ConnectionError):
        send(sandbox, auth, ["tel:+12125551234"])
    assert len(sandbox.state()["sent"]) == recorded
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 201


@pytest.mark.parametrize("when, recorded", [("before", 0), ("after", 1)])
def test_fault_reset_sends_half_then_rst(sandbox: Sandbox, auth: dict, when: str, recorded: int):
    sandbox.add_fault(OUTBOX, action="reset", when=when)
    body = json.dumps({"outboundSMSRequest": {"address": ["tel:+12125551234"], "message": "r"}})
    host, port = sandbox.base_url.rsplit("/", 1)[1].split(":")
    raw = (
        f"POST {OUTBOX} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    received = b""
    reset = False
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(raw)
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            reset = True
    assert reset, "the connection must end with RST"
    if received:  # the kernel may discard unread data when the RST lands
        head, _, partial = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert 0 < len(partial) < length
    assert len(sandbox.state()["sent"]) == recorded
    sandbox.add_fault(OUTBOX, action="reset")
    with pytest.raises(
        (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    ):
        send(sandbox, auth, ["tel:+12125551234"])


@pytest.mark.parametrize("when, recorded, status", [("before", 0, 201), ("after", 1, 201)])
def test_fault_malformed(
    sandbox: Sandbox, auth: dict, when: str, recorded: int, status: int
) -> None:
    sandbox.add_fault(OUTBOX, action="malformed", when=when)
    r = send(sandbox, auth, ["tel:+12125551234"])
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()
    assert len(sandbox.state()["sent"]) == recorded


def test_fault_delay_without_status_answers_late(sandbox: Sandbox, auth: dict) -> None:
    sandbox.add_fault(OUTBOX, delay=1.0)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            sandbox.base_url + OUTBOX,
            json={"outboundSMSRequest": {"address": ["tel:+12125551234"], "message": "late"}},
            headers=auth,
            timeout=(3, 0.3),
        )
    assert sandbox.state()["sent"] == []  # "before": processed only after the delay
    deadline = time.monotonic() + 5
    while not sandbox.state()["sent"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox.state()["sent"]) == 1 and time.monotonic() - started >= 1.0
    sandbox.add_fault(OUTBOX, delay=0.5, when="after")
    r = send(sandbox, auth, ["tel:+12125551234"])
    assert r.status_code == 201 and len(sandbox.state()["sent"]) == 2


def test_faults_over_http(sandbox: Sandbox, auth: dict) -> None:
    url = sandbox.base_url + "/sandbox/faults"
    r = requests.post(
        url,
        json={
            "path": OUTBOX,
            "method": "POST",
            "count": 2,
            "status": 429,
            "body": {"x": 1},
            "headers": {"Retry-After": "1"},
            "contentType": "application/json",
            "delay": 0,
            "action": "respond",
            "when": "before",
        },
        timeout=5,
    )
    assert r.status_code == 201 and r.json() == {"faultsPending": 2}
    r = send(sandbox, auth, ["tel:+12125551234"])
    assert r.status_code == 429 and r.json() == {"x": 1} and r.headers["Retry-After"] == "1"
    assert requests.delete(url, timeout=5).status_code == 200
    assert sandbox.state()["faultsPending"] == 0
    assert send(sandbox, auth, ["tel:+12125551234"]).status_code == 201
    for bad in (
        {"path": OUTBOX, "action": "explode"},
        {"path": OUTBOX, "when": "never"},
        {"path": OUTBOX, "count": 0},
        {"method": "GET"},
        {"path": "/sandbox/state"},
        {"path": OUTBOX, "status": 99},
        {"path": OUTBOX, "bogus": 1},
    ):
        r = requests.post(url, json=bad, timeout=5)
        assert r.status_code == 400, bad
    sandbox.add_fault(OUTBOX, status=500)
    sandbox.clear_faults()
    assert sandbox.state()["faultsPending"] == 0


def test_add_fault_validates_arguments(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.add_fault(OUTBOX, action="nope")
    with pytest.raises(ValueError):
        sandbox.add_fault(OUTBOX, delay=-1)


# ----------------------------------------------------------------------------- validation
def test_spec_checker_catches_bad_responses() -> None:
    from carrier_sandbox.spec_check import SpecChecker

    checker = SpecChecker()
    path = OUTBOX + "/abc"
    tmpl = OUTBOX + "/{messageId}"
    ok = json.dumps(
        {
            "deliveryInfoList": {
                "deliveryInfo": [{"address": "a", "deliveryStatus": "DeliveredToTerminal"}]
            }
        }
    )
    check = lambda status, body, ctype="application/json": checker.check_response(  # noqa: E731
        "GET", path, tmpl, status=status, headers={}, body=body.encode(), content_type=ctype
    )
    assert check(200, ok) == []
    assert check(200, ok.replace("DeliveredToTerminal", "Lost"))
    assert check(500, "{}")  # undocumented status
    assert check(200, ok, "text/plain")
    assert check(401, '{"RequestError": {"PolicyException": {"MessageId": "POL0001"}}}') == []
    assert check(401, '{"RequestError": 5}')


def test_validation_never_breaks_requests(sandbox: Sandbox, auth: dict) -> None:
    r = requests.post(
        sandbox.base_url + TOKEN, data=b"\x00\xff", headers={"Content-Type": "x/y"}, timeout=5
    )
    assert r.status_code == 400
    r = requests.post(sandbox.base_url + OUTBOX, data=b"\xff", headers=auth, timeout=5)
    assert r.status_code == 400
    assert sandbox.state()["requestViolations"]
    assert not any("crashed" in v for v in sandbox.state()["specViolations"])


def test_violations_never_contain_secrets(sandbox: Sandbox, client_id, client_secret) -> None:
    form = {"grant_type": "nope", "client_id": client_id, "client_secret": client_secret}
    requests.post(sandbox.base_url + TOKEN, data=form, timeout=5)
    tok = get_token(sandbox, client_id, client_secret)
    requests.post(
        sandbox.base_url + OUTBOX,
        json={"x": 1},
        headers={"Authorization": "Bearer " + tok},
        timeout=5,
    )
    dumped = json.dumps(sandbox.state())
    assert sandbox.state()["requestViolations"]
    assert client_secret not in dumped and tok not in dumped


# ----------------------------------------------------------------------------- persistence
def test_sqlite_state_survives_restart(tmp_path: Path, client_id: str, client_secret: str) -> None:
    db = str(tmp_path / "sandbox.db")
    opts = dict(client_id=client_id, client_secret=client_secret, delivery_delay=0.2, validate=True)
    with Sandbox(db_path=db, registrations=("ops",), **opts) as first:
        headers = {"Authorization": "Bearer " + get_token(first, client_id, client_secret)}
        mid = send(first, headers, ["tel:+12125551234"]).json()["outboundSMSResponse"]["messageId"]
        first.inject_inbound("ops", "tel:+12125559876", "persisted")
        first.inject_inbound("other", "tel:+12125559876", "too")
    time.sleep(0.25)
    with Sandbox(db_path=db, **opts) as second:
        assert status_of(second, headers, mid) == {"tel:+12125551234": "DeliveredToTerminal"}
        assert second.state()["pendingInbound"] == {"ops": 1, "other": 1}
        (msg,) = inbox(second, headers, "ops").json()["inboundSMSMessageList"]["inboundSMSMessage"]
        assert msg["message"] == "persisted"
        assert [s["messageId"] for s in second.state()["sent"]] == [mid]
        assert second.response_violations == []
    with Sandbox(db_path=db, **opts) as third:
        assert third.state()["pendingInbound"] == {"ops": 0, "other": 1}
    assert first.response_violations == []


def test_in_memory_state_is_per_instance(sandbox_factory) -> None:
    a = sandbox_factory()
    a.inject_inbound("r", "tel:+12125559876", "x")
    b = sandbox_factory()
    assert b.state()["pendingInbound"] == {}


def test_stop_closes_kept_alive_connections(sandbox_factory, client_id, client_secret) -> None:
    sb = sandbox_factory()
    with requests.Session() as s:
        form = token_form(client_id, client_secret)
        assert s.post(sb.base_url + TOKEN, data=form, timeout=5).status_code == 200
        sb.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            s.post(sb.base_url + TOKEN, data=form, timeout=5)


# ----------------------------------------------------------------------------- CLI
def _read_line(proc: subprocess.Popen, timeout: float = 15) -> str:
    with selectors.PollSelector() as selector:  # select(2) fails past 1024 open files
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout), "sandbox did not print its address"
    return proc.stdout.readline()


def _start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})}
    for name in ("SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET"):
        if env is None or name not in env:
            full_env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "carrier_sandbox", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops(sig: signal.Signals) -> None:
    secret = "cli-secret-9d8e7f"
    proc = _start_cli(env={"SANDBOX_CLIENT_ID": "cli-id", "SANDBOX_CLIENT_SECRET": secret})
    try:
        line = _read_line(proc)
        match = re.fullmatch(r"sandbox listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        base = match.group(1)
        assert int(match.group(2)) > 0
        r = requests.post(
            base + TOKEN,
            data=token_form("cli-id", secret),
            timeout=5,
        )
        assert r.status_code == 200
        token = r.json()["access_token"]
        r = requests.post(
            base + OUTBOX,
            json={"outboundSMSRequest": {"address": ["tel:+12125551234"], "message": "cli"}},
            headers={"Authorization": "Bearer " + token},
            timeout=5,
        )
        assert r.status_code == 201
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    output = line + out + err
    assert out == ""
    assert secret not in output and token not in output


def test_cli_flags(tmp_path: Path) -> None:
    secret = "flag-secret-1a2b3c"
    db = tmp_path / "cli.db"
    proc = _start_cli(
        "--client-id",
        "flag-id",
        "--client-secret",
        secret,
        "--token-ttl",
        "120",
        "--delivery-delay",
        "0",
        "--registration",
        "one",
        "--registration",
        "two",
        "--db",
        str(db),
        "--validate",
        "--inbox-batch",
        "1",
        "--max-recipients",
        "1",
    )
    try:
        line = _read_line(proc)
        base = line.strip().rsplit(" ", 1)[1]
        r = requests.post(
            base + TOKEN,
            data=token_form("flag-id", secret),
            timeout=5,
        )
        assert r.json()["expires_in"] == 120
        headers = {"Authorization": "Bearer " + r.json()["access_token"]}
        two = ["tel:+12125551234", "tel:+12125551235"]
        r = requests.post(
            base + OUTBOX,
            json={"outboundSMSRequest": {"address": two, "message": "m"}},
            headers=headers,
            timeout=5,
        )
        assert (
            r.status_code == 400
            and r.json()["RequestError"]["ServiceException"]["MessageId"] == "SVC0004"
        )
        r = requests.post(
            base + OUTBOX,
            json={"outboundSMSRequest": {"address": two[:1], "message": "m"}},
            headers=headers,
            timeout=5,
        )
        mid = r.json()["outboundSMSResponse"]["messageId"]
        r = requests.get(f"{base}{OUTBOX}/{mid}", headers=headers, timeout=5)
        assert (
            r.json()["deliveryInfoList"]["deliveryInfo"][0]["deliveryStatus"]
            == "DeliveredToTerminal"
        )
        for _ in range(2):
            requests.post(
                base + "/sandbox/inbound",
                json={"registrationId": "one", "senderAddress": "tel:+12125559876", "message": "x"},
                timeout=5,
            )
        doc = requests.get(f"{base}{INBOX}/one", headers=headers, timeout=5).json()[
            "inboundSMSMessageList"
        ]
        assert doc["numberOfMessagesInThisBatch"] == 1 and doc["totalNumberOfPendingMessages"] == 1
        requests.post(
            base + OUTBOX,
            json={"outboundSMSRequest": {"address": two[:1], "message": "x" * 161}},
            headers=headers,
            timeout=5,
        )
        state = requests.get(base + "/sandbox/state", timeout=5).json()
        assert state["pendingInbound"] == {"one": 1, "two": 0}
        assert len(state["requestViolations"]) == 1 and state["responseViolations"] == []
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert secret not in line + out + err
    assert db.exists()


def test_cli_max_addresses_is_kept_as_an_alias() -> None:
    from carrier_sandbox.cli import parser

    assert parser().parse_args([]).max_recipients == 10
    assert parser().parse_args(["--max-addresses", "3"]).max_recipients == 3
    assert parser().parse_args(["--max-recipients", "0"]).max_recipients == 0


def test_cli_port_in_use_fails_cleanly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "carrier_sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "PYTHONPATH": PYTHONPATH},
        )
    assert proc.returncode != 0
    assert "sandbox listening" not in proc.stdout


def test_context_manager_and_threads_stop(client_id: str, client_secret: str) -> None:
    before = threading.active_count()
    with Sandbox(client_id=client_id, client_secret=client_secret) as sb:
        assert get_token(sb, client_id, client_secret)
    deadline = time.monotonic() + 3
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
