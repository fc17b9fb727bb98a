"""Hundreds of slow clients on the metrics port cannot starve the bot of files.

The bot runs in a process of its own allowed 128 open files (as a small container or a
systemd unit with ``LimitNOFILE=128`` would); this test opens 300 connections to its
metrics port, each trickling one byte every 3 s and reconnecting when cut, while the bot
sends an SMS and polls its inbox every round. Every send and poll must work and the
bot's open files stay bounded. Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from botkit import REPO_ROOT, sandbox_config

FILE_LIMIT = 128
SLOW_CLIENTS = 300
TRICKLE_EVERY = 3.0
ROUNDS = 12
ROUND_GAP = 1.0
REQUEST_BYTES = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlowClients:
    """``count`` connections that send one byte every ``every`` seconds, until stopped."""

    def __init__(self, port: int, count: int, every: float, run_for: float) -> None:
        self.port, self.count, self.every, self.run_for = port, count, every, run_for
        self.connects = 0
        self.cut = 0  # connections the server ended (refused or past the deadline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _connect(self) -> tuple[socket.socket, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))  # in progress; never waits
        self.connects += 1
        return sock, 0

    def _run(self) -> None:
        slots: list[tuple[socket.socket, int] | None] = [None] * self.count
        end = time.monotonic() + self.run_for
        try:
            while not self._stop.is_set() and time.monotonic() < end:
                for i, slot in enumerate(slots):
                    slots[i] = self._trickle(slot)
                self._stop.wait(self.every)
        finally:
            for slot in slots:
                if slot is not None:
                    slot[0].close()

    def _trickle(self, slot: tuple[socket.socket, int] | None) -> tuple[socket.socket, int] | None:
        if slot is None:
            try:
                return self._connect()
            except OSError:
                return None
        sock, sent = slot
        try:
            if sock.recv(1024, socket.MSG_PEEK) == b"":
                raise ConnectionResetError  # the server closed it
        except BlockingIOError:
            pass  # nothing to read: still open
        except OSError:
            self.cut += 1
            sock.close()
            return None
        try:
            sock.send(REQUEST_BYTES[sent % len(REQUEST_BYTES) : sent % len(REQUEST_BYTES) + 1])
        except BlockingIOError:
            return sock, sent
        except OSError as exc:
            if exc.errno not in (errno.ENOTCONN, errno.EAGAIN):
                self.cut += 1
            sock.close()
            return None
        return sock, sent + 1


def test_the_bot_sends_and_polls_while_the_metrics_port_is_flooded(
    env: None, sandbox, client_id: str, tmp_path: Path
) -> None:
    sandbox.add_registration("reg-ops")
    port = free_port()
    config = sandbox_config(sandbox, client_id, METRICS_PORT=port, FOLLOW_UP=False)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "plugins"), str(REPO_ROOT), str(REPO_ROOT / "tests")]
    )
    argv = [
        sys.executable, str(REPO_ROOT / "tests" / "metrics_load_child.py"), str(FILE_LIMIT),
        str(tmp_path / "data"), json.dumps(config),
    ]  # fmt: skip
    log = open(tmp_path / "bot.log", "wb")  # noqa: SIM115
    child = subprocess.Popen(  # noqa: S603
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=child_env,
        cwd=REPO_ROOT, text=True,
    )  # fmt: skip
    rounds: list[dict] = []
    try:
        started = json.loads(child.stdout.readline() or "{}")
        assert started.get("configured") == "Plugin configuration done.", started
        baseline = started["files"]
        with SlowClients(port, SLOW_CLIENTS, TRICKLE_EVERY, run_for=ROUNDS * 4 + 30) as slow:
            time.sleep(TRICKLE_EVERY + 1)  # every slow client has connected once
            for i in range(ROUNDS):
                sandbox.inject_inbound("reg-ops", "tel:+12125559876", f"reply {i}")
                child.stdin.write(f"{i}\n")
                child.stdin.flush()
                line = child.stdout.readline()
                assert line, "the bot process ended: " + (tmp_path / "bot.log").read_text()[-3000:]
                rounds.append(json.loads(line))
                time.sleep(ROUND_GAP)
        child.stdin.write("quit\n")
        child.stdin.flush()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        log.close()

    files = [record["files"] for record in rounds]
    print(
        f"\n{SLOW_CLIENTS} slow clients: {slow.connects} connections, {slow.cut} cut by the"
        f" server; bot (limit {FILE_LIMIT} files): {baseline} files before, at most"
        f" {max(files)} during, threads at most {max(r['threads'] for r in rounds)};"
        f" {sum(r['sent'].startswith('Sent to') for r in rounds)}/{len(rounds)} sends,"
        f" {sum('1 message arrived' in r['polled'] for r in rounds)}/{len(rounds)} polls"
    )
    assert slow.connects >= SLOW_CLIENTS and slow.cut > 0  # the flood really came and was cut
    for record in rounds:
        assert record["sent"].startswith("Sent to"), record
        assert "1 message arrived" in record["polled"], record
    # The metrics server holds at most its cap of connections (16), whatever comes.
    assert max(files) <= baseline + 16 + 8, (baseline, files)
    assert "Too many open files" not in (tmp_path / "bot.log").read_text()
