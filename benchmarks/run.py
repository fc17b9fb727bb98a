#!/usr/bin/env python
"""Benchmarks of errbot-att-sms against the carrier sandbox on loopback.

``python benchmarks/run.py`` (``make bench``) runs every benchmark once, at full size, in
one process: the carrier sandbox (``carrier_sandbox.Sandbox``, real HTTP on 127.0.0.1),
the client, and the AttSms plugin inside errbot's test backend (``tests/botkit.Bot``).
It prints one table (name, value, target, met) and the machine. ``--quick`` runs the
smoke sizes; ``--json FILE`` also writes every figure to FILE.

The functions are importable: ``tests/test_bench_smoke.py`` runs them at tiny sizes and
checks that the figures are sane and complete (never timings). Method: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import logging
import os
import platform
import queue
import re
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO / "plugins", REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import requests  # noqa: E402
from att_sms.client import OUTBOX_PATH, TOKEN_PATH, AttSmsClient  # noqa: E402
from att_sms.splitting import split_message  # noqa: E402

from carrier_sandbox import Sandbox  # noqa: E402

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-7d2e91"
REGISTRATION = "reg-bench"
ROOM = "#bench"
POOL_SIZE = 10  # AttSmsClient's default, which the plugin uses
COMBINE_ABOVE = 10  # the plugin's default, set explicitly so the flood can report it
SEND_KEY = f"POST {OUTBOX_PATH}"
TOKEN_KEY = f"POST {TOKEN_PATH}"
ONE_NUMBER = "+12125551234"
TIMEOUT = (3.05, 10.0)

# Targets (see docs/BENCHMARKS.md).
TARGET_RATIO = 1.15
TARGET_LATENCY_GAP_MS = 20.0


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does."""

    sends: int  # client sends, and as many raw sends
    block: int  # sends per alternating block
    warmup: int  # untimed sends of each kind first
    threads: int  # concurrent senders (more than POOL_SIZE on purpose)
    concurrent_sends: int  # total sends across those threads
    recipients: int  # addresses in the fan-out send
    flood: int  # inbound messages in the main flood
    seen_limit: int  # small seen_limit set for the second flood
    seen_flood: int  # inbound messages in the second flood (> seen_limit)
    commands: int  # `!sms send` commands timed, one at a time


FULL = Sizes(
    sends=1000,
    block=50,
    warmup=30,
    threads=16,
    concurrent_sends=480,
    recipients=100,
    flood=10_000,
    seen_limit=2_000,
    seen_flood=10_000,
    commands=200,
)
QUICK = Sizes(
    sends=40,
    block=10,
    warmup=3,
    threads=12,
    concurrent_sends=48,
    recipients=100,
    flood=300,
    seen_limit=50,
    seen_flood=200,
    commands=8,
)


