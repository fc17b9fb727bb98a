"""The cost of a send (issue 19, item 6), with the limits a busy team sets.

* **Own cost**: ``sizes.cost_runs`` runs, each on a fresh bot on config_template.py's
  storage with ``FOLLOW_UP`` on, of ``sizes.cost_commands`` rounds of ``!echo``,
  ``!sms send`` and the raw ``requests.Session().post`` of the same text
  (``send_bench.bench_own_cost``); per run (send p50 - echo p50) / raw p50, and the
  median of the runs.
* **History**: ``!sms send`` p50 on a bot with ``sizes.history`` earlier sends against a
  fresh bot (``history_bench.bench_history``), on config_template.py's storage and on
  errbot's default Shelf storage.

Every bot runs with ``BUSY_LIMITS``: a rate limit high enough for the benchmark's own
traffic, so that a check that reads the user's sends of the hour would read hundreds.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

from benchmarks.botrun import ERRBOT_DEFAULT_STORAGE, running_bot, storage_in_use
from benchmarks.harness import Figure, Sizes
from benchmarks.history_bench import TARGET_HISTORY_RATIO, bench_history
from benchmarks.send_bench import bench_own_cost
from carrier_sandbox import Sandbox

#: The plugin's own cost of a send at most this many raw round trips (issue 19).
TARGET_COST = 1.3
#: A busy team's limits: 1,000 sends a user an hour (each own-cost run sends 600 + warm-up
#: from one user, the history's user holds all the rest of it), 50,000 parts a day.
BUSY_LIMITS = {"RATE_LIMIT": 1000, "DAILY_LIMIT": 50_000}
SHELF = {"STORAGE": ERRBOT_DEFAULT_STORAGE}


def bench_cost(sandbox: Sandbox, workdir: Path, sizes: Sizes) -> dict[str, Any]:
    """The own-cost runs, each on a fresh bot (its own data directory)."""
    runs: list[dict[str, Any]] = []
    storage = ""
    one_run = dataclasses.replace(sizes, commands=sizes.cost_commands)
    for index in range(sizes.cost_runs):
        with running_bot(sandbox, workdir / f"cost-{index}", FOLLOW_UP=True, **BUSY_LIMITS) as bot:
            storage = storage_in_use(bot)
            runs.append(bench_own_cost(sandbox, bot, one_run))
    ratios = [run["own_to_raw"] for run in runs]
    return {
        "runs": runs,
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
        "storage": storage,
        "limits": dict(BUSY_LIMITS),
    }


def bench_cost_history(sandbox: Sandbox, workdir: Path, sizes: Sizes) -> dict[str, Any]:
    """Fresh against used, on config_template.py's storage and on errbot's Shelf."""
    return {
        "template": bench_history(sandbox, workdir / "template", sizes, limits=BUSY_LIMITS),
        "shelf": bench_history(
            sandbox, workdir / "shelf", sizes, storage=SHELF, limits=BUSY_LIMITS
        ),
    }


def cost_figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
    rows: list[Figure] = []
    cost = results.get("cost")
    if cost:
        limits = ", ".join(f"{k} {v}" for k, v in cost["limits"].items())
        for number, run in enumerate(cost["runs"], 1):
            rows.append(
                Figure(
                    f"cost run {number}: (!sms send p50 - !echo p50) / raw p50"
                    f" ({run['commands']} each; {limits})",
                    f"({run['p50_ms']:.3f} - {run['echo_p50_ms']:.3f}) / {run['raw_p50_ms']:.3f}"
                    f" ms = {run['own_to_raw']:.2f}x ({run['failed']} failed)",
                )
            )
        failed = sum(run["failed"] for run in cost["runs"])
        rows.append(
            Figure(
                f"cost: plugin's own cost of !sms send / raw post, median of {len(cost['runs'])}"
                f" runs ({cost['storage']}, FOLLOW_UP on)",
                f"{cost['median_ratio']:.2f}x (runs: "
                + ", ".join(f"{r:.2f}x" for r in cost["ratios"])
                + ")",
                f"<= {TARGET_COST}x",
                cost["median_ratio"] <= TARGET_COST and failed == 0,
                f"({failed} failed) profile one send (docs/BENCHMARKS.md, 'The cost of a "
                "send'): the store's transactions and the record commit dominate.",
                timing=True,
            )
        )
    history = results.get("cost_history")
    if history:
        for his in history.values():
            rows.append(
                Figure(
                    f"cost: !sms send p50 after {his['recorded']} sends vs fresh "
                    f"({his['storage']}; {his['recorded_by_user']} by the sender this hour)",
                    f"{his['used_p50_ms']:.2f} ms vs {his['fresh_p50_ms']:.2f} ms ="
                    f" {his['ratio']:.3f}x",
                    f"<= {TARGET_HISTORY_RATIO:.2f}x",
                    his["ratio"] <= TARGET_HISTORY_RATIO and his["failed"] == 0,
                    f"({his['failed']} failed; {his['first_failure']!r}) a send reads more "
                    "when the store (or errbot's storage) holds more.",
                    timing=True,
                )
            )
    return rows
