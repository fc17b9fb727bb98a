"""``Sandbox``: lifecycle, the Python control API, state, and the path of one request.

A request goes: read (server) -> control endpoint, or route + count + fault lookup ->
carrier operation (api) -> spec check (with ``validate``) -> write. There is exactly one
lock, the store's, shared by every counter and queue of the sandbox.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from . import api, recipients
from .control import control, is_control
from .faults import Fault, FaultQueue, fault_reply
from .raw_inbox import DEFAULT_CONTENT_TYPE, RawAnswer, RawInbox, raw_answer
from .replies import Reply, bearer
from .server import Request, SandboxHandler, SandboxServer, read_request, write_reply, write_reset
from .store import Store, rfc3339


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
        max_recipients: int = recipients.DEFAULT_MAX_RECIPIENTS,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._client_secret = client_secret
        self._revoked_secret = ""
        self.token_ttl = token_ttl
        self.delivery_delay = float(delivery_delay)
        self.registrations = tuple(registrations)
        self.db_path = db_path
        self.validate = validate
        self.inbox_batch = max(0, int(inbox_batch))
        self.max_recipients = max(0, int(max_recipients))
        self._store: Store | None = None
        self.lock: threading.RLock = threading.RLock()
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._checker: Any = None
        self._faults = FaultQueue()
        self._raw_inbox = RawInbox()
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
        self.lock = self._store.lock  # the one lock of the sandbox
        for reg in self.registrations:
            self._store.add_registration(reg)
        if self.validate:
            from .spec_check import SpecChecker

            self._checker = SpecChecker()
        self._stopping.clear()
        self._server = SandboxServer((self.host, self.port), self)
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
        server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = time.monotonic() + 2
        while server.has_open_connections() and time.monotonic() < deadline:
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
        for name, optional in (
            ("destinationAddress", destination_address),
            ("dateTime", date_time),
            ("messageId", message_id),
        ):
            if optional is not None and (not isinstance(optional, str) or not optional):
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

    def inject_raw_inbox(
        self,
        registration_id: str,
        body: Any,
        *,
        content_type: str | None = DEFAULT_CONTENT_TYPE,
        status: int = 200,
    ) -> int:
        """Make the registration's next inbox read answer exactly this, once.

        ``body`` is any JSON value, or a ``str``/``bytes`` sent as-is; ``content_type``
        None sends no Content-Type. The registration is created if unknown; its stored
        messages stay pending. Several answers queue up in order. Returns how many raw
        answers the registration now has queued. Raw answers are not spec-checked.
        """
        if not isinstance(registration_id, str) or not registration_id:
            raise ValueError("registrationId must be a non-empty string")
        return self.queue_raw_inbox(registration_id, raw_answer(body, content_type, status))

    def queue_raw_inbox(self, registration_id: str, answer: RawAnswer) -> int:
        """Queue a built raw answer (see ``inject_raw_inbox``); returns the queue length."""
        with self.lock:
            self.store.add_registration(registration_id)
            self._raw_inbox.add(registration_id, answer)
            return self._raw_inbox.pending()[registration_id]

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
        self.queue_fault(fault)

    def queue_fault(self, fault: Fault) -> int:
        """Queue a built fault; returns how many requests pending faults will apply to."""
        with self.lock:
            self._faults.add(fault)
            return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self.lock:
            self._faults.clear()

    def expire_tokens(self) -> None:
        """Invalidate every issued token (clients get 401 and must fetch a new one)."""
        self.store.expire_tokens()

    def revoke_credentials(self) -> None:
        """Refuse the configured client credentials from now on, and every issued token."""
        with self.lock:
            self._revoked_secret = self._client_secret
            self._client_secret = secrets.token_urlsafe(24)
        self.store.expire_tokens()

    def reset(self) -> None:
        """Back to the initial state: no tokens, sends, inbound, raw answers, faults, counters."""
        with self.lock:
            self.store.reset(self.registrations)
            self._faults.clear()
            self._raw_inbox.clear()
            self._reset_counters()

    @property
    def request_violations(self) -> list[str]:
        """Spec violations found in requests (also readable after stop())."""
        with self.lock:
            return list(self._request_violations)

    @property
    def response_violations(self) -> list[str]:
        """Spec violations found in responses (also readable after stop())."""
        with self.lock:
            return list(self._response_violations)

    def state(self) -> dict[str, Any]:
        """Counters and records, as served by ``GET /sandbox/state``."""
        with self.lock:
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
                "rawInboxPending": self._raw_inbox.pending(),
                "specViolations": self._request_violations + self._response_violations,
                "requestViolations": list(self._request_violations),
                "responseViolations": list(self._response_violations),
                "faultsPending": self._faults.pending(),
            }

    def delivery_status(self, address: str, sent_at: float, now: float | None = None) -> str:
        """The delivery status of one address of a send, at ``now``."""
        elapsed = (time.time() if now is None else now) - sent_at
        return recipients.delivery_status(address, elapsed, self.delivery_delay)

    # hooks used by the server and the API -----------------------------------------
    def credentials_match(self, client_id: str, client_secret: str) -> bool:
        """Whether a token request carries the configured client credentials."""
        return api.credentials_match(
            (client_id, client_secret), (self.client_id, self._client_secret)
        )

    def count_connection(self) -> None:
        """Count one accepted TCP connection."""
        with self.lock:
            self._connections += 1

    def count_token_issued(self) -> None:
        """Count one issued token."""
        with self.lock:
            self._tokens_issued += 1

    def take_raw_inbox(self, registration_id: str) -> Reply | None:
        """The registration's next queued raw answer, removed, or None."""
        with self.lock:
            answer = self._raw_inbox.take(registration_id)
        return answer.reply() if answer is not None else None

    # one request ------------------------------------------------------------------
    def handle(self, h: SandboxHandler) -> None:
        """Answer one request read from the handler."""
        req = read_request(h)
        if req is None:
            return
        if is_control(req.path):
            write_reply(h, control(self, req))
            return
        api.route(req)
        key = f"{req.method} {req.template or req.path}"
        with self.lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            if req.path == api.TOKEN_PATH and req.method == "POST":
                self._token_requests += 1
            fault = self._faults.take(req.method, req.path)
        if self._checker is not None and req.template is not None:
            self._record("request", lambda: self._checker.check_request(
                req.method, req.path, req.template, query=req.query, headers=req.headers,
                body=req.body, content_type=req.content_type,
            ), bearer(req.headers))  # fmt: skip
        if fault is None:
            reply = api.process(self, req)
            self._validate_reply(req, reply)
            write_reply(h, reply)
            return
        self._apply_fault(h, req, fault)

    def _record(
        self, kind: str, check: Callable[[], list[str]], secrets_seen: tuple[str, ...] = ()
    ) -> None:
        """Run a spec check and keep its violations, with secrets and tokens redacted."""
        try:
            found = check()
        except Exception as exc:  # validation must never break a request
            found = [f"{kind} validation crashed: {type(exc).__name__}: {exc}"]
        if found:
            known = (self._client_secret, self._revoked_secret, *secrets_seen)
            hidden = [s for s in known if s and len(s) >= 4]
            for i, text in enumerate(found):
                for value in hidden:
                    text = text.replace(value, "[redacted]")
                found[i] = text
            with self.lock:
                target = (
                    self._request_violations if kind == "request" else self._response_violations
                )
                target.extend(found)

    def _validate_reply(self, req: Request, reply: Reply) -> None:
        if self._checker is None or req.template is None or not reply.validate:
            return
        self._record("response", lambda: self._checker.check_response(
            req.method, req.path, req.template, status=reply.status, headers=dict(reply.headers),
            body=reply.body, content_type=reply.content_type,
        ), (*bearer(req.headers), *reply.secrets))  # fmt: skip

    def _apply_fault(self, h: SandboxHandler, req: Request, fault: Fault) -> None:
        real = api.process(self, req) if fault.when == "after" else None
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.passes_through:
            reply = real if real is not None else api.process(self, req)
            self._validate_reply(req, reply)
            reply.headers.extend(fault.headers.items())
            write_reply(h, reply)
        elif fault.action == "drop":
            h.close_connection = True
        elif fault.action == "reset":
            write_reset(h, fault_reply(fault, real, api.success_status(req)))
        else:
            write_reply(h, fault_reply(fault, real, api.success_status(req)))