@dataclass
class Figure:
    """One row of the table."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None  # None: informational, no target
    why: str = ""  # printed when the target is missed: cause and what would reach it


@dataclass
class Report:
    """Everything one run measured."""

    machine: dict[str, Any]
    sizes: dict[str, int]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # context printed under the table
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "sizes": self.sizes,
            "results": self.results,
            "figures": [asdict(f) for f in self.figures],
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }


# --------------------------------------------------------------------------- helpers


def machine_info() -> dict[str, Any]:
    """CPU model, cores, Python and library versions, date (UTC)."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    import errbot.version
    import urllib3

    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "cores_usable": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "errbot": errbot.version.VERSION,
        "requests": requests.__version__,
        "urllib3": urllib3.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def proc_status_kib(field_name: str) -> int | None:
    """A ``kB`` line of /proc/self/status (VmRSS, VmHWM), in KiB; None elsewhere."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return None


def counters(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox's counters (its state without the list of sent messages)."""
    state = sandbox.state()
    return {
        "tokenRequests": state["tokenRequests"],
        "connections": state["connections"],
        "requests": dict(state["requests"]),
        "pendingInbound": dict(state["pendingInbound"]),
    }


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Counter differences: token requests, connections, requests per path."""
    keys = set(after["requests"]) | set(before["requests"])
    return {
        "tokenRequests": after["tokenRequests"] - before["tokenRequests"],
        "connections": after["connections"] - before["connections"],
        "requests": {
            k: after["requests"].get(k, 0) - before["requests"].get(k, 0)
            for k in sorted(keys)
            if after["requests"].get(k, 0) != before["requests"].get(k, 0)
        },
    }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil, at least 1
    return ordered[int(rank) - 1]


def numbers(count: int, exchange: str = "555", start: int = 1100) -> list[str]:
    """``count`` distinct valid US numbers, +1 212 <exchange> NNNN."""
    return [f"+1212{exchange}{start + i:04d}" for i in range(count)]


def start_sandbox(**overrides: Any) -> Sandbox:
    """A sandbox on a free loopback port; spec validation off (it would dominate timings)."""
    options: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "registrations": (REGISTRATION,),
        "validate": False,
        "max_recipients": 0,  # the fan-out figures send 100 addresses in one request
    }
    options.update(overrides)
    return Sandbox(**options).start()


def new_client(sandbox: Sandbox) -> AttSmsClient:
    return AttSmsClient(sandbox.base_url, CLIENT_ID, CLIENT_SECRET, pool_size=POOL_SIZE)


class RawSender:
    """The baseline: one ``requests.Session`` and a bearer token fetched once."""

    def __init__(self, base_url: str) -> None:
        self.session = requests.Session()
        self.url = base_url + OUTBOX_PATH
        answer = self.session.post(
            base_url + TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": "SMS",
            },
            timeout=TIMEOUT,
        )
        answer.raise_for_status()
        token = answer.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def send(self, addresses: list[str], message: str) -> str:
        payload = {"outboundSMSRequest": {"address": addresses, "message": message}}
        answer = self.session.post(self.url, json=payload, headers=self.headers, timeout=TIMEOUT)
        if answer.status_code != 201:
            raise RuntimeError(f"raw send got HTTP {answer.status_code}")
        return answer.json()["outboundSMSResponse"]["messageId"]

    def close(self) -> None:
        self.session.close()


@contextlib.contextmanager
def bot_environment() -> Iterator[None]:
    """The plugin reads its secret (and optional config) from ATT_* variables."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ATT_")}
    for name in saved:
        del os.environ[name]
    os.environ["ATT_CLIENT_SECRET"] = CLIENT_SECRET
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("ATT_")]:
            del os.environ[name]
        os.environ.update(saved)


@contextlib.contextmanager
def running_bot(sandbox: Sandbox, workdir: Path, **plugin_config: Any) -> Iterator[Any]:
    """errbot's test backend with AttSms configured for ``sandbox`` (poller off).

    errbot's console logging (level unchanged) goes to ``workdir/errbot.log``, off the
    table on the terminal.
    """
    from botkit import Bot
    from errbot import logs as errbot_logs

    root = logging.getLogger()
    log_file = (workdir / "errbot.log").open("a", encoding="utf-8")
    handlers_before = list(root.handlers)
    level_before = root.level
    console = errbot_logs.console_hdlr  # errbot's console handler, made at its import
    console_stream = console.setStream(log_file)
    try:
        with bot_environment():
            with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
                bot = Bot(data_dir=workdir / "data")
            try:
                config = {
                    "API_BASE_URL": sandbox.base_url,
                    "CLIENT_ID": CLIENT_ID,
                    "INBOX_ROUTES": {REGISTRATION: ROOM},
                    "POLL_INTERVAL": 0,
                    "COMBINE_ABOVE": COMBINE_ABOVE,
                    **plugin_config,
                }
                answer = bot.configure(config)
                if answer != "Plugin configuration done.":
                    raise RuntimeError(f"the plugin refused the benchmark configuration: {answer}")
                yield bot
            finally:
                bot.stop()
    finally:
        for handler in list(root.handlers):
            if handler not in handlers_before:
                root.removeHandler(handler)
                if isinstance(handler, logging.FileHandler):
                    handler.close()
        console.setStream(console_stream)
        root.setLevel(level_before)
        log_file.close()


#: Messages the plugin posts on its own to the person who sent (delivery follow-ups);
#: skipped while waiting for a command's answer.
UNPROMPTED = re.compile(r"^(Delivery of SMS|Stopped following SMS) ")


def ask(bot: Any, text: str, timeout: float = 60) -> tuple[str, int]:
    """Send a command; return its answer and how many unprompted messages came first."""
    bot.push(text)
    skipped = 0
    deadline = time.monotonic() + timeout
    while True:
        answer = bot.pop(timeout=max(0.01, deadline - time.monotonic()))
        if not UNPROMPTED.match(answer):
            return answer, skipped
        skipped += 1


