"""Crash and restart: errbot (Text backend) SIGKILLed at random moments while SMS stream in.

The carrier sandbox runs as its own process with a SQLite --db; errbot runs as its own
process on one data directory, restarted after every SIGKILL. Inbound messages with unique
markers are injected steadily the whole time. At every kill the injector pauses and the
test takes an exact snapshot (the bot is dead): every message injected so far must be at
the carrier, in the ledger's pending rows or in its seen rows; anything else was lost by
that kill. At the end every marker is counted in the MD sections of all runs' stdout.

A second test measures, in-process, the one window in which a message can still be lost:
from the carrier's answer (the read is destructive) to the ledger's commit.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import reliakit
from att_sms.carrier.client import AttSmsClient
from att_sms.store import open_store
from procs import (
    ErrbotRun,
    SandboxProcess,
    carrier_pending_ids,
    errbot_config,
    ledger_keys,
    md_sections,
)
from reliakit import TEST_CLIENT_ID, TEST_CLIENT_SECRET

from carrier_sandbox import Sandbox

REG = "crash-reg"
KILLS = 20
INJECT_EVERY = 0.05  # seconds between inbound messages (20 per second)
SENDER = "tel:+12125559876"


def _marker(n: int) -> str:
    return f"crashmk{n:05d}z"


def _id_of(marker: str) -> str:
    return f"id-{marker}"


class Injector(threading.Thread):
    """Injects one inbound message every INJECT_EVERY seconds until stopped; pausable."""

    def __init__(self, box: SandboxProcess) -> None:
        super().__init__(name="crash injector", daemon=True)
        self.box = box
        self.lock = threading.Lock()
        self.injected: list[str] = []
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stopped.is_set():
            with self.lock:
                if self.stopped.is_set():
                    return
                marker = _marker(n)
                try:
                    self.box.inject(REG, SENDER, f"crash test reply {marker}", _id_of(marker))
                    self.injected.append(marker)
                    n += 1
                except OSError as exc:  # the sandbox never goes down in this test
                    self.errors.append(repr(exc))
            time.sleep(INJECT_EVERY)


def _env(box: SandboxProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATT_")}
    env.update(
        ATT_API_BASE_URL=box.url,
        ATT_CLIENT_ID=TEST_CLIENT_ID,
        ATT_CLIENT_SECRET=TEST_CLIENT_SECRET,
        ATT_INBOX_ROUTES=json.dumps({REG: "@ops"}),
        ATT_POLL_INTERVAL="1",
        PYTHONUNBUFFERED="1",  # a post on stdout is on stdout, not in a buffer a SIGKILL drops
    )
    return env


def test_sigkill_restart_posts_every_inbound_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED", str(time.time_ns() % 10**9)))
    rng = random.Random(seed)
    box = SandboxProcess(tmp_path, TEST_CLIENT_ID, TEST_CLIENT_SECRET, REG)
    config = errbot_config(tmp_path)
    env = _env(box)
    ledger_path = tmp_path / "errbot-data" / "att_sms" / "store.sqlite3"
    injector = Injector(box)
    runs: list[ErrbotRun] = []
    lost_at_kill: dict[int, list[str]] = {}
    lost_so_far: set[str] = set()
    ready_times: list[float] = []
    kill_delays: list[float] = []
    started = time.monotonic()
    try:
        injector.start()
        for index in range(KILLS):
            run = ErrbotRun(tmp_path, index, config, env)
            runs.append(run)
            ready_times.append(run.wait_ready())
            delay = rng.uniform(0.05, 1.5)
            kill_delays.append(delay)
            time.sleep(delay)
            with injector.lock:  # exact snapshot: the bot is dead and nothing is injected
                run.sigkill()
                injected = {_id_of(m) for m in injector.injected}
                at_carrier = carrier_pending_ids(box.db, REG)
                pending, seen = ledger_keys(ledger_path)
                in_ledger = {key.split("\x1f", 1)[1] for key in pending | seen}
                lost = injected - at_carrier - in_ledger - lost_so_far
            lost_at_kill[index] = sorted(lost)
            lost_so_far |= lost
        final = ErrbotRun(tmp_path, KILLS, config, env)
        runs.append(final)
        ready_times.append(final.wait_ready())
        time.sleep(1.0)
        injector.stopped.set()
        injector.join(timeout=10)
        expected = set(injector.injected)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            pending, _ = ledger_keys(ledger_path)
            if not pending and not carrier_pending_ids(box.db, REG):
                shown = set()
                for run in runs:
                    for section in md_sections(run.stdout()):
                        shown.update(m for m in expected if m in section)
                if expected - shown <= {m.removeprefix("id-") for m in lost_so_far}:
                    break
            time.sleep(0.3)
        time.sleep(0.5)
        final.stop()
    finally:
        injector.stopped.set()
        for run in runs:
            run.stop()
        box.stop()
    elapsed = time.monotonic() - started

    # count every marker in the MD section of every post of every run
    counts: Counter[str] = Counter()
    where: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        sections = md_sections(run.stdout())
        for s_index, section in enumerate(sections):
            for marker in set(_find_markers(section)):
                counts[marker] += 1
                where.setdefault(marker, []).append((run.index, s_index))
        reliakit.remember_text(f"errbot run {run.index} stdout", run.stdout())
        reliakit.remember_text(f"errbot run {run.index} stderr", run.err_path.read_text())
    log_file = tmp_path / "errbot.log"
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    reliakit.remember_text("errbot.log (crash test)", log_text)
    # errbot 6.2.1's requirements check (AUTOINSTALL_DEPS False) reads each pinned line of
    # requirements.txt as a package name: it logs "Some plugins failed to load" at every
    # start although AttSms loads. Not ours.
    error_lines = [
        line
        for line in log_text.splitlines()
        if (" ERROR " in line or "Traceback" in line) and "Some plugins failed to load" not in line
    ]
    reliakit.remember_text("sandbox stdout (crash test)", box.log_path.read_text())
    reliakit.TOKEN_DIGESTS.update(box.token_digests())

    expected = list(injector.injected)
    lost_markers = {m.removeprefix("id-") for m in lost_so_far}
    missing = [m for m in expected if counts[m] == 0]
    unexplained_missing = [m for m in missing if m not in lost_markers]
    duplicated = {m: c for m, c in counts.items() if c > 1}
    last_section = {run.index: len(md_sections(run.stdout())) - 1 for run in runs}
    killed = {run.index for run in runs if run.killed}
    # a post printed just before a SIGKILL, whose ledger mark did not commit, is posted again
    window_dups = {
        m for m in duplicated if all(r in killed and s == last_section[r] for r, s in where[m][:-1])
    }
    unexplained_dups = sorted(set(duplicated) - window_dups)
    figures: dict[str, Any] = {
        "seed": seed,
        "kills": sum(run.killed for run in runs),
        "runs": len(runs),
        "injected": len(expected),
        "posted_once": sum(1 for m in expected if counts[m] == 1),
        "posted_twice_or_more": len(duplicated),
        "duplicates_in_post_to_mark_window": len(window_dups),
        "kills_that_repeated_a_post": len({where[m][0] for m in window_dups}),
        "missing": len(missing),
        "lost_at_a_kill_answer_to_commit_window": len(lost_markers),
        "lost_per_kill": {k: len(v) for k, v in lost_at_kill.items() if v},
        "errbot_ready_seconds_median": round(statistics.median(ready_times), 2),
        "kill_after_ready_seconds": [round(d, 2) for d in kill_delays],
        "seconds": round(elapsed, 1),
        "injector_errors": len(injector.errors),
        "errbot_log_lines": len(log_text.splitlines()),
        "errbot_log_errors": len(error_lines),
    }
    reliakit.FIGURES["crash_restart"] = figures

    assert figures["kills"] >= KILLS
    assert not injector.errors, injector.errors[:3]
    assert len(expected) > 100
    assert error_lines == [], error_lines[:5]
    assert unexplained_missing == [], (
        f"lost without a kill to explain it: {unexplained_missing[:10]}"
    )
    assert unexplained_dups == [], f"posted twice: {[(m, where[m]) for m in unexplained_dups[:10]]}"
    assert missing == [], f"lost in the answer-to-ledger window at a kill: {lost_at_kill}"
    # What the design guarantees: a message is posted again only when the bot was killed
    # after the chat took its post and before the ledger marked it (the run's last post).
    # Stricter "at most once" cannot hold without an idempotent chat API; the count of such
    # repeats is published in docs/RELIABILITY.md.
    repeated_posts = {where[m][0] for m in window_dups}
    assert len(repeated_posts) <= figures["kills"]
    assert all(n == 2 for m, n in duplicated.items()), duplicated


def _find_markers(text: str) -> list[str]:
    found = []
    start = 0
    while True:
        i = text.find("crashmk", start)
        if i < 0:
            return found
        found.append(text[i : i + 13])
        start = i + 13


def test_loss_window_from_carrier_answer_to_ledger_commit(tmp_path: Path) -> None:
    """Time the only unprotected window: carrier drained the message -> ledger committed it."""
    polls = 200
    with Sandbox(
        client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET, registrations=(REG,)
    ) as box:
        drained_at: list[float] = []
        original = box.store.drain_inbound

        def drain(registration_id: str, limit: int = 0) -> Any:
            result = original(registration_id, limit)
            drained_at.append(time.perf_counter())
            return result

        box.store.drain_inbound = drain  # type: ignore[method-assign]
        client = AttSmsClient(box.base_url, TEST_CLIENT_ID, TEST_CLIENT_SECRET)
        headers_at: list[float] = []
        body_at: list[float] = []
        # requests calls response hooks once the headers are in, before reading the body
        client._session.hooks["response"].append(
            lambda response, *args, **kwargs: headers_at.append(time.perf_counter())
        )
        session_send = client._session.send

        def send(*args: Any, **kwargs: Any) -> Any:
            response = session_send(*args, **kwargs)  # returns with the whole body read
            body_at.append(time.perf_counter())
            return response

        client._session.send = send  # type: ignore[method-assign]
        ledger = open_store(tmp_path)
        body_to_commit: list[float] = []
        headers_to_commit: list[float] = []
        drain_to_commit: list[float] = []
        mark_posted: list[float] = []
        try:
            client.fetch_inbound(REG)  # token + connection warm
            for n in range(polls):
                for k in range(1 + n % 3):
                    box.inject_inbound(REG, SENDER, f"window {n}/{k}")
                drained_at.clear()
                headers_at.clear()
                body_at.clear()
                batch = client.fetch_inbound(REG)
                added = ledger.record_fetched(REG, batch.messages)
                committed = time.perf_counter()
                assert len(added) == 1 + n % 3
                body_to_commit.append(committed - body_at[-1])
                headers_to_commit.append(committed - headers_at[-1])
                drain_to_commit.append(committed - drained_at[-1])
                before_mark = time.perf_counter()
                ledger.mark_posted([m.key for m in added])
                mark_posted.append(time.perf_counter() - before_mark)
        finally:
            ledger.close()
            client.close()

    def us(values: list[float]) -> dict[str, float]:
        micro = sorted(v * 1e6 for v in values)
        return {
            "median_us": round(statistics.median(micro)),
            "p99_us": round(micro[int(len(micro) * 0.99) - 1]),
            "max_us": round(micro[-1]),
        }

    figures = {
        "polls": polls,
        "answer_body_received_to_commit": us(body_to_commit),
        "answer_headers_received_to_commit": us(headers_to_commit),
        "carrier_drain_to_commit": us(drain_to_commit),
        "post_to_mark_posted_commit": us(mark_posted),
    }
    reliakit.FIGURES["loss_window"] = figures
    # a sanity bound, not a performance target: the window is a handful of milliseconds
    assert figures["answer_body_received_to_commit"]["median_us"] < 50_000


@pytest.fixture(autouse=True)
def _no_stray_att_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ATT_"):
            monkeypatch.delenv(name)
