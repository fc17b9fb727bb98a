"""Two bot replicas, each its own process on one PostgreSQL database, receive the same
Alertmanager notification at the same moment (as two HA peers would send it to two
replicas behind a load balancer): one page, one SMS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from alertkit import body, notification
from botkit import sandbox_config

pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "replica-token-0c4d"
ALICE = "tel:+12125550101"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Replica:
    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str]) -> None:
        workdir.mkdir(parents=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/att_sms/alerts"
        self.ready = workdir / "ready"
        self.log = (workdir / "log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "alerts_replica.py"), str(workdir / "data"),
             str(self.port), str(self.ready), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert self.proc.poll() is None, (workdir / "log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.1)
        self.leader = self.ready.read_text() == "True"

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def replicas(env: None, tmp_path: Path, sandbox: Any, client_id: str, client_secret: str,
             pg_server: PgServer, pg_url: str) -> Iterator[list[Replica]]:  # fmt: skip
    config = sandbox_config(
        sandbox, client_id, DATABASE_URL=pg_url, FOLLOW_UP=False, ESCALATE_AFTER=60,
        ALERT_ROUTES={"ops": {"page": "+12125550101,+12125550102", "room": "#ops"}},
    )  # fmt: skip
    env_vars = dict(os.environ)
    env_vars.update(
        ATT_CLIENT_SECRET=client_secret, ATT_DATABASE_PASSWORD=pg_server.password,
        ATT_WEBHOOK_TOKEN=TOKEN,
        PYTHONPATH=os.pathsep.join([str(ROOT / "plugins"), str(ROOT), str(ROOT / "tests")]),
    )  # fmt: skip
    started: list[Replica] = []
    try:
        for name in ("a", "b"):
            started.append(Replica(tmp_path / name, config, env_vars))
        yield started
    finally:
        for replica in reversed(started):
            replica.stop()


def test_two_replicas_receiving_the_same_notification_at_once_page_once(
    replicas: list[Replica], sandbox: Any
) -> None:
    assert [r.leader for r in replicas] == [True, False]
    barrier = threading.Barrier(8)
    answers: list[requests.Response] = []

    def send(replica: Replica) -> None:
        barrier.wait()
        answers.append(
            requests.post(replica.url, data=body(notification()), timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}"})
        )  # fmt: skip

    threads = [threading.Thread(target=send, args=(replicas[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 8
    assert sum(a.text.startswith("open: page P1") for a in answers) == 1
    deadline = time.monotonic() + 10
    while not sandbox.state()["sent"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)  # both replicas' pollers have had their turns
    sent = [(a, s["message"]) for s in sandbox.state()["sent"] for a in s["addresses"]]
    assert sent == [(ALICE, "P1: Disk full on db1 - 1 firing (Reply ACK P1 to acknowledge)")]
