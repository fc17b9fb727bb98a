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
from att_sms.carrier.errors import CarrierUnavailable, NotFoundError
from att_sms.inbound.fetcher import FetcherProcess
from att_sms.store import open_store

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def settings(sandbox, client_id: str, client_secret: str, data_dir: Path) -> dict:
    return {
        "base_url": sandbox.base_url,
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": "SMS",
        "read_timeout": 5,
        "data_dir": str(data_dir),
        "default_region": "US",
    }


def stored_texts(data_dir: Path) -> list[str]:
    store = open_store(data_dir)
    try:
        return [m.message for m in store.pending()]
    finally:
        store.close()


def test_child_fetches_into_the_store(sandbox, client_id, client_secret, tmp_path) -> None:
    sandbox.inject_inbound("reg", "tel:+12125559876", "one")
    sandbox.inject_inbound("reg", "tel:+12125559876", "two")
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    try:
        assert fetcher.fetch("reg") == 2
        assert fetcher.fetch("reg") == 0
    finally:
        fetcher.close()
    assert not fetcher.alive
    assert stored_texts(tmp_path) == ["one", "two"]


def test_the_child_finds_the_package_without_the_bots_pythonpath(
    sandbox, client_id, client_secret, tmp_path, monkeypatch
) -> None:
    """errbot puts the plugin's folder on ``sys.path`` in-process only: a bot started as
    ``errbot`` has no PYTHONPATH, and its fetch child must still import ``att_sms``."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    sandbox.inject_inbound("reg", "tel:+12125559876", "found")
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    try:
        assert fetcher.fetch("reg") == 1
    finally:
        fetcher.close()
    assert stored_texts(tmp_path) == ["found"]


def test_the_secret_is_not_in_the_childs_environment(
    sandbox, client_id, client_secret, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("ATT_CLIENT_SECRET", client_secret)
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    try:
        environ = Path(f"/proc/{fetcher._proc.pid}/environ").read_bytes()
        argv = Path(f"/proc/{fetcher._proc.pid}/cmdline").read_bytes()
    finally:
        fetcher.close()
    assert b"ATT_CLIENT_SECRET" not in environ
    assert client_secret.encode() not in environ and client_secret.encode() not in argv


def test_carrier_errors_cross_the_pipe(sandbox, client_id, client_secret, tmp_path) -> None:
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    try:
        with pytest.raises(NotFoundError) as err:
            fetcher.fetch("no-such-registration")
    finally:
        fetcher.close()
    assert err.value.status == 404 and err.value.message_id
    assert str(err.value).startswith(f"{err.value.message_id}: ")


_BOT = textwrap.dedent(
    """
    import json, sys
    from att_sms.inbound.fetcher import FetcherProcess
    f = FetcherProcess(json.loads(sys.argv[1]), reply_timeout=30)
    print("fetching", f._proc.pid, flush=True)
    f.fetch("reg")
    print("fetched", flush=True)
    """
)


@pytest.mark.parametrize("how", ["SIGKILL the bot", "SIGTERM every process", "SIGINT every process"])
def test_a_stopped_bot_does_not_cut_a_fetch_short(
    sandbox, client_id, client_secret, tmp_path, how: str
) -> None:
    """The carrier drains, then answers slowly; the 'bot' is stopped while it waits."""
    for i in range(5):
        sandbox.inject_inbound("reg", "tel:+12125559876", f"in flight {i}")
    sandbox.add_fault("/sms/v3/messaging/inbox", method="GET", when="after", delay=1.5, count=1)
    proc = subprocess.Popen(
        [
            sys.executable, "-c", _BOT,
            json.dumps(settings(sandbox, client_id, client_secret, tmp_path)),
        ],
        env={**os.environ, "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    word, child_pid = proc.stdout.readline().split()
    assert word == "fetching"
    deadline = time.monotonic() + 10
    while sandbox.state()["pendingInbound"].get("reg", 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.state()["pendingInbound"].get("reg", 0) == 0  # the carrier forgot them
    if how == "SIGKILL the bot":
        os.killpg(proc.pid, signal.SIGKILL)  # the whole bot process group, mid-answer
    else:  # a service manager signals every process of the service, the child included
        sig = signal.SIGTERM if "SIGTERM" in how else signal.SIGINT
        os.killpg(proc.pid, sig)
        os.kill(int(child_pid), sig)
    proc.wait()
    assert proc.stdout.read() == ""  # it never saw the answer
    deadline = time.monotonic() + 10
    stored: list[str] = []
    while time.monotonic() < deadline:
        stored = stored_texts(tmp_path)
        if len(stored) == 5:
            break
        time.sleep(0.1)
    assert stored == [f"in flight {i}" for i in range(5)]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    status = Path(f"/proc/{child_pid}/status")
    assert not status.exists() or "zombie" in status.read_text()  # it exited by itself


def test_a_child_that_stops_answering_is_replaced(
    sandbox, client_id, client_secret, tmp_path
) -> None:
    sandbox.inject_inbound("reg", "tel:+12125559876", "creates the registration")
    sandbox.add_fault("/sms/v3/messaging/inbox", method="GET", delay=3, count=1)
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=1)
    with pytest.raises(CarrierUnavailable, match="did not answer"):
        fetcher.fetch("reg")
    assert not fetcher.alive  # killed, so a new one is started for the next fetch
    sandbox.inject_inbound("reg", "tel:+12125559876", "after the hang")
    fresh = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    try:
        fresh.fetch("reg")
    finally:
        fresh.close()
    assert "after the hang" in stored_texts(tmp_path)


def test_a_child_that_cannot_run_is_reported(
    sandbox, client_id, client_secret, tmp_path, monkeypatch
) -> None:
    from att_sms.inbound import fetcher as fetcher_module

    monkeypatch.setattr(
        fetcher_module, "CHILD_COMMAND", [sys.executable, "-c", "raise SystemExit(3)"]
    )
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    with pytest.raises(fetcher_module.FetcherExited, match="exit status 3"):
        fetcher.fetch("reg")


def test_a_stop_while_the_child_starts_does_not_end_it(
    sandbox, client_id, client_secret, tmp_path
) -> None:
    """SIGTERM right after the spawn (the child is still importing) is ignored as later."""
    sandbox.inject_inbound("reg", "tel:+12125559876", "one")
    fetcher = FetcherProcess(settings(sandbox, client_id, client_secret, tmp_path), reply_timeout=30)
    try:
        time.sleep(0.05)  # the interpreter is up; the child's own imports are not done
        os.kill(fetcher._proc.pid, signal.SIGTERM)
        os.kill(fetcher._proc.pid, signal.SIGINT)
        assert fetcher.fetch("reg") == 1
        assert fetcher.alive
    finally:
        fetcher.close()
