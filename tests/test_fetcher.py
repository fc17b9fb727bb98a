"""The inbox fetch child: it stores what the carrier handed over even when the bot dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from att_sms.errors import NotFoundError
from att_sms.fetcher import FetcherProcess
from att_sms.inbox import InboxLedger

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def settings(sandbox, client_id: str, client_secret: str) -> dict:
    return {
        "base_url": sandbox.base_url,
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": "SMS",
        "read_timeout": 5,
    }


def test_child_fetches_into_the_ledger(sandbox, client_id, client_secret, tmp_path) -> None:
    path = tmp_path / "inbox.sqlite3"
    sandbox.inject_inbound("reg", "tel:+12125559876", "one")
    sandbox.inject_inbound("reg", "tel:+12125559876", "two")
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret), path, reply_timeout=30)
    try:
        assert fetcher.fetch("reg") == 2
        assert fetcher.fetch("reg") == 0
    finally:
        fetcher.close()
    assert not fetcher.alive
    assert [m.message for m in InboxLedger(path).pending()] == ["one", "two"]


def test_carrier_errors_cross_the_pipe(sandbox, client_id, client_secret, tmp_path) -> None:
    fetcher = FetcherProcess(
        settings(sandbox, client_id, client_secret), tmp_path / "l.sqlite3", reply_timeout=30
    )
    try:
        with pytest.raises(NotFoundError) as err:
            fetcher.fetch("no-such-registration")
    finally:
        fetcher.close()
    assert err.value.status == 404 and err.value.message_id
    assert str(err.value).startswith(f"{err.value.message_id}: ")


def test_a_killed_bot_does_not_cut_a_fetch_short(
    sandbox, client_id, client_secret, tmp_path
) -> None:
    """The carrier drains, then answers slowly; the 'bot' is SIGKILLed while it waits."""
    path = tmp_path / "inbox.sqlite3"
    for i in range(5):
        sandbox.inject_inbound("reg", "tel:+12125559876", f"in flight {i}")
    sandbox.add_fault("/sms/v3/messaging/inbox", method="GET", when="after", delay=1.5)
    bot = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from att_sms.fetcher import FetcherProcess
        f = FetcherProcess(json.loads(sys.argv[1]), Path(sys.argv[2]), reply_timeout=30)
        print("fetching", flush=True)
        f.fetch("reg")
        print("fetched", flush=True)
        """
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            bot,
            json.dumps(settings(sandbox, client_id, client_secret)),
            str(path),
        ],
        env={**os.environ, "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "fetching"
    deadline = time.monotonic() + 10
    while sandbox.state()["pendingInbound"].get("reg", 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.state()["pendingInbound"].get("reg", 0) == 0  # the carrier forgot them
    os.killpg(proc.pid, signal.SIGKILL)  # the whole bot process group, mid-answer
    proc.wait()
    assert proc.stdout.read() == ""  # it never saw the answer
    deadline = time.monotonic() + 10
    stored: list[str] = []
    while time.monotonic() < deadline:
        stored = [m.message for m in InboxLedger(path).pending()]
        if len(stored) == 5:
            break
        time.sleep(0.1)
    assert stored == [f"in flight {i}" for i in range(5)]


def test_a_child_that_cannot_run_is_reported(
    sandbox, client_id, client_secret, tmp_path, monkeypatch
) -> None:
    from att_sms import fetcher as fetcher_module

    monkeypatch.setattr(
        fetcher_module, "CHILD_COMMAND", [sys.executable, "-c", "raise SystemExit(3)"]
    )
    fetcher = FetcherProcess(
        settings(sandbox, client_id, client_secret), tmp_path / "l.sqlite3", reply_timeout=30
    )
    with pytest.raises(fetcher_module.FetcherExited, match="exit status 3"):
        fetcher.fetch("reg")
