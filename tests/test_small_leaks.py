"""Small leaks closed: proxies for a local carrier, encoded secrets in error texts, carrier
answers of any size, over-long inbound texts.

Real HTTP throughout: the carrier sandbox, and small servers of the test's own where a
carrier (or a proxy) must misbehave in a way the sandbox does not.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from att_sms.carrier.answer_limits import MAX_ANSWER_BYTES, MAX_STORED_TEXT, AnswerTooLarge
from att_sms.carrier.client import AttSmsClient
from att_sms.carrier.errors import AuthenticationError, ProtocolError
from att_sms.inbound.fetcher import drain_into
from att_sms.store import open_store

from carrier_sandbox import Sandbox

REG = "reg-leaks"
#: A secret whose encodings all differ from it: space, +, /, quote, backslash, é, &, =.
ODD_SECRET = 'p@ss w0rd+/"\\é&=x'


class FakeServer:
    """A real HTTP server on loopback; ``answer(handler)`` writes each response."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[tuple[str, str, bytes]] = []  # (method, path, body)
        self.sent_bytes = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, body))
                answer(self)

            do_GET = do_POST = do_HEAD = do_CONNECT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", headers.pop("content_type", "application/json"))
    handler.send_header("Content-Length", headers.pop("content_length", str(len(body))))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    started: list[FakeServer] = []
    yield started
    for server in started:
        server.stop()


