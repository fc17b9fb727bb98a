"""The client's requests to fixed URLs are prepared once and copied (carrier/transport.py):
what goes out must be what ``Session.prepare_request`` makes of the same arguments."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from att_sms.carrier.client import OUTBOX_PATH, TOKEN_PATH, AttSmsClient
from att_sms.carrier.transport import PreparedRequests, build_retry, build_session
from requests.adapters import HTTPAdapter

from carrier_sandbox import Sandbox

BASE = "http://127.0.0.1:8080/api"
OUTBOX = BASE + OUTBOX_PATH
TOKEN = BASE + TOKEN_PATH


def session() -> requests.Session:
    return build_session(10, build_retry(3, 0.3, 10.0), 30.0, BASE)


def as_sent(prepared: requests.PreparedRequest) -> tuple[Any, ...]:
    """What goes on the wire: method, URL, headers (any case), body."""
    headers = {name.lower(): value for name, value in prepared.headers.items()}
    return prepared.method, prepared.url, headers, prepared.body


def full(s: requests.Session, method: str, url: str, **kwargs: Any) -> requests.PreparedRequest:
    """What ``Session.request`` prepares (it passes ``data or {}``)."""
    data = kwargs.pop("data", None)
    return s.prepare_request(requests.Request(method, url, data=data or {}, **kwargs))


SEND = {
    "headers": {"Authorization": "Bearer abc"},
    "json": {"outboundSMSRequest": {"address": ["tel:+12125551234"], "message": "ü & <b>"}},
}
FORM = {"data": {"grant_type": "client_credentials", "client_id": "id", "client_secret": "s&=?"}}


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [("POST", OUTBOX, SEND), ("POST", TOKEN, FORM), ("POST", OUTBOX, {}), ("GET", BASE, {})],
)
def test_a_fixed_url_is_prepared_as_the_session_would(
    method: str, url: str, kwargs: dict[str, Any]
) -> None:
    s = session()
    fixed = PreparedRequests(s, [("POST", OUTBOX), ("POST", TOKEN), ("GET", BASE)])
    for _ in range(2):  # the template's first use, and a copy of it
        assert as_sent(fixed.prepare(method, url, **kwargs)) == as_sent(full(s, method, url, **kwargs))


def test_the_session_s_cookies_of_the_moment_are_sent() -> None:
    s = session()
    fixed = PreparedRequests(s, [("POST", OUTBOX)])
    before = fixed.prepare("POST", OUTBOX, **SEND)
    assert "cookie" not in {name.lower() for name in before.headers}
    s.cookies.set("lb", "node-7", domain="127.0.0.1", path="/")
    after = fixed.prepare("POST", OUTBOX, **SEND)
    assert after.headers["Cookie"] == "lb=node-7"
    assert as_sent(after) == as_sent(full(s, "POST", OUTBOX, **SEND))


def test_another_url_is_prepared_in_full() -> None:
    s = session()
    fixed = PreparedRequests(s, [("POST", OUTBOX)])
    status = OUTBOX + "/abc%2F1"
    assert as_sent(fixed.prepare("GET", status, headers={"Authorization": "Bearer abc"})) == as_sent(
        full(s, "GET", status, headers={"Authorization": "Bearer abc"})
    )
    assert fixed.prepare("GET", OUTBOX).method == "GET"  # a fixed URL with another method


def test_a_bad_fixed_url_fails_when_used_not_when_built() -> None:
    fixed = PreparedRequests(session(), [("POST", "http://")])
    with pytest.raises(requests.RequestException):
        fixed.prepare("POST", "http://", json={})


def test_client_sends_reach_the_carrier_as_before(
    sandbox: Sandbox, client_id: str, client_secret: str
) -> None:
    with AttSmsClient(sandbox.base_url, client_id, client_secret) as client:
        ids = {client.send(["tel:+12125551234"], f"prepared once {i}").message_id for i in range(3)}
    assert len(ids) == 3
    assert client.token_requests == 1


def test_user_info_in_a_fixed_url_still_wins_as_prepare_applies_it_last() -> None:
    """Settings refuse such URLs; the client alone still prepares them as requests does."""
    url = "http://user:pw@127.0.0.1:8080/api" + OUTBOX_PATH
    s = build_session(10, build_retry(3, 0.3, 10.0), 30.0, "http://127.0.0.1:8080/api")
    fixed = PreparedRequests(s, [("POST", url)])
    for _ in range(2):
        assert as_sent(fixed.prepare("POST", url, **SEND)) == as_sent(full(s, "POST", url, **SEND))


def test_the_adapter_finds_the_pool_requests_would_and_forgets_it_on_close() -> None:
    """The pool is the one requests itself would choose, whatever the origin and settings."""
    s = session()
    adapter = s.get_adapter(OUTBOX)
    fixed = PreparedRequests(s, [("POST", OUTBOX)])
    send = fixed.prepare("POST", OUTBOX, **SEND)
    cases = [
        (send, s.verify),
        (fixed.prepare("GET", OUTBOX + "/x"), s.verify),
        (fixed.prepare("GET", "http://127.0.0.2:8080/x"), s.verify),
        (send, False),
    ]
    for _ in range(2):
        for request, verify in cases:
            pool = adapter.get_connection_with_tls_context(request, verify, proxies={})
            assert pool is HTTPAdapter.get_connection_with_tls_context(
                adapter, request, verify, proxies={}
            )
    before = adapter.get_connection_with_tls_context(send, s.verify, proxies={})
    s.close()  # closing the session forgets every pool, as requests does
    after = adapter.get_connection_with_tls_context(send, s.verify, proxies={})
    assert after is not before and after.pool is not None
    assert after is HTTPAdapter.get_connection_with_tls_context(adapter, send, s.verify, proxies={})


def test_sends_after_the_pools_were_closed_still_go_out(
    sandbox: Sandbox, client_id: str, client_secret: str
) -> None:
    with AttSmsClient(sandbox.base_url, client_id, client_secret) as client:
        assert client.send(["tel:+12125551234"], "before").message_id
        client._session.close()  # every pool closed and forgotten
        assert client.send(["tel:+12125551234"], "after").message_id
