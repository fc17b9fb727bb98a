"""SIGTERM is a clean stop: errbot's own shutdown runs, as on Ctrl-C.

errbot (Text backend) as its own process, the carrier sandbox as another. A send is in
flight (the carrier takes 3 s to answer it) when the service gets SIGTERM the way
``systemctl stop`` sends it: to the bot and to its inbox fetch child. The bot must finish
that send (its answer printed, its audit entry stored), deactivate the plugin (errbot's
"deactivating all the plugins", the fetch child told and gone with it) and exit by itself
well within systemd's default ``TimeoutStopSec`` (90 s).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path

from procs import (
    SERVICE_TAG_VARIABLE,
    ErrbotRun,
    SandboxProcess,
    errbot_sqlite_storage_config,
    exited_within,
    is_fetch_child,
    service_pids,
    signal_pids,
    wait_until,
)
from reliakit import TEST_CLIENT_ID, TEST_CLIENT_SECRET

REG = "term-reg"
OUTBOX = "/sms/v3/messaging/outbox"
SEND_DELAY = 3.0
STOP_BOUND = 30.0  # well under systemd's default TimeoutStopSec of 90 s


def catches(pid: int, sig: int) -> bool:
    """True when process ``pid`` has a handler for ``sig`` (SigCgt in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def audited_ids(store: Path) -> set[str]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT message_ids FROM att_audit").fetchall()
    return {mid for (raw,) in rows for mid in json.loads(raw)}


def test_sigterm_finishes_the_send_in_flight_and_deactivates(tmp_path: Path) -> None:
    box = SandboxProcess(tmp_path, TEST_CLIENT_ID, TEST_CLIENT_SECRET, REG)
    tag = f"sigterm-{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATT_")}
    env.update(
        ATT_CLIENT_SECRET=TEST_CLIENT_SECRET, ATT_API_BASE_URL=box.url,
        ATT_CLIENT_ID=TEST_CLIENT_ID, ATT_INBOX_ROUTES=json.dumps({REG: "@ops"}),
        ATT_POLL_INTERVAL="1", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1",
    )  # fmt: skip
    env[SERVICE_TAG_VARIABLE] = tag
    run = ErrbotRun(tmp_path, 0, errbot_sqlite_storage_config(tmp_path), env)
    try:
        run.wait_ready(30)
        assert catches(run.proc.pid, signal.SIGTERM), "no SIGTERM handler in the bot"
        wait_until(lambda: any(is_fetch_child(p) for p in service_pids(tag)), 20)
        box.call("POST", "/sandbox/faults", {
            "path": OUTBOX, "method": "POST", "count": 1, "delay": SEND_DELAY, "when": "after",
        })  # fmt: skip
        assert run.proc.stdin is not None
        run.proc.stdin.write(b"!sms send +12125551234 sent while stopping\n")
        run.proc.stdin.flush()
        wait_until(lambda: box.state()["requests"].get(f"POST {OUTBOX}", 0) >= 1, 20)

        started = time.monotonic()
        signal_pids(service_pids(tag), signal.SIGTERM)  # as systemd: every process of the unit
        assert exited_within(run.proc, STOP_BOUND), "the bot did not stop on SIGTERM"
        stop_s = time.monotonic() - started
        wait_until(lambda: not service_pids(tag), 10)
        gone_s = time.monotonic() - started
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
        signal_pids(service_pids(tag), signal.SIGKILL)
        run.stop()
        box.stop()

    out = run.stdout()
    log_text = (tmp_path / "errbot.log").read_text(errors="replace")
    print(f"SIGTERM to exit: bot {stop_s:.2f} s, every process {gone_s:.2f} s")
    assert run.proc.returncode == 0, (run.proc.returncode, run.err_path.read_text()[-2000:])
    assert "SIGTERM received" in log_text
    assert "deactivating all the plugins" in log_text  # errbot's own shutdown path
    sent = [line for line in out.splitlines() if "Sent to" in line]
    assert sent, "the send in flight was not finished: " + out[-2000:]
    message_id = sent[0].split("message id ", 1)[1].split()[0].rstrip(".,)")
    assert message_id in audited_ids(tmp_path / "errbot-data" / "att_sms" / "store.sqlite3")
    assert stop_s >= SEND_DELAY - 1.0  # it waited for the carrier's answer
    assert gone_s < STOP_BOUND
