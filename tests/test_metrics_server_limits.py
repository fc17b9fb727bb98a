"""The metrics server cannot be held open: a connection cap, a whole-request deadline,
and log lines with no raw control characters. Real sockets on loopback only."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from att_sms.ops import metrics_server
from att_sms.ops.metrics_server import MetricsServer, escape_controls


def render() -> tuple[bytes, str]:
    return b"# nothing\n", "text/plain; version=0.0.4"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetricsServer]:
    monkeypatch.setattr(metrics_server, "REQUEST_DEADLINE", 1.5)
    monkeypatch.setattr(metrics_server, "MAX_CONNECTIONS", 4)
    s = MetricsServer(render, lambda: (True, "ready"), host="127.0.0.1", port=0).start()
    yield s
    s.stop()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_trickling_client_is_cut_at_the_deadline(server: MetricsServer) -> None:
    """One byte every 0.3 s never trips a per-read timeout; the whole-request deadline does."""
    started = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for byte in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 40:  # 20 s if never cut
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.3)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue  # nothing from the server yet: trickle on
            except OSError:  # reset by the server
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the server kept the trickling client"
    assert closed_after < 1.5 + 2.0  # the deadline, plus the serving loop's check interval
    assert requests.get(server.url + "/healthz", timeout=5).text == "ok\n"


def test_connections_over_the_cap_are_closed_at_once(server: MetricsServer) -> None:
    before = open_fds()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    extra = []
    try:
        time.sleep(0.3)  # the four are accepted and hold every slot
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            extra.append(sock)
            answer = sock.recv(200)  # refused at once: a 503 and the end, never a wait
            assert answer == b"" or answer.startswith(b"HTTP/1.0 503"), answer
        # This process holds both ends; the server's own ends stay within the cap.
        assert open_fds() - before <= len(idle) + len(extra) + 4 + 2
    finally:
        for sock in idle + extra:
            sock.close()
    # The idle ones are cut at the deadline; then the server answers again.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url + "/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    else:
        pytest.fail("the server did not answer once the slots were free")


def test_log_lines_escape_control_characters(
    server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="att_sms.ops.metrics_server")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /\x1b[31mred\x07\x85 HTTP/1.0\r\n\r\n")
        while sock.recv(1024):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "att_sms.ops.metrics_server"]
    logged = [line for line in lines if "red" in line]
    assert logged, lines
    for line in logged:
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line), repr(line)
        assert "\\x1b[31mred\\x07\\x85" in line


def test_escape_controls() -> None:
    assert escape_controls("a\r\nb\u202ec\x00") == "a\\x0d\\x0ab\\u202ec\\x00"
    assert escape_controls("GET /metrics HTTP/1.1") == "GET /metrics HTTP/1.1"
