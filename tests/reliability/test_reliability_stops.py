"""Any stop, at any moment, loses nothing: errbot stopped four ways while SMS, sends and contacts flow.

errbot (Text backend) runs as its own process on one data directory, errbot's own settings
in the repository's SQLite storage plugin; the carrier sandbox is a process with a SQLite
--db. Inbound SMS stream in the whole time (injector thread); ``!sms send`` and ``!sms
contact add`` lines are written to the bot's stdin. At a random moment after each start
the service is stopped by one of:

* ``sigterm-all``: SIGTERM to every process of the service (the bot's process group and
  its inbox fetch child, found by an environment tag as a systemd control group holds
  them), then SIGKILL to whatever is left after GRACE seconds;
* ``sigint-group``: SIGINT to the bot's process group (Ctrl-C in a terminal);
* ``sigkill-bot``: SIGKILL of the bot process alone (a child still alive CHILD_BOUND
  seconds later is SIGKILLed, as a supervisor would);
* ``sigkill-all``: SIGKILL of every process of the service.

Each mode runs every kind in a seeded random order: ``env`` configures the plugin from
ATT_* variables; ``chat`` with ``!plugin config AttSms {...}`` in its first run, every later
run having only ATT_CLIENT_SECRET, so the stored configuration must survive every stop.

The carrier answers every inbox read SLOW_READ seconds after draining it (a real carrier's
latency, widened) so that stops land during reads. Once a stop has taken the bot down the
test records what the carrier handed over and the store does not hold yet: a read in
flight. Only a SIGKILL of the fetch child itself can lose such a read, and nothing the bot
does can keep it (the carrier's read is destructive), so ``sigkill-all`` may lose exactly
those messages; the other kinds must lose none. STOP_CYCLES (default 6) is the number of
stops per kind, split over both modes; RELIABILITY_SEED fixes the random moments;
STOP_SLOW_READ sets SLOW_READ (0 for the carrier's own speed); STOP_KINDS (comma-separated)
runs only some kinds.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliakit
from procs import (
    SERVICE_TAG_VARIABLE,
    ErrbotRun,
    SandboxProcess,
    carrier_pending_ids,
    errbot_sqlite_storage_config,
    exited_within,
    ignores_signal,
    is_fetch_child,
    kill_service_after,
    ledger_keys,
    md_sections,
    service_pids,
    signal_group,
    signal_pids,
    wait_until,
)
from reliakit import TEST_CLIENT_ID, TEST_CLIENT_SECRET

REG = "stop-reg"
KINDS = ("sigterm-all", "sigint-group", "sigkill-bot", "sigkill-all")
#: STOP_KINDS=sigterm-all (comma-separated) runs only those kinds; every kind by default.
KINDS_RUN = tuple(k for k in os.environ.get("STOP_KINDS", ",".join(KINDS)).split(",") if k)
CYCLES_PER_KIND = int(os.environ.get("STOP_CYCLES", "6"))
GRACE = 5.0  # systemd's stop timeout (90 s by default), shortened
SIGINT_BOUND = 30.0  # a Ctrl-C'd bot must be gone by then
CHILD_BOUND = 10.0  # a fetch child whose bot was SIGKILLed must be gone by then
READY_BOUND = 30.0
#: Seconds from the carrier's drain to its answer, every inbox read (0: as fast as it can).
SLOW_READ = float(os.environ.get("STOP_SLOW_READ", "0.25"))
INJECT_EVERY = 0.2
SENDER = "tel:+12125559876"
PAGE_TO = "+12125551234"
INBOX_READ = "GET /sms/v3/messaging/inbox/{registrationId}"
# Not anchored at a line start: the Text backend's prompt, printed by another thread, can
# land in front of a reply (stdout is unbuffered and shared).
CONTACT_ACK = re.compile(r"Contact (c\w+) is (tel:\+\d+) \(")
SENT_ACK = re.compile(r"Sent to \S+: message id ([\w-]+)")
CONTACTS_REPLY = re.compile(r"(Contacts: .*|No contacts yet.*)$", re.MULTILINE)
NOT_CONFIGURED = "AttSms is not configured"
MARKER = re.compile(r"stopmk\d{5}z")
SEED = int(os.environ.get("RELIABILITY_SEED", str(time.time_ns() % 10**9)))
#: Figures of this module, per mode, and summed per kind over the modes that ran.
FIGURES: dict[str, Any] = {}


def _marker(n: int) -> str:
    return f"stopmk{n:05d}z"


def _id(marker: str) -> str:
    return f"id-{marker}"


class Injector(threading.Thread):
    """One inbound SMS every INJECT_EVERY seconds until stopped; ``lock`` pauses it."""

    def __init__(self, box: SandboxProcess) -> None:
        super().__init__(name="stop injector", daemon=True)
        self.box, self.lock = box, threading.Lock()
        self.injected: list[str] = []
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            with self.lock:
                marker = _marker(len(self.injected))
                try:
                    self.box.inject(REG, SENDER, f"stop test reply {marker}", _id(marker))
                    self.injected.append(marker)
                except OSError as exc:  # the sandbox never goes down in this test
                    self.errors.append(repr(exc))
            time.sleep(INJECT_EVERY)


class Service:
    """The sandbox, one data directory and the errbot runs on it, in one config mode."""

    def __init__(self, workdir: Path, mode: str, rng: random.Random) -> None:
        self.workdir, self.mode, self.rng = workdir, mode, rng
        self.box = SandboxProcess(workdir, TEST_CLIENT_ID, TEST_CLIENT_SECRET, REG)
        if SLOW_READ > 0:
            self.box.call("POST", "/sandbox/faults", {
                "path": f"/sms/v3/messaging/inbox/{REG}", "method": "GET", "count": 10**7,
                "delay": SLOW_READ, "when": "after",
            })  # fmt: skip
        self.config = errbot_sqlite_storage_config(workdir)
        self.store_path = workdir / "errbot-data" / "att_sms" / "store.sqlite3"
        self.tag = f"stops-{mode}-{uuid.uuid4().hex[:12]}"
        self.injector = Injector(self.box)
        self.runs: list[ErrbotRun] = []
        self.cycles: list[dict[str, Any]] = []
        self.lost: set[str] = set()  # message ids, each lost at one stop
        self.failed_starts: list[str] = []
        self.commands = 0
        self.ready_s: dict[int, float] = {}
        self.injected_at_start: dict[int, int] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATT_")}
        # PYTHONFAULTHANDLER: a bot that does not stop gets SIGABRT, its threads' stacks in stderr
        env.update(
            ATT_CLIENT_SECRET=TEST_CLIENT_SECRET, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1"
        )
        env[SERVICE_TAG_VARIABLE] = self.tag
        if self.mode == "env":
            env.update(
                ATT_API_BASE_URL=self.box.url,
                ATT_CLIENT_ID=TEST_CLIENT_ID,
                ATT_INBOX_ROUTES=json.dumps({REG: "@ops"}),
                ATT_POLL_INTERVAL="1",
            )
        return env

    def start(self) -> ErrbotRun:
        run = ErrbotRun(self.workdir, len(self.runs), self.config, self.env())
        self.runs.append(run)
        try:
            self.ready_s[run.index] = run.wait_ready(READY_BOUND)
        except RuntimeError as exc:
            self.failed_starts.append(f"run {run.index}: {exc}")
            raise
        self.injected_at_start[run.index] = len(self.injector.injected)
        return run

    def write(self, run: ErrbotRun, line: str) -> None:
        try:
            assert run.proc.stdin is not None
            run.proc.stdin.write(line.encode() + b"\n")
            run.proc.stdin.flush()
        except OSError:
            pass  # the bot is gone: the line was never acknowledged

    def configure_in_chat(self, run: ErrbotRun) -> None:
        config = {
            "API_BASE_URL": self.box.url, "CLIENT_ID": TEST_CLIENT_ID,
            "INBOX_ROUTES": {REG: "@ops"}, "POLL_INTERVAL": 1,
        }  # fmt: skip
        self.write(run, f"!plugin config AttSms {config!r}")
        wait_until(lambda: any("configuration done" in s for s in md_sections(run.stdout())), 20)

    def traffic(self, run: ErrbotRun, seconds: float) -> None:
        """Sends and contact changes written to stdin for ``seconds`` (errbot reads 2 a second)."""
        end = time.monotonic() + seconds
        while True:
            n = self.commands
            self.commands += 1
            if n % 2:
                self.write(run, f"!sms contact add c{self.mode}{n:04d} +1212555{3000 + n % 999}")
            else:
                self.write(run, f"!sms send {PAGE_TO} stop test page {self.mode} {n}")
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.rng.uniform(0.15, 0.45)))

    def drained_not_stored(self) -> set[str]:
        """Ids the carrier handed over that the store does not hold: a read in flight (or lost)."""
        with self.injector.lock:
            injected = {_id(m) for m in self.injector.injected}
            at_carrier = carrier_pending_ids(self.box.db, REG)  # before the store: no false gap
            stored = self.stored_ids()
        return injected - at_carrier - stored - self.lost

    def stored_ids(self) -> set[str]:
        pending, posted = ledger_keys(self.store_path)
        return {key.split("\x1f", 1)[1] for key in pending | posted}

    def inbox_reads(self) -> int:
        """Inbox reads the carrier has seen so far (counted as each one arrives)."""
        return int(self.box.state()["requests"].get(INBOX_READ, 0))

    def stop(self, run: ErrbotRun, kind: str) -> dict[str, Any]:
        """Stop the service the ``kind`` way; what was in flight and what became of it."""
        pids = service_pids(self.tag)
        child_alive = any(is_fetch_child(p) for p in pids)
        injected_before, reads_before = len(self.injector.injected), self.inbox_reads()
        started = time.monotonic()
        if kind in ("sigterm-all", "sigkill-all"):
            sig = signal.SIGTERM if kind == "sigterm-all" else signal.SIGKILL
            signal_group(run.proc, sig)
            signal_pids(pids, sig)
        elif kind == "sigint-group":
            assert not ignores_signal(run.proc.pid, signal.SIGINT), (
                "the bot inherited SIGINT ignored"
            )
            signal_group(run.proc, signal.SIGINT)
        else:
            os.kill(run.proc.pid, signal.SIGKILL)
        # SIGINT: errbot shuts down cleanly, so look while it does; the others: once it is dead
        in_flight = self.drained_not_stored() if kind == "sigint-group" else set()
        bot_hung = not exited_within(run.proc, SIGINT_BOUND if kind == "sigint-group" else GRACE)
        if bot_hung:
            os.kill(run.proc.pid, signal.SIGABRT)  # faulthandler: every thread's stack to stderr
            exited_within(run.proc, 5)
            signal_group(run.proc, signal.SIGKILL)
            run.proc.wait(timeout=10)
        bot_exit_s = time.monotonic() - started
        in_flight |= self.drained_not_stored()
        killed_late = kill_service_after(
            self.tag, started + (GRACE if kind == "sigterm-all" else CHILD_BOUND)
        )
        gone_s = time.monotonic() - started
        run.stop()  # it has exited: this closes its files
        lost = self.drained_not_stored()
        self.lost |= lost
        return {
            "kind": kind, "run": run.index, "ready_s": round(self.ready_s[run.index], 2),
            "injected_during_run": injected_before - self.injected_at_start[run.index],
            "fetch_child_at_stop": child_alive,
            "in_flight": len(in_flight), "in_flight_committed": len(in_flight & self.stored_ids()),
            "lost": sorted(lost), "inbox_reads_started_after_stop": self.inbox_reads() - reads_before,
            "bot_exit_s": round(bot_exit_s, 2), "all_gone_s": round(gone_s, 2),
            "killed_after_bound": killed_late, "bot_ignored_signal": bot_hung,
        }  # fmt: skip

    def cycle(self, kind: str, first: bool) -> None:
        run = self.start()
        if first and self.mode == "chat":
            self.configure_in_chat(run)
        self.traffic(run, self.rng.uniform(0.2, 1.8))
        self.cycles.append(self.stop(run, kind))

    def settle(self) -> ErrbotRun:
        """A last run, not stopped: everything stored or at the carrier gets posted."""
        final = self.start()
        time.sleep(1.0)
        self.injector.stopped.set()
        self.injector.join(timeout=10)
        wanted = {m for m in self.injector.injected if _id(m) not in self.lost}

        def all_posted() -> bool:
            if ledger_keys(self.store_path)[0] or carrier_pending_ids(self.box.db, REG):
                return False
            return wanted <= set(post_counts(self.runs)[0])

        wait_until(all_posted, 60, quiet=True)
        self.write(final, "!sms contacts")
        wait_until(lambda: contacts_reply(final) is not None, 20, quiet=True)
        final.stop()
        return final

    def close(self) -> None:
        self.injector.stopped.set()
        for run in self.runs:
            if run.proc.poll() is None:
                signal_group(run.proc, signal.SIGKILL)
            run.stop()
        signal_pids(service_pids(self.tag), signal.SIGKILL)
        self.box.stop()


def post_counts(runs: list[ErrbotRun]) -> tuple[Counter[str], dict[str, list[tuple[int, int]]]]:
    """How often each marker was posted, and where: (run, index among that run's posts).

    Posts are counted by their MD rendering. Another thread's output can displace a post's
    MD bar (stdout is shared and unbuffered); a marker printed by a run outside any MD
    section still counts as posted once there, at index -1 (never "the run's last post").
    """
    counts: Counter[str] = Counter()
    where: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        out = run.stdout()
        posts = [s for s in md_sections(out) if MARKER.search(s)]
        for index, post in enumerate(posts):
            for marker in set(MARKER.findall(post)):
                counts[marker] += 1
                where.setdefault(marker, []).append((run.index, index))
        in_posts = {m for post in posts for m in MARKER.findall(post)}
        for marker in set(MARKER.findall(out)) - in_posts:
            counts[marker] += 1
            where.setdefault(marker, []).append((run.index, -1))
    return counts, where


def window_reposts(service: Service) -> tuple[dict[str, str], list[Any]]:
    """Markers posted again because a stop cut the post -> mark window (-> that stop's kind).

    Posts are made one at a time and each is marked before the next: a repeat is explained
    only when every earlier copy was the last inbound post of a run that was stopped.
    """
    _, where = post_counts(service.runs)
    stopped = {c["run"]: c["kind"] for c in service.cycles}
    last = {
        run.index: sum(1 for s in md_sections(run.stdout()) if MARKER.search(s)) - 1
        for run in service.runs
    }
    explained: dict[str, str] = {}
    unexplained = []
    for marker, places in where.items():
        earlier = places[:-1]
        if not earlier:
            continue
        if all(r in stopped and i == last[r] for r, i in earlier):
            explained[marker] = stopped[earlier[0][0]]
        else:
            unexplained.append((marker, places))
    return explained, unexplained


def contacts_reply(run: ErrbotRun) -> str | None:
    found = CONTACTS_REPLY.search(run.stdout())
    return found.group(1) if found else None


def store_rows(path: Path) -> tuple[dict[str, str], set[str]]:
    """(contact name -> tel, every message id in the audit log) from the plugin's store."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        contacts = dict(db.execute("SELECT name, tel FROM att_contacts"))
        rows = db.execute("SELECT message_ids FROM att_audit").fetchall()
    return contacts, {mid for (raw,) in rows for mid in json.loads(raw)}


def kind_figures(service: Service, final: ErrbotRun, reposts: dict[str, str]) -> dict[str, Any]:
    """Per stop kind: cycles, messages, losses, repeats, acknowledged changes found."""
    contacts, audit_ids = store_rows(service.store_path)
    listed = contacts_reply(final) or ""
    figures = {}
    for kind in KINDS:
        mine = [c for c in service.cycles if c["kind"] == kind]
        outs = [service.runs[c["run"]].stdout() for c in mine]  # each reply 4 times: sets
        contact_acks = {pair for out in outs for pair in CONTACT_ACK.findall(out)}
        send_acks = {mid for out in outs for mid in SENT_ACK.findall(out)}

        def total(field: str, cycles: list[dict[str, Any]] = mine) -> int:
            return sum(
                int(c[field]) if not isinstance(c[field], list) else len(c[field]) for c in cycles
            )

        figures[kind] = {
            "cycles": len(mine),
            "inbound_during_runs": total("injected_during_run"),
            "lost": total("lost"),
            "reposted": sum(1 for k in reposts.values() if k == kind),
            "sends_acknowledged": len(send_acks),
            "sends_in_audit": sum(1 for mid in send_acks if mid in audit_ids),
            "contacts_acknowledged": len(contact_acks),
            "contacts_in_store_and_listed": sum(
                1 for name, tel in contact_acks if contacts.get(name) == tel and f"{name} " in listed
            ),
            "fetch_child_alive_at_stop": total("fetch_child_at_stop"),
            "stops_with_read_in_flight": sum(1 for c in mine if c["in_flight"]),
            "in_flight_messages": total("in_flight"),
            "in_flight_committed_after_stop": total("in_flight_committed"),
            "inbox_reads_started_after_stop": total("inbox_reads_started_after_stop"),
            "killed_after_bound": total("killed_after_bound"),
            "bot_ignored_signal": total("bot_ignored_signal"),
            "bot_exit_s_max": max((c["bot_exit_s"] for c in mine), default=0),
            "all_gone_s_max": max((c["all_gone_s"] for c in mine), default=0),
        }  # fmt: skip
    return figures


def service_figures(service: Service, final: ErrbotRun) -> dict[str, Any]:
    """Every figure of one mode; the assertions read them."""
    counts, _ = post_counts(service.runs)
    reposts, unexplained = window_reposts(service)
    log_path = service.workdir / "errbot.log"
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    for run in service.runs:
        name = f"stop test {service.mode} run {run.index}"
        reliakit.remember_text(f"{name} stdout", run.stdout())
        reliakit.remember_text(f"{name} stderr", run.err_path.read_text(errors="replace"))
    reliakit.remember_text(f"errbot.log (stop test {service.mode})", log_text)
    reliakit.remember_text(f"sandbox (stop test {service.mode})", service.box.log_path.read_text())
    reliakit.TOKEN_DIGESTS.update(service.box.token_digests())
    unconfigured = [
        run.index for run in service.runs
        if NOT_CONFIGURED in run.stdout()
    ]  # fmt: skip
    ready = list(service.ready_s.values())
    # errbot 6.2.1 logs "Some plugins failed to load" at every start with AUTOINSTALL_DEPS
    # False (it reads requirements.txt's pinned lines as names); AttSms loads. Not ours.
    errors = [
        line for line in log_text.splitlines()
        if (" ERROR " in line or "Traceback" in line) and "Some plugins failed to load" not in line
    ]  # fmt: skip
    return {
        "mode": service.mode,
        "runs": len(service.runs),
        "injected": len(service.injector.injected),
        "missing": sorted(m for m in service.injector.injected if counts[m] == 0),
        "missing_not_lost_at_a_stop": sorted(
            m for m in service.injector.injected if counts[m] == 0 and _id(m) not in service.lost
        ),
        "posted_more_than_twice": sorted(m for m, n in counts.items() if n > 2),
        "unexplained_reposts": unexplained[:10],
        "starts_failed": len(service.failed_starts) + len(unconfigured),
        "runs_answering_not_configured": unconfigured,
        "contacts_listed": contacts_reply(final) is not None,
        "ready_s_median": round(statistics.median(ready), 2),
        "ready_s_max": round(max(ready), 2),
        "in_process_fetch_warnings": log_text.count("in-process"),
        "log_errors": errors[:10],
        "injector_errors": service.injector.errors[:3],
        "per_kind": kind_figures(service, final, reposts),
        "cycles": service.cycles,
    }


def _sum_over_modes() -> dict[str, dict[str, float]]:
    summed: dict[str, dict[str, float]] = {}
    for mode in ("env", "chat"):
        for kind, row in FIGURES.get(mode, {}).get("per_kind", {}).items():
            into = summed.setdefault(kind, {})
            for field, value in row.items():
                into[field] = (
                    max(into.get(field, 0), value)
                    if field.endswith("_max")
                    else into.get(field, 0) + value
                )
    return summed


@pytest.fixture(autouse=True)
def _sigint_reaches_the_bot() -> Iterator[None]:
    """Ctrl-C must reach the bot. A process started from a shell's background job (``cmd &``
    without job control) has SIGINT ignored, and children inherit an ignored signal: restore
    a handler here so that every errbot started by the test gets the default one."""
    old = signal.getsignal(signal.SIGINT)
    if old == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("mode", ["env", "chat"])
def test_any_stop_at_any_moment_loses_nothing(tmp_path: Path, mode: str) -> None:
    seed = SEED
    print(
        f"stop matrix {mode}: seed {seed}, {CYCLES_PER_KIND} stops per kind, slow read {SLOW_READ}"
    )
    rng = random.Random(f"{seed}-{mode}")
    assert set(KINDS_RUN) <= set(KINDS), f"STOP_KINDS: unknown kind in {KINDS_RUN}"
    order = [kind for kind in KINDS_RUN for _ in range(max(1, CYCLES_PER_KIND // 2))]
    rng.shuffle(order)
    service = Service(tmp_path, mode, rng)
    started = time.monotonic()
    try:
        service.injector.start()
        for index, kind in enumerate(order):
            service.cycle(kind, first=index == 0)
        final = service.settle()
    finally:
        service.close()
    figures = service_figures(service, final)
    figures.update(seed=seed, slow_read_s=SLOW_READ, seconds=round(time.monotonic() - started, 1))
    FIGURES[mode] = figures
    FIGURES["by_kind"] = _sum_over_modes()
    reliakit.FIGURES["stop_matrix"] = dict(FIGURES)
    kinds = figures["per_kind"]
    print(json.dumps({k: v for k, v in figures.items() if k not in ("cycles", "per_kind")}))
    print(json.dumps(kinds))

    assert figures["starts_failed"] == 0, (
        service.failed_starts,
        figures["runs_answering_not_configured"],
    )
    assert not figures["injector_errors"]
    assert figures["missing_not_lost_at_a_stop"] == [], (
        "inbound missing without a stop to explain it"
    )
    for kind in ("sigterm-all", "sigint-group", "sigkill-bot"):
        assert kinds[kind]["lost"] == 0, (kind, seed, [c for c in service.cycles if c["lost"]])
    # sigkill-all: only a read in flight at the kill (the carrier already forgot it) is lost
    assert all(len(c["lost"]) <= c["in_flight"] for c in service.cycles), service.cycles
    for kind, row in kinds.items():
        assert row["in_flight_committed_after_stop"] + row["lost"] == row["in_flight_messages"], (
            kind
        )
        assert row["killed_after_bound"] == 0, (kind, seed, row)
        assert row["bot_ignored_signal"] == 0, (kind, seed, row)
        assert row["sends_in_audit"] == row["sends_acknowledged"], (kind, row)
        assert row["contacts_in_store_and_listed"] == row["contacts_acknowledged"], (kind, row)
    assert figures["unexplained_reposts"] == [], "posted twice outside the post -> mark window"
    assert figures["posted_more_than_twice"] == []
    assert figures["contacts_listed"]
    assert figures["in_process_fetch_warnings"] == 0, "the fetch child was not used"
    assert figures["log_errors"] == []
    assert sum(row["sends_acknowledged"] for row in kinds.values()) > 0
    assert sum(row["contacts_acknowledged"] for row in kinds.values()) > 0
