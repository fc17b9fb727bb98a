#!/usr/bin/env python
"""Pages from alerts, measured: notification -> first SMS, and duplicates under load.

Runs the AttSms plugin in errbot's test backend with errbot's own Webserver plugin on a
free loopback port, against the carrier sandbox (real HTTP on 127.0.0.1), and prints:

- notification -> first SMS: from sending a new group's first ``firing`` notification to
  ``POST /att_sms/alerts`` until the sandbox has taken the page's first SMS (p50, max);
  the SMS goes out from the escalation poller, which looks once a second;
- duplicates: ``--notifications`` notifications (default 1,000) for ``--groups`` groups
  (default 50), every group's notification repeated and sent by two concurrent senders
  (as two HA peers would), some repeats with a changed set of firing alerts. Duplicates =
  pages opened beyond one per group + first-step SMS beyond one per page. Must be 0.

``python benchmarks/alerts_bench.py [--quick]``. Method and last figures: docs/ALERTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO / "plugins", REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import requests  # noqa: E402

from benchmarks.botrun import bot_environment, errbot_logs_to, running_bot  # noqa: E402
from benchmarks.harness import CLIENT_ID, CLIENT_SECRET  # noqa: E402
from carrier_sandbox import Sandbox  # noqa: E402

TOKEN = "bench-alert-token-3f9a"
TARGETS = "+12125550101,+12125550102"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _payload(group: int, firing: int = 1, status: str = "firing") -> bytes:
    alerts = [
        {
            "status": status,
            "labels": {"alertname": f"Bench{group}", "instance": f"db{n}"},
            "annotations": {"summary": f"bench group {group}"},
            "startsAt": "2026-12-06T20:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"g{group}-a{n}",
        }
        for n in range(firing)
    ]
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{alertname="Bench{group}"}}', "truncatedAlerts": 0,
        "status": status, "receiver": "bench", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {"summary": f"bench group {group}"}, "externalURL": "",
        "alerts": alerts,
    }).encode()  # fmt: skip


def _post(session: requests.Session, url: str, data: bytes) -> str:
    answer = session.post(
        url, data=data, timeout=30,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    if answer.status_code != 200:
        raise RuntimeError(f"endpoint answered {answer.status_code}: {answer.text.strip()}")
    return answer.text


def _first_sms(sandbox: Sandbox) -> Counter[str]:
    """How many SMS each page id's first step sent (the text starts with ``P<n>:``)."""
    return Counter(s["message"].split(":", 1)[0] for s in sandbox.state()["sent"])


def _wait(predicate: Any, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the SMS")
        time.sleep(0.005)


def latency(sandbox: Sandbox, url: str, samples: int, first_group: int) -> list[float]:
    session = requests.Session()
    seconds: list[float] = []
    for n in range(samples):
        started = time.perf_counter()
        text = _post(session, url, _payload(first_group + n))
        page_id = text.split("page ", 1)[1].split()[0]
        _wait(lambda pid=page_id: _first_sms(sandbox)[pid] >= 1)
        seconds.append(time.perf_counter() - started)
    return seconds


def duplicates(
    sandbox: Sandbox, url: str, groups: int, notifications: int, first_group: int
) -> dict[str, int]:
    per_sender = notifications // 2
    opened: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(2)
    before = _first_sms(sandbox)

    def sender(seed: int) -> None:
        session = requests.Session()
        barrier.wait()
        for n in range(per_sender):
            group = first_group + (n + seed) % groups
            firing = 1 + (n // groups) % 2  # every other round the group has a second alert
            text = _post(session, url, _payload(group, firing))
            with lock:
                opened[text.split(":", 1)[0]] += 1

    threads = [threading.Thread(target=sender, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pages = opened["open"]
    _wait(lambda: len(_first_sms(sandbox) - before) >= pages)
    time.sleep(2.5)  # let any duplicate step show up
    sent = _first_sms(sandbox) - before
    return {
        "notifications": per_sender * 2,
        "groups": groups,
        "pages_opened": pages,
        "decisions_ignore": opened["ignore"],
        "decisions_changed": opened["changed"],
        "duplicate_pages": max(0, pages - groups),
        "duplicate_sms": sum(count - 1 for count in sent.values() if count > 1),
    }


def run(samples: int, groups: int, notifications: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="att-alerts-bench-") as tmp:
        sandbox = Sandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, delivery_delay=0.0)
        sandbox.start()
        try:
            with bot_environment(), errbot_logs_to(Path(tmp) / "errbot.log"):
                os.environ["ATT_WEBHOOK_TOKEN"] = TOKEN
                routes = {"bench": {"page": TARGETS, "room": "#bench"}}
                with running_bot(
                    sandbox, Path(tmp) / "data", ALERT_ROUTES=routes, ESCALATE_AFTER=3600,
                    FOLLOW_UP=False,
                ) as bot:  # fmt: skip
                    port = _free_port()
                    answer = bot.ask(
                        f"!plugin config Webserver {{'HOST': '127.0.0.1', 'PORT': {port}}}"
                    )
                    if answer != "Plugin configuration done.":
                        raise RuntimeError(f"Webserver refused its configuration: {answer}")
                    url = f"http://127.0.0.1:{port}/att_sms/alerts"
                    _wait(lambda: _reachable(url), limit=20)
                    seconds = latency(sandbox, url, samples, first_group=100_000)
                    dup = duplicates(sandbox, url, groups, notifications, first_group=0)
        finally:
            sandbox.stop()
    return {
        "first_sms_p50_s": statistics.median(seconds),
        "first_sms_max_s": max(seconds),
        "latency_samples": len(seconds),
        **dup,
    }


def _reachable(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--notifications", type=int, default=1000)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.groups, args.notifications = 5, 5, 40
    figures = run(args.samples, args.groups, args.notifications)
    print(f"notification -> first SMS: p50 {figures['first_sms_p50_s'] * 1000:.0f} ms,"
          f" max {figures['first_sms_max_s'] * 1000:.0f} ms ({figures['latency_samples']} groups)")  # fmt: skip
    print(
        f"{figures['notifications']} notifications, {figures['groups']} groups, 2 concurrent"
        f" senders: {figures['pages_opened']} pages opened, {figures['decisions_ignore']}"
        f" repeats ignored, {figures['decisions_changed']} changes posted;"
        f" duplicates paged: {figures['duplicate_pages'] + figures['duplicate_sms']}"
        f" ({figures['duplicate_pages']} pages, {figures['duplicate_sms']} SMS)"
    )
    return 0 if figures["duplicate_pages"] + figures["duplicate_sms"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
