"""The HTTP layer: a threading HTTP/1.1 server that counts its connections and can RST them.

The handler only reads the request and hands it to the sandbox (``Sandbox.handle``);
``write_reply`` and ``write_reset`` put a ``Reply`` on the wire, whole or cut short.
"""

from __future__ import annotations

import logging
import socket
import struct
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .replies import Reply, svc_generic

if TYPE_CHECKING:
    from .sandbox import Sandbox

log = logging.getLogger("carrier_sandbox")

MAX_BODY = 1 << 20


@dataclass
class Request:
    """One request as the sandbox sees it (``template``/``params`` set by routing)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    content_type: str | None
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)


class SandboxServer(ThreadingHTTPServer):
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
        super().__init__(addr, SandboxHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # Headers and body go out in two writes; without TCP_NODELAY the body waits for
        # the client's delayed ACK (~40 ms per keep-alive request on Linux).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sandbox.lock:
            self.sandbox.count_connection()
            self.open_connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.sandbox.lock:
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

    def close_all(self) -> None:
        """Shut down every open connection (idle keep-alive ones included)."""
        with self.sandbox.lock:
            conns = list(self.open_connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def has_open_connections(self) -> bool:
        """Whether any connection is still being served."""
        with self.sandbox.lock:
            return bool(self.open_connections)


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "att-sms-sandbox/1.0"
    timeout = 300  # idle keep-alive connections are closed after this
    server: SandboxServer

    def version_string(self) -> str:
        """The Server header value."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request logging (request lines are harmless, but keep stdout clean)."""

    def _dispatch(self) -> None:
        try:
            self.server.sandbox.handle(self)
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception:  # pragma: no cover - defensive: never leave a request unanswered
            log.exception(
                "sandbox handler failed for %s %s", self.command, urlsplit(self.path).path
            )
            self.close_connection = True
            try:
                write_reply(self, svc_generic(500))
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, CONNECT, made-up ones) gets a spec-style 404/405, not 501."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)


def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
    """The request body (chunked or by Content-Length); None when it is too large."""
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
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


def read_request(h: BaseHTTPRequestHandler) -> Request | None:
    """The request, or None after answering 413/400 when its body cannot be read."""
    try:
        body = _read_body(h)
    except ValueError:
        body = None
    if body is None:
        h.close_connection = True
        write_reply(h, svc_generic(413 if h.headers.get("Content-Length", "").isdigit() else 400))
        return None
    split = urlsplit(h.path)
    return Request(
        method=h.command,
        path=split.path,
        query={k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
        headers={k: v for k, v in h.headers.items()},
        body=body,
        content_type=h.headers.get("Content-Type"),
    )


def write_reply(h: BaseHTTPRequestHandler, reply: Reply, body_limit: int | None = None) -> None:
    """Write the answer (with ``body_limit``, only that many bytes of its body)."""
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


def write_reset(h: SandboxHandler, reply: Reply) -> None:
    """Write the headers and half the body, then end the connection with RST."""
    write_reply(h, reply, body_limit=len(reply.body) // 2)
    h.close_connection = True
    conn = h.connection
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with h.server.sandbox.lock:
        h.server.reset_connections.add(conn)
