"""Smoke of benchmarks/run.py: every benchmark at tiny sizes, figures sane and complete.

Never asserts timings (they vary with the machine); only what must hold anywhere: one
token, connections within the pool, requests of at most MAX_RECIPIENTS addresses,
nothing lost or repeated, the bots on the storage config_template.py sets.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench
from benchmarks.botrun import default_storage
from benchmarks.harness import MAX_RECIPIENTS, QUICK

SIZES = QUICK


@pytest.fixture(scope="module")
def report() -> Any:
    return bench.run_all(SIZES)


def test_every_benchmark_reported(report: Any) -> None:
    assert set(report.results) == {
        "client_vs_raw",
        "concurrent",
        "fanout_client",
        "fanout_plugin",
        "own_cost",
        "history",
        "flood",
        "flood_bounded",
        "cost",
        "cost_history",
    }
    for figure in report.figures:
        assert figure.name and figure.value
        assert figure.met in (True, False, None)
        assert figure.met is not False or figure.why, f"a miss must say why: {figure.name}"


def test_bots_run_on_the_storage_config_template_sets(report: Any, tmp_path: Path) -> None:
    storage = default_storage(tmp_path)["STORAGE"]
    used = report.machine["errbot_storage"]
    assert used.startswith(storage) and used.endswith("StoragePlugin")
    assert report.results["history"]["storage"] == used
    assert report.machine["storage_config"]["STORAGE"] == storage


def test_client_against_raw(report: Any) -> None:
    r = report.results["client_vs_raw"]
    assert r["sends_each"] == r["raw_sends"] == SIZES.sends
    assert r["client_median_us"] > 0 and r["raw_median_us"] > 0
    assert r["ratio_median"] > 0
    assert r["client_token_requests"] == 1 and r["client_token_requests_own_count"] == 1
    assert 1 <= r["client_connections"] <= r["pool_size"]
    assert r["raw_connections"] == 0  # the raw session's one connection predates the baseline
    assert r["client_outbox_requests"] == SIZES.sends + SIZES.warmup
    assert r["raw_outbox_requests"] == SIZES.sends + SIZES.warmup


def test_concurrent_sends_stay_within_the_pool(report: Any) -> None:
    r = report.results["concurrent"]
    assert r["threads"] > r["pool_size"]
    assert r["errors"] == 0, r["first_error"]
    assert r["outbox_requests"] == r["sends"]
    assert 1 <= r["connections"] <= r["pool_size"]
    assert r["token_requests"] == 1


def test_fan_out_in_requests_of_at_most_max_recipients(report: Any) -> None:
    client = report.results["fanout_client"]
    assert client["recipients"] == MAX_RECIPIENTS == client["addresses_at_carrier"]
    assert client["outbox_requests"] == 1
    plugin = report.results["fanout_plugin"]
    assert plugin["recipients"] == SIZES.recipients > MAX_RECIPIENTS
    per_part = -(-SIZES.recipients // MAX_RECIPIENTS)
    assert [r["parts"] for r in plugin["rounds"]] == [1, 2]
    for r in plugin["rounds"]:
        assert r["answered_sent"], r["answer_head"]
        assert r["outbox_requests"] == r["expected_requests"] == r["parts"] * per_part
        assert r["largest_request"] == MAX_RECIPIENTS
        assert r["parts_to_everyone"] == r["parts"]
        assert r["token_requests"] == 0


def test_own_cost_against_echo_and_raw(report: Any) -> None:
    r = report.results["own_cost"]
    assert r["commands"] == SIZES.commands and r["failed"] == 0, r["first_failure"]
    assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"]
    assert 0 < r["echo_p50_ms"] <= r["echo_p95_ms"]
    assert 0 < r["raw_p50_ms"] <= r["raw_p95_ms"]
    assert r["own_p50_ms"] == pytest.approx(r["p50_ms"] - r["echo_p50_ms"])
    assert r["outbox_requests"] == 2 * SIZES.commands  # each command's send and its raw twin
    assert r["token_requests"] == 0
    assert r["follow_up_posts"] == SIZES.commands  # FOLLOW_UP on: one delivery post a send


def test_history_compares_a_used_bot_with_a_fresh_one(report: Any) -> None:
    r = report.results["history"]
    assert r["recorded"] == SIZES.history
    assert r["failed"] == 0, r["first_failure"]
    assert r["audit_entries"] >= SIZES.history  # the recorded sends are in the used bot's log
    assert r["fresh_p50_ms"] > 0 and r["used_p50_ms"] > 0 and r["ratio"] > 0
    assert r["used_store_bytes"] > r["fresh_store_bytes"] > 0


def test_cost_of_a_send_runs_and_storages(report: Any) -> None:
    """Issue 19: the own cost in cost_runs runs (median printed), and fresh vs used bots on
    config_template.py's storage and on errbot's Shelf, all with the busy team's limits."""
    from benchmarks.cost_bench import BUSY_LIMITS

    cost = report.results["cost"]
    assert len(cost["runs"]) == SIZES.cost_runs == len(cost["ratios"])
    for run in cost["runs"]:
        assert run["commands"] == SIZES.cost_commands and run["failed"] == 0, run["first_failure"]
        assert run["outbox_requests"] == 2 * SIZES.cost_commands and run["token_requests"] == 0
        assert run["follow_up_posts"] == SIZES.cost_commands
    assert cost["median_ratio"] == sorted(cost["ratios"])[len(cost["ratios"]) // 2]
    assert cost["limits"] == BUSY_LIMITS and cost["storage"] == report.machine["errbot_storage"]
    history = report.results["cost_history"]
    assert history["template"]["storage"] == report.machine["errbot_storage"]
    assert history["shelf"]["storage"] == "ShelfStoragePlugin"
    for his in history.values():
        assert his["failed"] == 0, his["first_failure"]
        assert his["recorded"] == SIZES.history and his["limits"] == BUSY_LIMITS
        # The sender keeps room for its warm-up and probes under RATE_LIMIT; the rest is the team's.
        room = BUSY_LIMITS["RATE_LIMIT"] - max(2, SIZES.warmup) - SIZES.history_commands - 1
        assert his["recorded_by_user"] == min(SIZES.history, room)
        assert his["ratio"] > 0
    names = [f.name for f in report.figures]
    assert any(n.startswith("cost: plugin's own cost") for n in names)
    assert sum(n.startswith("cost: !sms send p50 after") for n in names) == 2


@pytest.mark.parametrize(
    ("key", "size"), [("flood", SIZES.flood), ("flood_bounded", SIZES.seen_flood)]
)
def test_flood_nothing_lost_or_repeated(report: Any, key: str, size: int) -> None:
    r = report.results[key]
    assert r["messages"] == size
    assert r["answered_inbox"], r["answer_head"]
    assert (r["lost"], r["repeated"], r["unexpected"]) == (0, 0, 0)
    assert r["store_pending"] == 0 and r["carrier_pending"] == 0
    assert 0 < r["posts"] < size  # above COMBINE_ABOVE they are combined
    assert r["seconds"] > 0 and r["messages_per_s"] > 0
    assert 0 < r["store_seen"] <= SIZES.flood + SIZES.seen_flood


def test_seen_limit_is_set_and_reported(report: Any) -> None:
    r = report.results["flood_bounded"]
    assert SIZES.seen_flood > SIZES.seen_limit == r["seen_limit"]
    assert r["tracemalloc_peak_bytes"] and r["tracemalloc_peak_bytes"] > 0


def test_seen_ids_stay_within_seen_limit(report: Any) -> None:
    r = report.results["flood_bounded"]
    assert r["store_seen"] <= r["seen_limit"]


def test_count_targets_met(report: Any) -> None:
    """Every target on a count, not a time, is met even at smoke sizes (the seen bound
    has its own test above)."""
    counted = [
        f
        for f in report.figures
        if f.met is not None and not f.timing and "seen ids / seen_limit" not in f.name
    ]
    assert len(counted) >= 10
    assert [f.name for f in counted if not f.met] == []


def test_table_json_and_cli(report: Any, tmp_path: Path, monkeypatch, capsys) -> None:
    text = bench.render(report)
    for figure in report.figures:
        assert figure.name in text
    assert "machine:" in text and report.machine["python"] in text
    assert "errbot storage: " + report.machine["errbot_storage"] in text
    assert report.machine["cpu"] and report.machine["cores"] >= 1

    monkeypatch.setattr(bench, "run_all", lambda sizes, progress=None: report)
    out = tmp_path / "bench.json"
    code = bench.main(["--quick", "--json", str(out)])
    assert code == 0
    assert "figure" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["sizes"] == asdict(SIZES)
    assert {f["name"] for f in data["figures"]} == {f.name for f in report.figures}
    assert data["results"]["flood"]["lost"] == 0
