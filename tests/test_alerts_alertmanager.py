"""End to end with a real Alertmanager (Debian's prometheus-alertmanager, installed by
scripts/ensure-alertmanager.sh): alerts pushed to its API v2 -> Alertmanager's webhook, as
docs/examples/alertmanager.yml configures it -> the bot (errbot's Webserver in the test
backend) -> the carrier sandbox. Two Alertmanagers that do not know of each other (the worst
case of an HA pair) send every notification twice: one page, one SMS per step."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from test_alerts_http import ALICE, BOB, AlertBot, free_port, sms_to, start_alert_bot, wait_for

ROOT = Path(__file__).resolve().parent.parent
BINARY = "/usr/bin/prometheus-alertmanager"
EXAMPLE = ROOT / "docs" / "examples" / "alertmanager.yml"
TOKEN = "am-token-51c0"
TEST_TIMINGS = {"group_wait: 30s": "group_wait: 1s", "group_interval: 5m": "group_interval: 2s",
                "repeat_interval: 4h": "repeat_interval: 3s"}  # fmt: skip


def _binary() -> str:
    if not os.path.exists(BINARY):
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-alertmanager.sh")], check=False)
    if not os.path.exists(BINARY):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("prometheus-alertmanager is not installed (scripts/ensure-alertmanager.sh)")
        pytest.skip("prometheus-alertmanager is not installed (scripts/ensure-alertmanager.sh)")
    return BINARY


class Alertmanager:
    def __init__(self, workdir: Path, bot_url: str) -> None:
        workdir.mkdir(parents=True)
        token_file = workdir / "token"
        token_file.write_text(TOKEN + "\n")
        config = EXAMPLE.read_text()
        config = config.replace("http://127.0.0.1:3141/att_sms/alerts", bot_url)
        config = config.replace("/etc/prometheus/att-webhook-token", str(token_file))
        for production, test in TEST_TIMINGS.items():
            assert production in config
            config = config.replace(production, test)
        (workdir / "alertmanager.yml").write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "log").open("w")
        self.proc = subprocess.Popen(
            [_binary(), f"--config.file={workdir / 'alertmanager.yml'}",
             f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, (workdir / "log").read_text()
            assert time.monotonic() < deadline, "Alertmanager did not become ready"
            time.sleep(0.1)

    def push(self, *, ends: bool = False) -> None:
        now = datetime.now(UTC)
        alert: dict[str, Any] = {
            "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "page"},
            "annotations": {"summary": "Disk full on db1"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
        }
        if ends:
            alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
        answer = requests.post(self.url + "/api/v2/alerts", json=[alert], timeout=5)
        assert answer.status_code == 200, answer.text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def stack(
    env: None, tmp_path: Path, sandbox: Any, client_id: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[AlertBot, list[Alertmanager]]]:
    _binary()
    monkeypatch.setenv("ATT_WEBHOOK_TOKEN", TOKEN)
    bot, url = start_alert_bot(tmp_path / "data", sandbox, client_id, ESCALATE_AFTER=8)
    managers: list[Alertmanager] = []
    try:
        for name in ("am1", "am2"):
            managers.append(Alertmanager(tmp_path / name, url))
        yield bot, managers
    finally:
        for manager in managers:
            manager.stop()
        bot.stop()


def test_alertmanager_pages_once_an_sms_ack_stops_it_and_resolve_closes_it(
    stack: Any, sandbox: Any
) -> None:
    bot, managers = stack
    for manager in managers:
        manager.push()
    first = wait_for(lambda: sms_to(sandbox), timeout=15)
    assert first == [(ALICE, "P1: Disk full on db1 - 1 firing (Reply ACK P1 to acknowledge)")]
    assert wait_for(lambda: [t for t in bot.room() if "page P1 opened" in t])
    time.sleep(4)  # group_wait, repeat_interval (3 s), both managers: still one page
    sandbox.inject_inbound("reg-ops", ALICE, "ack")
    bot.ask("!sms inbox")
    assert wait_for(lambda: [t for t in bot.room() if "acknowledged by alice" in t])
    assert wait_for(
        lambda: (ALICE, "Acknowledged P1: Disk full on db1 - 1 firing") in sms_to(sandbox)
    )
    time.sleep(5)  # past ESCALATE_AFTER (8 s) and more repeats: bob is never paged, nobody twice
    assert [a for a, m in sms_to(sandbox)] == [ALICE, ALICE]
    assert bot.ask("!sms pages") == "No open pages."
    assert "page P1 acknowledged by" in bot.ask("!sms alerts")
    for manager in managers:
        manager.push(ends=True)
    assert wait_for(lambda: [t for t in bot.room() if "(page P1) resolved" in t], timeout=15)
    assert wait_for(lambda: (ALICE, "P1 resolved: Disk full on db1") in sms_to(sandbox))
    time.sleep(3)
    assert bot.ask("!sms alerts") == "No firing alert groups."
    assert BOB not in [a for a, _ in sms_to(sandbox)]
    assert len(sms_to(sandbox)) == 3  # the page, the ack's answer, resolved: each once
    assert len([t for t in bot.room() if "resolved" in t]) == 1
    decisions = bot.plugin.services.alerts.intake.decisions
    assert decisions["open"] == 1 and decisions["resolve"] == 1
    assert decisions["ignore"] >= 3  # the other manager's copies and the repeats


def test_alertmanager_retries_until_the_bot_takes_it_and_pages_once(
    stack: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, managers = stack
    monkeypatch.delenv("ATT_WEBHOOK_TOKEN")  # the bot answers 503: Alertmanager must retry
    managers[0].push()
    time.sleep(4)
    assert sms_to(sandbox) == [] and bot.ask("!sms pages") == "No open pages."
    monkeypatch.setenv("ATT_WEBHOOK_TOKEN", TOKEN)
    assert wait_for(lambda: sms_to(sandbox), timeout=20) == [
        (ALICE, "P1: Disk full on db1 - 1 firing (Reply ACK P1 to acknowledge)")
    ]
    time.sleep(5)  # more retries and repeats
    assert len(sms_to(sandbox)) == 1
    decisions = bot.plugin.services.alerts.intake.decisions
    assert decisions["open"] == 1 and decisions["ignore"] >= 1