def token_answer(handler: BaseHTTPRequestHandler) -> bool:
    """Answer a token request with a token; False for any other path."""
    if not handler.path.startswith("/oauth/"):
        return False
    token = {"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600}
    reply(handler, 200, json.dumps(token).encode())
    return True


# -- proxies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_no_proxy_for_a_loopback_carrier(
    host: str, sandbox: Sandbox, client_id: str, client_secret: str,
    servers: list[FakeServer], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    proxy = FakeServer(lambda h: reply(h, 502, b"{}"))
    servers.append(proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    base_url = sandbox.base_url.replace("127.0.0.1", host)
    with AttSmsClient(base_url, client_id, client_secret) as client:
        assert client.send(["tel:+12125551234"], "through no proxy").message_id
    assert proxy.requests == []


def test_a_remote_carrier_still_uses_the_proxy(
    servers: list[FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only loopback is exempt: the environment's proxy still carries remote traffic."""
    proxy = FakeServer(lambda h: reply(h, 502, b"{}"))
    servers.append(proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with AttSmsClient("https://carrier.example", "id", "secret", backoff_factor=0.01) as client:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the proxy refuses the tunnel
            client.ensure_token()
    assert [(m, p) for m, p, _ in proxy.requests][:1] == [("CONNECT", "carrier.example:443")]


# -- redaction -------------------------------------------------------------------------------


def encodings(secret: str, client_id: str) -> dict[str, str]:
    pair = f"{client_id}:{secret}".encode()
    return {
        "raw": secret,
        "form": quote_plus(secret, safe=""),
        "form, mixed-case hex": quote_plus(secret, safe="")
        .replace("%2F", "%2f")
        .replace("C3", "c3"),
        "percent": quote(secret, safe=""),
        "json": json.dumps(secret)[1:-1],
        "json, utf-8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "basic": base64.b64encode(pair).decode(),
        "base64": base64.b64encode(secret.encode()).decode(),
    }


def test_every_encoding_of_the_secret_is_blanked_in_error_texts(
    servers: list[FakeServer],
) -> None:
    """A gateway quoting the token request back, in every shape, in its OAuth error."""
    shapes = encodings(ODD_SECRET, "cid")

    def answer(handler: BaseHTTPRequestHandler) -> None:
        described = "; ".join(f"{name}=<{shape}>" for name, shape in shapes.items())
        form = carrier.requests[-1][2].decode()
        doc = {"error": "invalid_client", "error_description": f"got {form}; {described}"}
        reply(handler, 401, json.dumps(doc).encode())

    carrier = FakeServer(answer)
    servers.append(carrier)
    with AttSmsClient(carrier.url, "cid", ODD_SECRET) as client:
        with pytest.raises(AuthenticationError) as err:
            client.ensure_token()
    text = str(err.value)
    assert "invalid_client" in text and "***" in text
    leaked = [name for name, shape in shapes.items() if shape in text]
    assert leaked == [], f"{leaked} in {text!r}"
    assert quote_plus(ODD_SECRET, safe="") in carrier.requests[-1][2].decode()  # it was sent


# -- answer sizes ----------------------------------------------------------------------------


def inbox_body(text: str) -> dict[str, Any]:
    item = {"messageId": "m1", "message": text, "senderAddress": "tel:+12125550101"}
    return {"inboundSMSMessageList": {"inboundSMSMessage": [item], "numberOfMessagesInThisBatch": 1,
                                      "totalNumberOfPendingMessages": 0}}  # fmt: skip


def test_an_inbox_answer_over_the_cap_is_a_typed_error_and_nothing_is_stored(
    sandbox: Sandbox, client_id: str, client_secret: str, tmp_path: Path
) -> None:
    sandbox.inject_raw_inbox(REG, inbox_body("x" * 200_000))
    store = open_store(tmp_path)
    try:
        with AttSmsClient(
            sandbox.base_url, client_id, client_secret, max_answer_bytes=100_000
        ) as client:
            with pytest.raises(AnswerTooLarge) as err:
                drain_into(client, store, REG)
            assert isinstance(err.value, ProtocolError)
            assert "larger than the 100,000 bytes the bot reads" in str(err.value)
            assert store.pending() == []
            sandbox.inject_inbound(REG, "tel:+12125550102", "small one after")
            assert drain_into(client, store, REG) == 1  # the client is fine afterwards
        assert [m.message for m in store.pending()] == ["small one after"]
    finally:
        store.close()


def endless(handler: BaseHTTPRequestHandler, server: FakeServer, total: int, length: bool) -> None:
    """A 200 answer of ``total`` bytes made on the fly (chunked unless ``length``)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    if length:
        handler.send_header("Content-Length", str(total))
    else:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    block = b'{"inboundSMSMessageList": {"inboundSMSMessage": [' + b" " * 65_000
    try:
        while server.sent_bytes < total:
            data = block[: total - server.sent_bytes]
            frame = data if length else b"%x\r\n%s\r\n" % (len(data), data)
            handler.wfile.write(frame)
            server.sent_bytes += len(data)
    except OSError:
        return  # the client hung up: what it should do
    if not length:
        handler.wfile.write(b"0\r\n\r\n")


@pytest.mark.parametrize("announced", [False, True], ids=["chunked", "content-length"])
def test_a_huge_answer_is_not_held_in_memory(servers: list[FakeServer], announced: bool) -> None:
    """A 100 MiB inbox answer: refused after at most the cap, memory stays near the cap."""
    total = 100 * 1024 * 1024
    holder: list[FakeServer] = []

    def answer(handler: BaseHTTPRequestHandler) -> None:
        if not token_answer(handler):
            endless(handler, holder[0], total, announced)

    carrier = FakeServer(answer)
    holder.append(carrier)
    servers.append(carrier)
    with AttSmsClient(carrier.url, "cid", "secret") as client:
        client.ensure_token()
        tracemalloc.start()
        try:
            with pytest.raises(AnswerTooLarge):
                client.fetch_inbound(REG)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * MAX_ANSWER_BYTES, f"peak {peak:,} bytes"
    time.sleep(0.2)
    assert carrier.sent_bytes < total / 2  # the client stopped reading


def test_an_oversized_send_answer_is_uncertain_not_resent(servers: list[FakeServer]) -> None:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        if not token_answer(handler):
            reply(
                handler, 201, b'{"outboundSMSResponse": {"messageId": "' + b"9" * 300_000 + b'"}}'
            )

    carrier = FakeServer(answer)
    servers.append(carrier)
    with AttSmsClient(carrier.url, "cid", "secret", max_answer_bytes=100_000) as client:
        with pytest.raises(AnswerTooLarge) as err:
            client.send(["tel:+12125551234"], "hello")
    assert "may have been sent: check before sending it again" in str(err.value)
    assert [m for m, p, _ in carrier.requests if "outbox" in p] == ["POST"]  # sent once


def test_a_stored_inbound_text_is_capped(
    sandbox: Sandbox, client_id: str, client_secret: str, tmp_path: Path
) -> None:
    long_text = "word " * 12_000  # 60,000 characters
    sandbox.inject_inbound(REG, "tel:+12125550103", long_text)
    store = open_store(tmp_path)
    try:
        with AttSmsClient(sandbox.base_url, client_id, client_secret) as client:
            assert drain_into(client, store, REG) == 1
        stored = store.pending()[0].message
        assert stored.startswith(long_text[:MAX_STORED_TEXT])
        assert stored.endswith("[20,000 more characters not kept]")
        assert len(stored) < MAX_STORED_TEXT + 60
    finally:
        store.close()
