"""Carrier sandbox: a local HTTP server implementing the AT&T SMS API spec.

Run ``python -m att_sms.sandbox --host 127.0.0.1 --port 8080`` or, in-process,
``with Sandbox() as sb: ...``. Besides the spec's operations (OAuth v4 token, SMS v3
outbox/status/inbox) it serves unauthenticated control endpoints under
``/sandbox/`` to inject inbound messages, faults and token expiry, and to read its
state. See docs/SANDBOX.md. Secrets and issued tokens are never printed or logged.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .sandbox_store import SentMessage, Store, rfc3339

log = logging.getLogger("att_sms.sandbox")

TOKEN_PATH = "/oauth/v4/token"
OUTBOX_PATH = "/sms/v3/messaging/outbox"
INBOX_PATH = "/sms/v3/messaging/inbox"
STATUS_TEMPLATE = OUTBOX_PATH + "/{messageId}"
INBOX_TEMPLATE = INBOX_PATH + "/{registrationId}"
TEL_RE = re.compile(r"^tel:\+[1-9]\d{1,14}$")
MAX_BODY = 1 << 20
FAULT_ACTIONS = ("respond", "drop", "reset", "malformed")
FAULT_WHENS = ("before", "after")
#: Reserved numbers: E.164 ending in these digits never reach DeliveredToTerminal.
IMPOSSIBLE_SUFFIX = "9999"
WAITING_SUFFIX = "8888"


# --------------------------------------------------------------------------- replies
@dataclass
class Reply:
    """An HTTP answer before it is written."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    secrets: tuple[str, ...] = ()  # values that must never appear in recorded violations

    @classmethod
    def json(cls, status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
        """A JSON reply."""
        return cls(
            status,
            json.dumps(data, ensure_ascii=False).encode("utf-8"),
            "application/json",
            headers or [],
        )


def _path_param(path: str, prefix: str) -> str | None:
    """The one path segment after ``prefix/`` (``/outbox/{messageId}``), else None."""
    rest = path[len(prefix) + 1 :] if path.startswith(prefix + "/") else ""
    return unquote(rest) if rest and "/" not in rest else None


def error_body(kind: str, message_id: str, text: str, variables: str) -> dict:
    """A ``RequestError`` document (kind is ServiceException or PolicyException)."""
    return {"RequestError": {kind: {"MessageId": message_id, "Text": text, "Variables": variables}}}


def svc_invalid(part: str, status: int = 400) -> Reply:
    """SVC0002: invalid input value for a message part."""
    return Reply.json(
        status,
        error_body("ServiceException", "SVC0002", "Invalid input value for message part %1", part),
    )


def pol_unauthorized(reason: str = "UnAuthorized Request") -> Reply:
    """POL0001: 401 with a bearer challenge."""
    return Reply.json(
        401,
        error_body("PolicyException", "POL0001", "A policy error occurred. %1", reason),
        [("WWW-Authenticate", 'Bearer realm="att-sms-sandbox"')],
    )


def svc_generic(status: int) -> Reply:
    """SVC0001: generic service error carrying the HTTP status."""
    return Reply.json(
        status,
        error_body(
            "ServiceException",
            "SVC0001",
            "A service error has occurred. Error code is %1",
            str(status),
        ),
    )


def _bearer(headers: dict[str, str]) -> tuple[str, ...]:
    """The bearer token of a request, if any (to keep it out of recorded text)."""
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = auth.partition(" ")
    return (token.strip(),) if scheme.lower() == "bearer" and token.strip() else ()


# --------------------------------------------------------------------------- faults
@dataclass
class Fault:
    """A scripted misbehaviour for the next ``count`` requests matching path/method."""

    path: str
    method: str | None = None
    count: int = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    action: str = "respond"
    when: str = "before"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError("path must be a string starting with '/'")
        if self.path.startswith("/sandbox"):
            raise ValueError("faults cannot target the /sandbox control endpoints")
        if self.method is not None:
            if not isinstance(self.method, str) or not self.method:
                raise ValueError("method must be a non-empty string")
            self.method = self.method.upper()
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError("count must be an integer >= 1")
        if self.status is not None and (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 100 <= self.status <= 599
        ):
            raise ValueError("status must be an integer HTTP status (100-599)")
        if (
            isinstance(self.delay, bool)
            or not isinstance(self.delay, (int, float))
            or self.delay < 0
        ):
            raise ValueError("delay must be a number >= 0")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(FAULT_ACTIONS)}")
        if self.when not in FAULT_WHENS:
            raise ValueError(f"when must be one of {', '.join(FAULT_WHENS)}")
        if not isinstance(self.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ValueError("headers must be an object of string values")
        if self.content_type is not None and not isinstance(self.content_type, str):
            raise ValueError("contentType must be a string")

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request."""
        return path.startswith(self.path) and (self.method is None or self.method == method)

    def body_bytes(self) -> tuple[bytes | None, str | None]:
        """The configured body and its default content type (None when no body was set)."""
        if self.body is None:
            return None, None
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), "application/json"


# --------------------------------------------------------------------------- server
class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that counts and tracks connections and can RST them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024  # the default (5) resets bursts of concurrent clients

    def __init__(self, addr: tuple[str, int], sandbox: Sandbox) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self.open_connections: set[socket.socket] = set()
        self.reset_connections: set[socket.socket] = set()
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # Headers and body go out in two writes; without TCP_NODELAY the body waits for
        # the client's delayed ACK (~40 ms per keep-alive request on Linux).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sandbox._lock:
            self.sandbox._connections += 1
            self.open_connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.sandbox._lock:
            self.open_connections.discard(request)
            rst = request in self.reset_connections
            self.reset_connections.discard(request)
        if rst:
            # SO_LINGER 0 is set: a plain close sends RST (no FIN from shutdown first).
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "att-sms-sandbox/1.0"
    timeout = 300  # idle keep-alive connections are closed after this
    server: _Server

    def version_string(self) -> str:
        """The Server header value."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request logging (request lines are harmless, but keep stdout clean)."""

    def _dispatch(self) -> None:
        try:
            self.server.sandbox._handle(self)
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception:  # pragma: no cover - defensive: never leave a request unanswered
            log.exception(
                "sandbox handler failed for %s %s", self.command, urlsplit(self.path).path
            )
            self.close_connection = True
            try:
                self.server.sandbox._write(self, svc_generic(500))
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, CONNECT, made-up ones) gets a spec-style 404/405, not 501."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)