def settle(bot: Any, quiet: float = 2.5, limit: float = 60) -> int:
    """Let background work (follow-ups of earlier sends) finish: wait until the bot has
    said nothing for ``quiet`` seconds. Returns how many messages it said meanwhile."""
    said = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            bot.pop(timeout=quiet)
        except queue.Empty:
            break
        said += 1
    return said


# --------------------------------------------------------------------------- benchmarks


def bench_client_vs_raw(sandbox: Sandbox, sizes: Sizes) -> dict[str, Any]:
    """``sizes.sends`` client sends against as many raw ``Session.post`` sends.

    Blocks of ``sizes.block`` alternate in ABBA order (client, raw, raw, client, ...) so
    drift hits both sides alike. Counter deltas are attributed to the side that ran.
    """
    raw = RawSender(sandbox.base_url)  # its token and connection come before the baseline
    raw.send(["tel:" + ONE_NUMBER], "warm")
    client = new_client(sandbox)
    tel = "tel:" + ONE_NUMBER
    message = "bench: db-1 is down, please look"
    side_delta = {
        "client": {"tokenRequests": 0, "connections": 0, "sends": 0},
        "raw": {"tokenRequests": 0, "connections": 0, "sends": 0},
    }
    times: dict[str, list[float]] = {"client": [], "raw": []}

    def run(side: str, count: int, timed: bool) -> None:
        before = counters(sandbox)
        call = (
            (lambda: client.send([tel], message))
            if side == "client"
            else (lambda: raw.send([tel], message))
        )
        out = times[side]
        for _ in range(count):
            started = time.perf_counter()
            call()
            if timed:
                out.append(time.perf_counter() - started)
        change = delta(counters(sandbox), before)
        side_delta[side]["tokenRequests"] += change["tokenRequests"]
        side_delta[side]["connections"] += change["connections"]
        side_delta[side]["sends"] += change["requests"].get(SEND_KEY, 0)

    try:
        run("client", sizes.warmup, timed=False)  # the client's one token request is here
        run("raw", sizes.warmup, timed=False)
        gc.collect()
        blocks = max(1, sizes.sends // sizes.block)
        order = ("client", "raw", "raw", "client")
        for index in range(blocks * 2):
            side = order[index % 4]
            done = len(times[side])
            count = min(sizes.block, sizes.sends - done)
            if count > 0:
                run(side, count, timed=True)
        client_median = statistics.median(times["client"])
        raw_median = statistics.median(times["raw"])
        return {
            "sends_each": len(times["client"]),
            "raw_sends": len(times["raw"]),
            "block": sizes.block,
            "warmup": sizes.warmup,
            "client_median_us": client_median * 1e6,
            "raw_median_us": raw_median * 1e6,
            "client_p95_us": percentile(times["client"], 95) * 1e6,
            "raw_p95_us": percentile(times["raw"], 95) * 1e6,
            "client_total_s": sum(times["client"]),
            "raw_total_s": sum(times["raw"]),
            "ratio_median": client_median / raw_median,
            "ratio_total": sum(times["client"]) / sum(times["raw"]),
            "client_token_requests": side_delta["client"]["tokenRequests"],
            "client_token_requests_own_count": client.token_requests,
            "client_connections": side_delta["client"]["connections"],
            "raw_connections": side_delta["raw"]["connections"],
            "client_outbox_requests": side_delta["client"]["sends"],
            "raw_outbox_requests": side_delta["raw"]["sends"],
            "pool_size": POOL_SIZE,
        }
    finally:
        client.close()
        raw.close()


def bench_concurrent(sandbox: Sandbox, sizes: Sizes) -> dict[str, Any]:
    """``sizes.threads`` threads (more than the pool) share one client: connections stay
    within the pool and one token serves them all."""
    client = new_client(sandbox)
    per_thread = max(1, sizes.concurrent_sends // sizes.threads)
    errors: list[str] = []
    barrier = threading.Barrier(sizes.threads + 1)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            try:
                client.send(["tel:" + ONE_NUMBER], f"concurrent {n}/{i}")
            except Exception as exc:  # reported, not raised: the figure says what failed
                errors.append(f"{type(exc).__name__}: {exc}")

    before = counters(sandbox)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(sizes.threads)]
    try:
        for t in threads:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    change = delta(counters(sandbox), before)
    return {
        "threads": sizes.threads,
        "sends": per_thread * sizes.threads,
        "outbox_requests": change["requests"].get(SEND_KEY, 0),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": elapsed,
        "sends_per_s": per_thread * sizes.threads / elapsed if elapsed else 0.0,
        "token_requests": change["tokenRequests"],
        "connections": change["connections"],
        "pool_size": POOL_SIZE,
    }


def bench_fanout_client(sandbox: Sandbox, sizes: Sizes) -> dict[str, Any]:
    """One client send to ``sizes.recipients`` addresses: one outbox request."""
    addresses = ["tel:" + n for n in numbers(sizes.recipients)]
    with new_client(sandbox) as client:
        client.send(["tel:" + ONE_NUMBER], "token first")  # keep the token out of the count
        before = counters(sandbox)
        result = client.send(addresses, "fan-out: db-1 is down")
        change = delta(counters(sandbox), before)
    sent = next(s for s in sandbox.state()["sent"] if s["messageId"] == result.message_id)
    return {
        "recipients": len(addresses),
        "parts": 1,
        "outbox_requests": change["requests"].get(SEND_KEY, 0),
        "addresses_at_carrier": len(sent["addresses"]),
    }


def bench_fanout_plugin(sandbox: Sandbox, bot: Any, sizes: Sizes) -> dict[str, Any]:
    """``!sms send`` with ``sizes.recipients`` comma-separated numbers, a 1-part and a
    multi-part text: one outbox request per part, each to every recipient."""
    listed = numbers(sizes.recipients, start=2100)
    short = "fan-out: db-1 is down"
    long = (
        "fan-out: db-1 is down, failover to db-2 has started and writes are paused; "
        "the on-call DBA is paged. "
    ) * 3
    rounds = []
    ask(bot, f"!sms send {ONE_NUMBER} token first")
    for text in (short, long.strip()):
        parts = len(split_message(text))
        before = counters(sandbox)
        sent_before = len(sandbox.state()["sent"])
        answer, _ = ask(bot, f"!sms send {','.join(listed)} {text}")
        change = delta(counters(sandbox), before)
        new_sends = sandbox.state()["sent"][sent_before:]
        rounds.append(
            {
                "parts": parts,
                "outbox_requests": change["requests"].get(SEND_KEY, 0),
                "token_requests": change["tokenRequests"],
                "answered_sent": answer.startswith("Sent to"),
                "answer_head": answer[:120],
                "sends_with_all_recipients": sum(
                    1 for s in new_sends if len(s["addresses"]) == len(listed)
                ),
            }
        )
    return {"recipients": len(listed), "rounds": rounds}


_MARKER = re.compile(r"\bmk([a-z])(\d{6})\b")


def flood(
    sandbox: Sandbox,
    bot: Any,
    count: int,
    tag: str,
    *,
    seen_limit: int | None = None,
    trace_memory: bool = False,
) -> dict[str, Any]:
    """Inject ``count`` inbound messages, then ``!sms inbox``: fetched, stored, posted.

    Each message carries a marker ``mk<tag><6 digits>``; every marker must appear in
    exactly one post to the route's room. ``seen_limit`` (if given) is set on the
    plugin's ledger first, to show the seen-id set stays bounded.
    """
    settled = settle(bot)  # follow-ups of earlier sends must not run inside the timing
    plugin = bot.plugin
    # Private on purpose: the seen-id bound (ledger.seen_limit) can only be lowered on the
    # plugin's InboxLedger itself, and ledger.counts() is the only view of seen/pending ids;
    # the plugin exposes neither.
    ledger = plugin._ledger
    if seen_limit is not None:
        ledger.seen_limit = seen_limit
    started = time.perf_counter()
    for i in range(count):
        sandbox.inject_inbound(
            REGISTRATION, f"tel:+1646555{i % 10_000:04d}", f"ack mk{tag}{i:06d} on it"
        )
    inject_s = time.perf_counter() - started
    combine_above = plugin.config.get("COMBINE_ABOVE")
    posts_before = len(bot.posts)
    gc.collect()
    rss_before = proc_status_kib("VmRSS")
    hwm_before = proc_status_kib("VmHWM")
    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    answer, _ = ask(bot, "!sms inbox", timeout=600)
    elapsed = time.perf_counter() - started
    traced_peak = None
    if trace_memory:
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_after = proc_status_kib("VmRSS")
    hwm_after = proc_status_kib("VmHWM")
    every_post = bot.posts_containing("")  # a copy, taken under the bot's lock
    posts = [body for to, body in every_post[posts_before:] if to == ROOM]
    seen: Counter[int] = Counter()
    for body in posts:
        for found_tag, digits in _MARKER.findall(body):
            if found_tag == tag:
                seen[int(digits)] += 1
    lost = sum(1 for i in range(count) if seen[i] == 0)
    repeated = sum(n - 1 for n in seen.values() if n > 1)
    unexpected = sum(1 for i in seen if not 0 <= i < count)
    ledger_counts = ledger.counts()
    return {
        "messages": count,
        "inject_s": inject_s,
        "seconds": elapsed,
        "messages_per_s": count / elapsed if elapsed else 0.0,
        "posts": len(posts),
        "posts_per_s": len(posts) / elapsed if elapsed else 0.0,
        "combine_above": combine_above,
        "answer_head": answer[:120],
        "answered_inbox": answer.startswith(f"Inbox: {count} messages arrived"),
        "settled_messages": settled,
        "lost": lost,
        "repeated": repeated,
        "unexpected": unexpected,
        "ledger_pending": ledger_counts["pending"],
        "ledger_seen": ledger_counts["seen"],
        "seen_limit": ledger.seen_limit,
        "carrier_pending": counters(sandbox)["pendingInbound"].get(REGISTRATION, 0),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "hwm_before_kib": hwm_before,
        "hwm_after_kib": hwm_after,
        "tracemalloc_peak_bytes": traced_peak,
    }


def _latency_loop(bot: Any, raw: RawSender, count: int, label: str) -> dict[str, Any]:
    """``count`` x (one ``!sms send``, then the same send raw), one at a time."""
    tel = "tel:" + ONE_NUMBER
    command_s: list[float] = []
    raw_s: list[float] = []
    failed: list[str] = []
    unprompted = 0
    for i in range(count):
        text = f"{label} probe {i:04d}"
        started = time.perf_counter()
        answer, skipped = ask(bot, f"!sms send {ONE_NUMBER} {text}")
        command_s.append(time.perf_counter() - started)
        unprompted += skipped
        if not answer.startswith("Sent to"):
            failed.append(answer[:160])
        started = time.perf_counter()
        raw.send([tel], text)
        raw_s.append(time.perf_counter() - started)
    p50, raw_p50 = statistics.median(command_s), statistics.median(raw_s)
    quarter = max(1, len(command_s) // 4)
    return {
        "commands": len(command_s),
        "failed": len(failed),
        "first_failure": failed[0] if failed else "",
        "p50_ms": p50 * 1e3,
        "p95_ms": percentile(command_s, 95) * 1e3,
        "max_ms": max(command_s) * 1e3,
        "raw_p50_ms": raw_p50 * 1e3,
        "raw_p95_ms": percentile(raw_s, 95) * 1e3,
        "gap_p50_ms": (p50 - raw_p50) * 1e3,
        "first_quarter_p50_ms": statistics.median(command_s[:quarter]) * 1e3,
        "last_quarter_p50_ms": statistics.median(command_s[-quarter:]) * 1e3,
        "unprompted_during": unprompted,
    }


def bench_send_latency(sandbox: Sandbox, bot: Any, sizes: Sizes) -> dict[str, Any]:
    """``!sms send`` through errbot's test backend, one at a time, alternating with the
    raw HTTP round trip of the same send (same payload, raw session, token fetched once)."""
    raw = RawSender(sandbox.base_url)
    try:
        for i in range(max(2, sizes.warmup)):
            ask(bot, f"!sms send {ONE_NUMBER} latency warm-up {i}")
            raw.send(["tel:" + ONE_NUMBER], f"latency warm-up {i}")
        before = counters(sandbox)
        result = _latency_loop(bot, raw, sizes.commands, "latency")
    finally:
        raw.close()
    change = delta(counters(sandbox), before)
    result["outbox_requests"] = change["requests"].get(SEND_KEY, 0)
    result["token_requests"] = change["tokenRequests"]
    return result


def bench_send_latency_full_audit(
    sandbox: Sandbox, bot: Any, sizes: Sizes, entries: int = 1000, recipients: int = 5
) -> dict[str, Any] | None:
    """The same latency loop once the plugin's audit log is full (its default limit,
    ``entries`` pages to ``recipients`` numbers each): a bot that has run for a while.
    None if the plugin keeps no ``audit`` entry in its storage."""
    from att_sms import audit

    settle(bot)
    plugin = bot.plugin
    if "audit" not in plugin:
        return None
    log: list[dict[str, Any]] = []
    tels = ["tel:" + n for n in numbers(recipients, start=3100)]
    now = time.time()
    for i in range(entries):
        audit.record(
            log,
            who="gbin@localhost",
            when=now - entries + i,
            recipients=tels,
            parts=1,
            message_ids=[f"SMS{i:024d}"],
            outcome="sent",
            limit=entries,
        )
    plugin["audit"] = log
    count = max(4, sizes.commands // 4)
    raw = RawSender(sandbox.base_url)
    try:
        raw.send(["tel:" + ONE_NUMBER], "warm")
        result = _latency_loop(bot, raw, count, "full-audit")
    finally:
        raw.close()
    result["audit_entries"] = entries
    result["audit_recipients"] = recipients
    return result


# --------------------------------------------------------------------------- the run


def run_all(sizes: Sizes, progress: Callable[[str], None] | None = None) -> Report:
    """Every benchmark, in one process, with one sandbox and one bot."""
    say = progress or (lambda _text: None)
    started = time.perf_counter()
    report = Report(machine=machine_info(), sizes=asdict(sizes))
    results = report.results
    with tempfile.TemporaryDirectory(prefix="att-sms-bench-") as tmp:
        sandbox = start_sandbox()
        try:
            say(f"client vs raw: {sizes.sends} sends each")
            results["client_vs_raw"] = bench_client_vs_raw(sandbox, sizes)
            say(f"concurrent: {sizes.threads} threads")
            results["concurrent"] = bench_concurrent(sandbox, sizes)
            say(f"fan-out (client): {sizes.recipients} recipients")
            results["fanout_client"] = bench_fanout_client(sandbox, sizes)
            say("starting errbot's test backend")
            with running_bot(sandbox, Path(tmp)) as bot:
                say(f"fan-out (!sms send): {sizes.recipients} recipients")
                results["fanout_plugin"] = bench_fanout_plugin(sandbox, bot, sizes)
                say(f"!sms send latency: {sizes.commands} commands")
                results["latency"] = bench_send_latency(sandbox, bot, sizes)
                say("!sms send latency with a full audit log")
                full = bench_send_latency_full_audit(sandbox, bot, sizes)
                if full is not None:
                    results["latency_full_audit"] = full
                say(f"inbound flood: {sizes.flood} messages")
                results["flood"] = flood(sandbox, bot, sizes.flood, "a")
                say(
                    f"second flood: {sizes.seen_flood} messages, seen_limit {sizes.seen_limit},"
                    " tracemalloc on"
                )
                results["flood_bounded"] = flood(
                    sandbox,
                    bot,
                    sizes.seen_flood,
                    "b",
                    seen_limit=sizes.seen_limit,
                    trace_memory=True,
                )
        finally:
            sandbox.stop()
    report.seconds = time.perf_counter() - started
    report.figures = figures(results)
    return report


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
    """The table's rows, each with its target and, when missed, why and what would help."""
    rows: list[Figure] = []
    add = rows.append
    cvr = results.get("client_vs_raw")
    if cvr:
        ratio = cvr["ratio_median"]
        add(
            Figure(
                f"send: client vs raw Session.post, median ({cvr['sends_each']} each)",
                f"{cvr['client_median_us']:.0f} µs vs {cvr['raw_median_us']:.0f} µs = {ratio:.3f}x",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
                f"the client adds {cvr['client_median_us'] - cvr['raw_median_us']:.0f} µs a call "
                "over raw requests. Profile it (python -m cProfile -s cumtime benchmarks/run.py "
                "--quick) and look at AttSmsClient._request/_authorized/_json_body: per-call "
                "work beyond one session.request + response.json() (token-cache lock and TLRU "
                "lookup, debug-log formatting, retry bookkeeping) is what to cut.",
            )
        )
        add(
            Figure(
                "send: p95 client / raw",
                f"{cvr['client_p95_us']:.0f} µs / {cvr['raw_p95_us']:.0f} µs",
            )
        )
        add(
            Figure(
                "send: token requests (client, whole run)",
                str(cvr["client_token_requests"]),
                "1",
                cvr["client_token_requests"] == 1 and cvr["client_token_requests_own_count"] == 1,
                "the token cache is not reused between sends: check _TokenCache.get and the "
                "lifetime _read_token computes (expires_in minus margin must stay > 0).",
            )
        )
        add(
            Figure(
                "send: TCP connections opened (client, sequential)",
                str(cvr["client_connections"]),
                f"<= {cvr['pool_size']} (pool)",
                0 < cvr["client_connections"] <= cvr["pool_size"],
                "connections are not kept alive: a response body left unread or a Connection: "
                "close answer makes urllib3 open a new one; read every body (response.json()) "
                "and keep one Session.",
            )
        )
        add(
            Figure(
                "send: outbox requests client / raw",
                f"{cvr['client_outbox_requests']} / {cvr['raw_outbox_requests']}",
                "1 per send",
                cvr["client_outbox_requests"] == cvr["sends_each"] + cvr["warmup"]
                and cvr["raw_outbox_requests"] == cvr["raw_sends"] + cvr["warmup"],
            )
        )
    con = results.get("concurrent")
    if con:
        add(
            Figure(
                f"concurrent sends: {con['threads']} threads, {con['sends']} sends",
                f"{con['sends_per_s']:.0f} sends/s, {con['errors']} errors",
                "0 errors",
                con["errors"] == 0 and con["outbox_requests"] == con["sends"],
                f"first error: {con['first_error']}",
            )
        )
        add(
            Figure(
                "concurrent sends: TCP connections opened / token requests",
                f"{con['connections']} / {con['token_requests']}",
                f"<= {con['pool_size']} / 1",
                0 < con["connections"] <= con["pool_size"] and con["token_requests"] == 1,
                "more connections than the pool: the adapter must be mounted with "
                "pool_maxsize=pool_size and pool_block=True; more tokens: cold callers must "
                "share one fetch (the cache lock).",
            )
        )
    fan = results.get("fanout_client")
    if fan:
        add(
            Figure(
                f"fan-out: client.send to {fan['recipients']} addresses, outbox requests",
                f"{fan['outbox_requests']} (carrier got {fan['addresses_at_carrier']} addresses)",
                "1 (one per part)",
                fan["outbox_requests"] == 1 and fan["addresses_at_carrier"] == fan["recipients"],
                "the client must put every address in one outboundSMSRequest.",
            )
        )
    fanp = results.get("fanout_plugin")
    if fanp:
        for rnd in fanp["rounds"]:
            add(
                Figure(
                    f"fan-out: !sms send to {fanp['recipients']} numbers, {rnd['parts']}-part text,"
                    " outbox requests",
                    f"{rnd['outbox_requests']} ({rnd['sends_with_all_recipients']} with all"
                    " recipients)",
                    f"{rnd['parts']} (one per part)",
                    rnd["answered_sent"]
                    and rnd["outbox_requests"] == rnd["parts"]
                    and rnd["sends_with_all_recipients"] == rnd["parts"],
                    f"answer was: {rnd['answer_head']!r}; the plugin must send each part once "
                    "with every recipient in it (AttSms._send_parts).",
                )
            )
    lat = results.get("latency")
    if lat:
        gap = lat["gap_p50_ms"]
        add(
            Figure(
                f"!sms send latency ({lat['commands']} commands) p50 / p95",
                f"{lat['p50_ms']:.1f} ms / {lat['p95_ms']:.1f} ms",
                f"p50 <= raw p50 + {TARGET_LATENCY_GAP_MS:.0f} ms",
                gap <= TARGET_LATENCY_GAP_MS and lat["failed"] == 0,
                f"the command takes {gap:.1f} ms more than the bare HTTP send "
                f"({lat['failed']} failed; {lat['first_failure']!r}). Time the plugin's "
                "command path (parsing, number rules, storage writes for audit/quota, "
                "errbot's command dispatch) and move anything that is not the send itself "
                "off it.",
            )
        )
        add(
            Figure(
                "raw HTTP send round trip p50 / p95",
                f"{lat['raw_p50_ms']:.2f} ms / {lat['raw_p95_ms']:.2f} ms",
            )
        )
        add(
            Figure(
                "!sms send: gap to raw at p50",
                f"{gap:.1f} ms",
                f"<= {TARGET_LATENCY_GAP_MS:.0f} ms",
                gap <= TARGET_LATENCY_GAP_MS,
            )
        )
        add(
            Figure(
                "!sms send p50: first / last quarter of the run",
                f"{lat['first_quarter_p50_ms']:.1f} ms / {lat['last_quarter_p50_ms']:.1f} ms",
            )
        )
        add(
            Figure(
                "!sms send run: token requests / outbox requests",
                f"{lat['token_requests']} / {lat['outbox_requests']}",
                f"0 / {lat['commands'] * 2} (token already cached)",
                lat["token_requests"] == 0 and lat["outbox_requests"] == lat["commands"] * 2,
            )
        )
    lfa = results.get("latency_full_audit")
    if lfa:
        gap = lfa["gap_p50_ms"]
        add(
            Figure(
                f"!sms send, audit log full ({lfa['audit_entries']} x {lfa['audit_recipients']}"
                f" recipients): p50 / p95 / raw p50",
                f"{lfa['p50_ms']:.1f} / {lfa['p95_ms']:.1f} / {lfa['raw_p50_ms']:.2f} ms"
                f" (gap {gap:.1f} ms)",
                f"gap <= {TARGET_LATENCY_GAP_MS:.0f} ms",
                gap <= TARGET_LATENCY_GAP_MS and lfa["failed"] == 0,
                "every send still rewrites whole storage entries (AttSms._state on 'audit', "
                "a shallow copy, and 'quota', 'followups'), so its cost grows with the stored "
                "state; keep the audit log in SQLite like the inbox ledger and per-user send "
                "times only for the rate window.",
            )
        )
    for key, label in (("flood", "inbound flood"), ("flood_bounded", "second flood")):
        fl = results.get(key)
        if not fl:
            continue
        n = fl["messages"]
        traced = key == "flood_bounded"
        add(
            Figure(
                f"{label}: {n} messages fetched, stored, posted"
                + (" (tracemalloc on)" if traced else ""),
                f"{fl['seconds']:.2f} s, {fl['messages_per_s']:.0f} msg/s",
            )
        )
        add(
            Figure(
                f"{label}: chat posts (combined above {fl['combine_above']})",
                f"{fl['posts']} posts, {fl['posts_per_s']:.1f} posts/s",
            )
        )
        add(
            Figure(
                f"{label}: lost / repeated",
                f"{fl['lost']} / {fl['repeated']}",
                "0 / 0",
                fl["lost"] == 0
                and fl["repeated"] == 0
                and fl["unexpected"] == 0
                and fl["answered_inbox"],
                f"answer was {fl['answer_head']!r}; ledger pending {fl['ledger_pending']}, "
                f"carrier pending {fl['carrier_pending']}. Every fetched message must be "
                "stored before posting and marked posted once (AttSms._post_pending).",
            )
        )
        add(
            Figure(
                f"{label}: ledger seen ids / seen_limit",
                f"{fl['ledger_seen']} / {fl['seen_limit']}",
                "seen <= seen_limit",
                fl["ledger_seen"] <= fl["seen_limit"] and fl["ledger_pending"] == 0,
                "InboxLedger._prune_seen must run after each mark_posted.",
            )
        )
        if traced:
            peak = fl["tracemalloc_peak_bytes"]
            add(
                Figure(
                    f"{label}: tracemalloc peak (Python allocations)",
                    "n/a" if peak is None else f"{peak / 2**20:.1f} MiB",
                )
            )
        add(
            Figure(
                f"{label}: RSS after (growth), peak RSS growth",
                f"{_mib(fl['rss_after_kib'])} (+{_mib(_sub(fl['rss_after_kib'], fl['rss_before_kib']))})"
                f", +{_mib(_sub(fl['hwm_after_kib'], fl['hwm_before_kib']))}",
            )
        )
    return rows


def _sub(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def render(report: Report) -> str:
    """The table, the misses (why, and what would reach the target), and the machine."""
    header = ("figure", "value", "target", "met")
    rows = [
        (f.name, f.value, f.target or "-", "-" if f.met is None else ("yes" if f.met else "NO"))
        for f in report.figures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    missed = [f for f in report.figures if f.met is False]
    out.append("")
    for note in report.notes:
        out += [f"note: {note}", ""]
    if missed:
        out.append(f"{len(missed)} target(s) missed:")
        for f in missed:
            out.append(f"- {f.name}: {f.value} (target {f.target})")
            if f.why:
                out.append(f"    why / what would reach it: {f.why}")
    else:
        targets = sum(1 for f in report.figures if f.met is not None)
        out.append(f"all {targets} targets met")
    m = report.machine
    out += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{m['implementation']} {m['python']}, {m['os']}",
        f"versions: errbot {m['errbot']}, requests {m['requests']}, urllib3 {m['urllib3']}",
        f"date: {m['date']}; run took {report.seconds:.1f} s",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (seconds, not minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    report = run_all(sizes, progress=lambda text: print(f"... {text}", file=sys.stderr, flush=True))
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0  # a missed target is a finding, printed with its cause, not a failed command


if __name__ == "__main__":
    raise SystemExit(main())
