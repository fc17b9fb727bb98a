"""A small HTTP server of the plugin's own: ``/metrics``, ``/healthz`` and ``/readyz``.

Why not errbot's ``Webserver`` core plugin and ``@webhook``: that plugin listens only
once someone configures it in chat (``!plugin config Webserver``), it serves every
plugin's webhooks on one port, and a probe path there would be reachable by anything
allowed to post webhooks. A port of the plugin's own is set in the plugin's settings
with the rest of the deployment, bound to loopback by default, and serves nothing else.

The server runs in daemon threads; a failing callback or a malformed request is answered
(500 / 503 / 4xx) and logged, never raised into the plugin.

It cannot starve the bot that hosts it: at most :data:`MAX_CONNECTIONS` connections are
served at once (one more is closed as soon as it is accepted), and each must be done within
:data:`REQUEST_DEADLINE` seconds from its accept, however slowly it trickles bytes in;
then its socket is shut down. So the file descriptors and threads it holds stay bounded
whatever clients do, and the carrier client and the store always get theirs.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MetricsServer", "MetricsServerError"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9476
#: Seconds one read may wait for the client.
REQUEST_TIMEOUT = 10.0
#: Seconds a connection may last from accept to the end of the answer, all reads included.
REQUEST_DEADLINE = 10.0
#: Connections served at once; more are closed at once (a scraper or a probe needs one).
MAX_CONNECTIONS = 16
#: How often the serving loop looks for a stop request (bounds ``stop()``'s wait).
STOP_POLL = 0.2

Render = Callable[[], tuple[bytes, str]]
Ready = Callable[[], tuple[bool, str]]

_TEXT = "text/plain; charset=utf-8"
_INDEX = b"errbot-att-sms: /metrics (Prometheus), /healthz (liveness), /readyz (readiness)\n"


class MetricsServerError(OSError):
    """The server could not listen on its address."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], render: Render, ready: Ready) -> None:
        self.render = render
        self.ready = ready
        self.max_connections = MAX_CONNECTIONS
        self.deadline = REQUEST_DEADLINE
        self.refused = 0  # connections closed because the cap was reached
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._deadlines = _Deadlines()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread of its own, within the cap and the deadline; else close at once."""
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            log.debug("metrics server: %s refused, %d connections open", client_address[0],
                      self.max_connections)  # fmt: skip
            _refuse(request)
            self.shutdown_request(request)
            return
        self._deadlines.add(request, time.monotonic() + self.deadline)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._deadlines.discard(request)
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._deadlines.discard(request)
            self._slots.release()

    def service_actions(self) -> None:
        # Runs in the serving loop between accepts (at least every STOP_POLL seconds).
        self._deadlines.cut_expired(time.monotonic())

    def server_close(self) -> None:
        super().server_close()
        self._deadlines.cut_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is no event worth a traceback on stderr.
        log.debug("metrics server: request from %s failed", client_address, exc_info=True)


class _Deadlines:
    """The open connections and when each must be done; expired ones are shut down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[socket.socket, float] = {}

    def add(self, sock: socket.socket, due: float) -> None:
        with self._lock:
            self._due[sock] = due

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(sock, None)

    def cut_expired(self, now: float) -> None:
        with self._lock:
            expired = [sock for sock, due in self._due.items() if due <= now]
            for sock in expired:
                del self._due[sock]
        for sock in expired:
            log.debug("metrics server: a connection outlived its deadline; cut")
            _cut(sock)

    def cut_all(self) -> None:
        with self._lock:
            socks, self._due = list(self._due), {}
        for sock in socks:
            _cut(sock)


def _cut(sock: socket.socket) -> None:
    """End the connection: a read or write blocked on it returns at once (the handler's
    thread then closes the socket itself, so its descriptor is never reused under it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone


_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n"
)


def _refuse(sock: socket.socket) -> None:
    """Say 503 if the socket takes it without waiting; never block the serving loop."""
    try:
        sock.setblocking(False)
        sock.send(_BUSY)
    except OSError:
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "errbot-att-sms"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"method not allowed\n",
            _TEXT,
            True,
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            status, body, ctype = self._metrics()
        elif path == "/healthz":
            status, body, ctype = HTTPStatus.OK, b"ok\n", _TEXT
        elif path == "/readyz":
            status, body, ctype = self._readiness()
        elif path == "/":
            status, body, ctype = HTTPStatus.OK, _INDEX, _TEXT
        else:
            status, body, ctype = HTTPStatus.NOT_FOUND, b"not found\n", _TEXT
        self._send(status, body, ctype, send_body)

    def _metrics(self) -> tuple[HTTPStatus, bytes, str]:
        try:
            body, ctype = self.server.render()
        except Exception:
            log.exception("metrics server: rendering the metrics failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, b"metrics unavailable\n", _TEXT
        return HTTPStatus.OK, body, ctype

    def _readiness(self) -> tuple[HTTPStatus, bytes, str]:
        try:
            ready, reason = self.server.ready()
        except Exception as exc:
            log.exception("metrics server: the readiness check failed")
            ready, reason = False, f"readiness check failed: {type(exc).__name__}"
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        return (
            status,
            (reason.strip() or ("ready" if ready else "not ready")).encode() + b"\n",
            _TEXT,
        )

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        ctype: str,
        send_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # The request line is the client's: no control character reaches the log as is.
        line = escape_controls(format % args)
        log.debug("metrics server: %s - %s", self.address_string(), line)


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with control, line-separator and bidi characters as ``\\xNN`` / ``\\uNNNN``."""
    return _CONTROLS.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class MetricsServer:
    """Serves ``render()`` on ``/metrics`` and ``ready()`` on ``/readyz``.

    ``port`` 0 picks a free port (see :attr:`port` after :meth:`start`). ``start`` and
    ``stop`` may be called any number of times, from any thread.
    """

    def __init__(
        self,
        render: Render,
        ready: Ready,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")
        self.host = host
        self.port = port
        self._render = render
        self._ready = ready
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self.port!r})"

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening server (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MetricsServer:
        """Listen and serve in a daemon thread; raises :class:`MetricsServerError` if it cannot."""
        with self._lock:
            if self._server is not None:
                return self
            server_class = _Server6 if ":" in self.host else _Server
            try:
                server = server_class((self.host, self.port), self._render, self._ready)
            except OSError as exc:
                raise MetricsServerError(
                    exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
                ) from exc
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": STOP_POLL},
                name=f"att-sms-metrics-{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        log.info("AttSms metrics and probes on %s", self.url)
        return self

    def stop(self, wait: float = 5.0) -> None:
        """Stop listening (a no-op when not running)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(wait)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