# --------------------------------------------------------------------------- sandbox
@dataclass
class _Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    content_type: str | None
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)


class Sandbox:
    """The carrier sandbox server; thread-safe; usable as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        token_ttl: float = 3600,
        delivery_delay: float = 2.0,
        registrations: tuple[str, ...] | list[str] = (),
        db_path: str | None = None,
        validate: bool = False,
        inbox_batch: int = 0,
        max_addresses: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_ttl = token_ttl
        self.delivery_delay = float(delivery_delay)
        self.registrations = tuple(registrations)
        self.db_path = db_path
        self.validate = validate
        self.inbox_batch = max(0, int(inbox_batch))
        self.max_addresses = max(0, int(max_addresses))
        self._store: Store | None = None
        self._lock: threading.RLock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._checker: Any = None
        self._faults: list[Fault] = []
        self._reset_counters()
        self.base_url = ""

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def _reset_counters(self) -> None:
        self._token_requests = 0
        self._tokens_issued = 0
        self._connections = 0
        self._requests: dict[str, int] = {}
        self._request_violations: list[str] = []
        self._response_violations: list[str] = []

    # lifecycle ------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Bind, then serve in a background daemon thread; returns self."""
        if self._server is not None:
            return self
        self._store = Store(self.db_path)
        self._lock = self._store.lock  # the one lock of the sandbox
        for reg in self.registrations:
            self._store.add_registration(reg)
        if self.validate:
            from .spec_check import SpecChecker

            self._checker = SpecChecker()
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="att-sms-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and the database."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(server.open_connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with self._lock:
                if not server.open_connections:
                    break
            time.sleep(0.01)
        if self._store is not None:
            self._store.close()
            self._store = None  # state() now raises RuntimeError; the violation lists stay readable

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def store(self) -> Store:
        """The state store (only after start())."""
        if self._store is None:
            raise RuntimeError("sandbox not started")
        return self._store

    # python control API ---------------------------------------------------------
    def inject_inbound(
        self,
        registration_id: str,
        sender_address: str,
        message: str,
        *,
        destination_address: str | None = None,
        date_time: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Queue an inbound SMS for a registration (created if unknown); returns its messageId."""
        for name, value in (
            ("registrationId", registration_id),
            ("senderAddress", sender_address),
            ("message", message),
        ):
            if not isinstance(value, str) or (name != "message" and not value):
                raise ValueError(f"{name} must be a non-empty string")
        for name, value in (
            ("destinationAddress", destination_address),
            ("dateTime", date_time),
            ("messageId", message_id),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string")
        mid = message_id or "in_" + secrets.token_hex(8)
        self.store.add_inbound(
            registration_id,
            mid,
            message,
            sender_address,
            destination_address,
            date_time or rfc3339(time.time()),
        )
        return mid

    def add_registration(self, registration_id: str) -> None:
        """Create an (empty) inbound registration."""
        if not isinstance(registration_id, str) or not registration_id:
            raise ValueError("registrationId must be a non-empty string")
        self.store.add_registration(registration_id)

    def add_fault(
        self,
        path: str,
        *,
        method: str | None = None,
        count: int = 1,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        delay: float = 0.0,
        action: str = "respond",
        when: str = "before",
    ) -> None:
        """Make the next ``count`` requests whose path starts with ``path`` misbehave."""
        fault = Fault(
            path,
            method,
            count,
            status,
            body,
            dict(headers or {}),
            content_type,
            delay,
            action,
            when,
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def expire_tokens(self) -> None:
        """Invalidate every issued token (clients get 401 and must fetch a new one)."""
        self.store.expire_tokens()

    def reset(self) -> None:
        """Back to the configured initial state: no tokens, sends, inbound, faults, counters."""
        with self._lock:
            self.store.reset(self.registrations)
            self._faults.clear()
            self._reset_counters()

    @property
    def request_violations(self) -> list[str]:
        """Spec violations found in requests (also readable after stop())."""
        with self._lock:
            return list(self._request_violations)

    @property
    def response_violations(self) -> list[str]:
        """Spec violations found in responses (also readable after stop())."""
        with self._lock:
            return list(self._response_violations)

    def state(self) -> dict:
        """Counters and records, as served by ``GET /sandbox/state``."""
        with self._lock:
            return {
                "baseUrl": self.base_url,
                "tokenRequests": self._token_requests,
                "tokensIssued": self._tokens_issued,
                "tokensActive": self.store.active_tokens(),
                "connections": self._connections,
                "requests": dict(self._requests),
                "sent": [s.as_json() for s in self.store.sends()],
                "registrations": self.store.registrations(),
                "pendingInbound": self.store.pending_inbound(),
                "specViolations": self._request_violations + self._response_violations,
                "requestViolations": list(self._request_violations),
                "responseViolations": list(self._response_violations),
                "faultsPending": sum(f.count for f in self._faults),
            }

    # request handling -----------------------------------------------------------
    def _read_body(self, h: _Handler) -> bytes | None:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            return None
        return h.rfile.read(length) if length else b""

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        try:
            body = self._read_body(h)
        except ValueError:
            body = None
        if body is None:
            h.close_connection = True
            self._write(
                h, svc_generic(413 if h.headers.get("Content-Length", "").isdigit() else 400)
            )
            return
        req = _Req(
            method=h.command,
            path=split.path,
            query={k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k: v for k, v in h.headers.items()},
            body=body,
            content_type=h.headers.get("Content-Type"),
        )
        if req.path == "/sandbox" or req.path.startswith("/sandbox/"):
            self._write(h, self._control(req))
            return
        self._route(req)
        key = f"{req.method} {req.template or req.path}"
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            if req.path == TOKEN_PATH and req.method == "POST":
                self._token_requests += 1
            fault = self._take_fault(req.method, req.path)
        if self._checker is not None and req.template is not None:
            self._record(
                "request",
                lambda: self._checker.check_request(
                    req.method,
                    req.path,
                    req.template,
                    query=req.query,
                    headers=req.headers,
                    body=req.body,
                    content_type=req.content_type,
                ),
                _bearer(req.headers),
            )
        if fault is None:
            reply = self._process(req)
            self._validate_reply(req, reply)
            self._write(h, reply)
            return
        self._apply_fault(h, req, fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _record(self, kind: str, check: Any, secrets_seen: tuple[str, ...] = ()) -> None:
        """Run a spec check and keep its violations, with secrets and tokens redacted."""
        try:
            found = check()
        except Exception as exc:  # validation must never break a request
            found = [f"{kind} validation crashed: {type(exc).__name__}: {exc}"]
        if found:
            hidden = [s for s in (self._client_secret, *secrets_seen) if s and len(s) >= 4]
            for i, text in enumerate(found):
                for value in hidden:
                    text = text.replace(value, "[redacted]")
                found[i] = text
            with self._lock:
                (
                    self._request_violations if kind == "request" else self._response_violations
                ).extend(found)

    def _validate_reply(self, req: _Req, reply: Reply) -> None:
        if self._checker is None or req.template is None:
            return
        self._record(
            "response",
            lambda: self._checker.check_response(
                req.method,
                req.path,
                req.template,
                status=reply.status,
                headers=dict(reply.headers),
                body=reply.body,
                content_type=reply.content_type,
            ),
            (*_bearer(req.headers), *reply.secrets),
        )

    def _apply_fault(self, h: _Handler, req: _Req, fault: Fault) -> None:
        real: Reply | None = None
        if fault.when == "after":
            real = self._process(req)
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.action == "respond" and fault.status is None:
            reply = real if real is not None else self._process(req)
            self._validate_reply(req, reply)
            for k, v in fault.headers.items():
                reply.headers.append((k, v))
            self._write(h, reply)
            return
        if fault.action == "drop":
            h.close_connection = True
            return
        fbody, fctype = fault.body_bytes()
        if fault.action == "respond":
            assert fault.status is not None
            if fbody is None:
                reply = (
                    svc_generic(fault.status)
                    if fault.status >= 400
                    else Reply(fault.status, b"", None)
                )
            else:
                reply = Reply(fault.status, fbody, fctype)
        elif fault.action == "malformed":
            status = fault.status or (real.status if real else self._success_status(req))
            reply = Reply(
                status,
                fbody if fbody is not None else b'{"unterminated": <html>not json',
                "application/json",
            )
        else:  # reset
            if real is not None and fault.status is None and fbody is None:
                reply = real
            else:
                status = fault.status or (real.status if real else self._success_status(req))
                padding = {
                    "RequestError": {
                        "ServiceException": {"MessageId": "SVC0001", "Text": "x" * 200}
                    }
                }
                reply = Reply(
                    status, fbody if fbody is not None else json.dumps(padding).encode(), fctype
                )
        if fault.content_type is not None:
            reply.content_type = fault.content_type
        reply.headers.extend(fault.headers.items())
        if fault.action == "reset":
            self._write_reset(h, reply)
        else:
            self._write(h, reply)

    @staticmethod
    def _success_status(req: _Req) -> int:
        return 201 if (req.method, req.template) == ("POST", OUTBOX_PATH) else 200

    def _write(self, h: _Handler, reply: Reply, body_limit: int | None = None) -> None:
        h.send_response(reply.status)
        if reply.content_type:
            h.send_header("Content-Type", reply.content_type)
        h.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers:
            h.send_header(k, v)
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(reply.body if body_limit is None else reply.body[:body_limit])
        h.wfile.flush()

    def _write_reset(self, h: _Handler, reply: Reply) -> None:
        self._write(h, reply, body_limit=len(reply.body) // 2)
        h.close_connection = True
        conn = h.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            if self._server is not None:
                self._server.reset_connections.add(conn)

    # routing & operations ---------------------------------------------------------
    def _route(self, req: _Req) -> None:
        p = req.path
        if p == TOKEN_PATH:
            req.template = TOKEN_PATH
        elif p == OUTBOX_PATH:
            req.template = OUTBOX_PATH
        elif (message_id := _path_param(p, OUTBOX_PATH)) is not None:
            req.template = STATUS_TEMPLATE
            req.params["messageId"] = message_id
        elif (registration_id := _path_param(p, INBOX_PATH)) is not None:
            req.template = INBOX_TEMPLATE
            req.params["registrationId"] = registration_id

    _ALLOWED = {
        TOKEN_PATH: "POST",
        OUTBOX_PATH: "POST",
        STATUS_TEMPLATE: "GET",
        INBOX_TEMPLATE: "GET",
    }

    def _process(self, req: _Req) -> Reply:
        if req.template is None:
            return Reply.json(
                404,
                error_body(
                    "ServiceException", "SVC0002", "Invalid input value for message part %1", "path"
                ),
            )
        allowed = self._ALLOWED[req.template]
        if req.method != allowed:
            reply = Reply.json(
                405,
                error_body(
                    "ServiceException",
                    "SVC0002",
                    "Invalid input value for message part %1",
                    "method",
                ),
            )
            reply.headers.append(("Allow", allowed))
            return reply
        if req.template == TOKEN_PATH:
            return self._token(req)
        token = _bearer(req.headers)
        if not token or not self.store.token_valid(token[0]):
            return pol_unauthorized()
        if req.template == OUTBOX_PATH:
            return self._send(req)
        if req.template == STATUS_TEMPLATE:
            return self._status(req.params["messageId"])
        return self._inbox(req.params["registrationId"])

    def _token(self, req: _Req) -> Reply:
        ctype = (req.content_type or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return svc_invalid("Content-Type")
        try:
            form = parse_qs(
                req.body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(req.body)
            )
        except (UnicodeDecodeError, ValueError):
            return svc_invalid("body")
        for name in ("grant_type", "client_id", "client_secret"):
            values = form.get(name)
            if not values or len(values) != 1 or not values[0]:
                return svc_invalid(name)
        if form["grant_type"][0] != "client_credentials":
            return svc_invalid("grant_type")
        scope_values = form.get("scope") or ["SMS"]
        if len(scope_values) != 1:
            return svc_invalid("scope")
        scope = scope_values[0].strip() or "SMS"
        ok_id = hmac.compare_digest(form["client_id"][0].encode(), self.client_id.encode())
        ok_secret = hmac.compare_digest(
            form["client_secret"][0].encode(), self._client_secret.encode()
        )
        if not (ok_id and ok_secret):
            return Reply.json(
                401,
                error_body(
                    "PolicyException",
                    "POL0001",
                    "A policy error occurred. %1",
                    "Invalid client credentials",
                ),
            )
        token = secrets.token_urlsafe(32)
        self.store.add_token(token, time.time() + self.token_ttl, scope)
        with self._lock:
            self._tokens_issued += 1
        reply = Reply.json(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(self.token_ttl),
                "scope": scope,
            },
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )
        reply.secrets = (token,)
        return reply

    def _send(self, req: _Req) -> Reply:
        ctype = (req.content_type or "application/json").split(";")[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            return svc_invalid("Content-Type")
        try:
            doc = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return svc_invalid("body")
        outbound = doc.get("outboundSMSRequest") if isinstance(doc, dict) else None
        if not isinstance(outbound, dict):
            return svc_invalid("outboundSMSRequest")
        addresses = outbound.get("address")
        if isinstance(addresses, str):
            addresses = [addresses]
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and TEL_RE.match(a) for a in addresses)
        ):
            return Reply.json(
                400,
                error_body(
                    "ServiceException",
                    "SVC0004",
                    "No valid addresses provided in the message part %1",
                    "address",
                ),
            )
        if self.max_addresses and len(addresses) > self.max_addresses:
            return Reply.json(
                400,
                error_body(
                    "PolicyException",
                    "POL0003",
                    "Too many addresses specified in message part %1",
                    "address",
                ),
            )
        message = outbound.get("message")
        if not isinstance(message, str) or not 1 <= len(message) <= 160:
            return svc_invalid("message")
        sender = outbound.get("senderAddress")
        if sender is not None and not isinstance(sender, str):
            return svc_invalid("senderAddress")
        mid = "SMS" + secrets.token_hex(12)
        self.store.add_send(SentMessage(mid, tuple(addresses), message, sender, time.time()))
        url = f"{self.base_url}{OUTBOX_PATH}/{mid}"
        return Reply.json(
            201,
            {"outboundSMSResponse": {"messageId": mid, "resourceReference": {"resourceURL": url}}},
            [("Location", url)],
        )

    def delivery_status(self, address: str, sent_at: float, now: float | None = None) -> str:
        """The delivery status of one address of a send, at ``now``."""
        elapsed = (time.time() if now is None else now) - sent_at
        if address.endswith(WAITING_SUFFIX):
            return "MessageWaiting"
        if elapsed < self.delivery_delay:
            return "DeliveredToNetwork"
        return (
            "DeliveryImpossible" if address.endswith(IMPOSSIBLE_SUFFIX) else "DeliveredToTerminal"
        )

    def _status(self, message_id: str) -> Reply:
        sent = self.store.get_send(message_id)
        if sent is None:
            return Reply.json(
                404,
                error_body(
                    "ServiceException",
                    "SVC0002",
                    "Invalid input value for message part %1",
                    "messageId",
                ),
            )
        now = time.time()
        infos = [
            {"address": a, "deliveryStatus": self.delivery_status(a, sent.created, now)}
            for a in sent.addresses
        ]
        return Reply.json(
            200,
            {
                "deliveryInfoList": {
                    "deliveryInfo": infos,
                    "resourceURL": f"{self.base_url}{OUTBOX_PATH}/{message_id}",
                }
            },
        )

    def _inbox(self, registration_id: str) -> Reply:
        if not self.store.has_registration(registration_id):
            return Reply.json(
                404,
                error_body(
                    "ServiceException",
                    "SVC0002",
                    "Invalid input value for message part %1",
                    "registrationId",
                ),
            )
        messages, remaining = self.store.drain_inbound(registration_id, self.inbox_batch)
        return Reply.json(
            200,
            {
                "inboundSMSMessageList": {
                    "inboundSMSMessage": messages,
                    "numberOfMessagesInThisBatch": len(messages),
                    "resourceURL": f"{self.base_url}{INBOX_PATH}/{registration_id}",
                    "totalNumberOfPendingMessages": remaining,
                }
            },
        )

    # control endpoints ------------------------------------------------------------
    def _control(self, req: _Req) -> Reply:
        route = (req.method, req.path.rstrip("/"))
        try:
            if route == ("GET", "/sandbox/state"):
                return Reply.json(200, self.state())
            if route == ("POST", "/sandbox/expire-tokens"):
                self.expire_tokens()
                return Reply.json(200, {"expired": True})
            if route == ("POST", "/sandbox/reset"):
                self.reset()
                return Reply.json(200, {"reset": True})
            if route == ("DELETE", "/sandbox/faults"):
                self.clear_faults()
                return Reply.json(200, {"faultsPending": 0})
            if route[0] == "POST" and route[1] in (
                "/sandbox/inbound",
                "/sandbox/registrations",
                "/sandbox/faults",
            ):
                doc = json.loads(req.body.decode("utf-8") or "null")
                if not isinstance(doc, dict):
                    raise ValueError("body must be a JSON object")
                return self._control_post(route[1], doc)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            return Reply.json(400, {"error": str(exc)})
        known = {
            "/sandbox/state",
            "/sandbox/expire-tokens",
            "/sandbox/reset",
            "/sandbox/faults",
            "/sandbox/inbound",
            "/sandbox/registrations",
        }
        if route[1] in known:
            return Reply.json(405, {"error": f"method {req.method} not allowed on {route[1]}"})
        return Reply.json(404, {"error": f"no control endpoint {route[1]}"})

    def _control_post(self, path: str, doc: dict) -> Reply:
        if path == "/sandbox/inbound":
            mid = self.inject_inbound(
                doc.get("registrationId"),
                doc.get("senderAddress"),
                doc.get("message"),
                destination_address=doc.get("destinationAddress"),
                date_time=doc.get("dateTime"),
                message_id=doc.get("messageId"),
            )
            return Reply.json(201, {"messageId": mid})
        if path == "/sandbox/registrations":
            self.add_registration(doc.get("registrationId"))
            return Reply.json(201, {"registrationId": doc["registrationId"]})
        unknown = set(doc) - {
            "path",
            "method",
            "count",
            "status",
            "body",
            "headers",
            "contentType",
            "delay",
            "action",
            "when",
        }
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if "path" not in doc:
            raise ValueError("path is required")
        self.add_fault(
            doc["path"],
            method=doc.get("method"),
            count=doc.get("count", 1),
            status=doc.get("status"),
            body=doc.get("body"),
            headers=doc.get("headers"),
            content_type=doc.get("contentType"),
            delay=doc.get("delay", 0.0),
            action=doc.get("action", "respond"),
            when=doc.get("when", "before"),
        )
        with self._lock:
            pending = sum(f.count for f in self._faults)
        return Reply.json(201, {"faultsPending": pending})


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m att_sms.sandbox", description="AT&T SMS carrier sandbox"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--client-id", default=os.environ.get("SANDBOX_CLIENT_ID", "sandbox-client"))
    p.add_argument(
        "--client-secret",
        default=None,
        help="default: $SANDBOX_CLIENT_SECRET or sandbox-secret (prefer the env variable)",
    )
    p.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS")
    p.add_argument("--delivery-delay", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--registration", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument("--db", default=None, metavar="PATH", help="SQLite file; state survives restart")
    p.add_argument(
        "--validate",
        action="store_true",
        help="check traffic against the spec (needs openapi-core)",
    )
    p.add_argument("--inbox-batch", type=int, default=0, metavar="N", help="0 = all")
    p.add_argument("--max-addresses", type=int, default=0, metavar="N", help="0 = no limit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGTERM/SIGINT."""
    args = _parser().parse_args(argv)
    secret = args.client_secret or os.environ.get("SANDBOX_CLIENT_SECRET") or "sandbox-secret"
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sandbox = Sandbox(
        args.host,
        args.port,
        client_id=args.client_id,
        client_secret=secret,
        token_ttl=args.token_ttl,
        delivery_delay=args.delivery_delay,
        registrations=tuple(args.registration),
        db_path=args.db,
        validate=args.validate,
        inbox_batch=args.inbox_batch,
        max_addresses=args.max_addresses,
    )
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sandbox.start()
    except OSError as exc:
        print(
            f"sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    print(f"sandbox listening on {sandbox.base_url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
