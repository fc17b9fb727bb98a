"""Smoke test of `make demo`'s path: scripts/demo.sh with commands piped into errbot's
text backend, the sandbox it starts, and an inbound SMS injected as the README says."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_demo_script_answers_piped_commands(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VENV": sys.prefix,
        "DEMO_DIR": str(tmp_path),
        "SANDBOX_PORT": str(port),
        "ATT_POLL_INTERVAL": "1",
    }
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(re.sub(r"\x1b\[[0-9;]*m", "", line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_for(pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if proc.poll() is not None and not reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen in demo output:\n{''.join(lines[-60:])}")

    def say(command: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()

    try:
        base = wait_for(r"Carrier sandbox: (http://127\.0\.0\.1:\d+)").group(1)
        assert base.endswith(f":{port}")
        inject = wait_for(r"curl -s -X POST (\S+/sandbox/inbound)").group(1)
        assert inject == f"{base}/sandbox/inbound"
        wait_for(r"You start as a")  # errbot's text backend is up
        say("!sms send +12125551234 demo page")
        message_id = wait_for(r"Sent to tel:\+12125551234: message id (\S+)").group(1)
        sent = requests.get(f"{base}/sandbox/state", timeout=5).json()["sent"]
        assert [s["messageId"] for s in sent] == [message_id]
        say(f"!sms status {message_id}")
        wait_for(rf"Message {re.escape(message_id)}: \+1 212-555-1234: ")
        response = requests.post(
            inject,
            json={
                "registrationId": "demo",
                "senderAddress": "tel:+12125559876",
                "message": "On it",
            },
            timeout=5,
        )
        assert response.status_code == 201
        wait_for(r"SMS from \+1 212-555-9876 .*On it", timeout=15)
        say("!sms inbox")
        wait_for(r"Inbox: 0 messages arrived")
        assert sum("SMS from" in line and "On it" in line for line in lines) == 1
    finally:
        if proc.stdin:
            proc.stdin.close()  # Ctrl-D: errbot exits, the script stops the sandbox
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    with socket.socket() as s:  # the sandbox was stopped with the demo
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        s.bind(("127.0.0.1", port))
