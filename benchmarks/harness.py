"""What every benchmark shares: sizes, table rows, the sandbox and its counters, raw HTTP.

The baseline of every latency figure is :class:`RawSender`: one ``requests.Session`` and a
bearer token fetched once, posting the same JSON the plugin sends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from att_sms.carrier.client import OUTBOX_PATH, TOKEN_PATH, AttSmsClient

from carrier_sandbox import Sandbox

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-7d2e91"
REGISTRATION = "reg-bench"
ROOM = "#bench"
POOL_SIZE = 10  # AttSmsClient's default, which the plugin uses
MAX_RECIPIENTS = 10  # the carrier's limit per request (sandbox default) and the plugin's
COMBINE_ABOVE = 10  # the plugin's default, set explicitly so the flood can report it
SEND_KEY = f"POST {OUTBOX_PATH}"
TOKEN_KEY = f"POST {TOKEN_PATH}"
ONE_NUMBER = "+12125551234"
TIMEOUT = (3.05, 10.0)


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does."""

    sends: int  # client sends, and as many raw sends
    block: int  # sends per alternating block
    warmup: int  # untimed sends of each kind first
    threads: int  # concurrent senders (more than POOL_SIZE on purpose)
    concurrent_sends: int  # total sends across those threads
    recipients: int  # numbers in the plugin's fan-out send
    flood: int  # inbound messages in the main flood
    seen_limit: int  # small seen_limit set for the second flood
    seen_flood: int  # inbound messages in the second flood (> seen_limit)
    commands: int  # iterations of (!echo, !sms send, raw send), one at a time
    history: int  # sends recorded in the store before the history comparison
    history_commands: int  # !sms send timed on each of the fresh and the used bot
    history_block: int  # commands per alternating block of that comparison
    quiet: float  # seconds without a bot message that count as "settled"
    cost_commands: int = 600  # rounds of (!echo, !sms send, raw send) in each cost run
    cost_runs: int = 3  # cost runs, each on a fresh bot (the median is the figure)


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
    history=10_000,
    history_commands=200,
    history_block=25,
    quiet=2.0,
)
QUICK = Sizes(
    sends=40,
    block=10,
    warmup=3,
    threads=12,
    concurrent_sends=48,
    recipients=25,
    flood=300,
    seen_limit=50,
    seen_flood=200,
    commands=8,
    history=200,
    history_commands=8,
    history_block=2,
    quiet=0.3,
    cost_commands=8,
    cost_runs=3,
)


@dataclass
class Figure:
    """One row of the table."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None  # None: informational, no target
    why: str = ""  # printed when the target is missed: cause and what would reach it
    timing: bool = False  # a target on a time (machine-dependent), not on a count


@dataclass
class Report:
    """Everything one run measured."""

    machine: dict[str, Any]
    sizes: dict[str, Any]
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
    import sqlite3

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
        "sqlite": sqlite3.sqlite_version,
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


def numbers(count: int, exchange: str = "555", start: int = 4100) -> list[str]:
    """``count`` distinct valid US numbers, +1 212 <exchange> NNNN (keep clear of the
    sandbox's reserved endings 0000, 1111, 8888, 9999: those are refused or never delivered)."""
    return [f"+1212{exchange}{start + i:04d}" for i in range(count)]


def start_sandbox(**overrides: Any) -> Sandbox:
    """A sandbox on a free loopback port, refusing more than MAX_RECIPIENTS addresses per
    send as real carriers do; spec validation off (it would dominate the timings)."""
    options: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "registrations": (REGISTRATION,),
        "validate": False,
        "max_recipients": MAX_RECIPIENTS,
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


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def sub(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b
