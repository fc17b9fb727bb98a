"""Smoke of benchmarks/run.py: every benchmark at tiny sizes, figures sane and complete.

Never asserts timings (they vary with the machine); only counts that must hold anywhere:
one token, connections within the pool, one request per part, nothing lost or repeated,
the ledger's seen ids bounded.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUN_PY = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("att_sms_bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = _load()
SIZES = bench.QUICK


@pytest.fixture(scope="module")
def report() -> Any:
    return bench.run_all(SIZES)


def test_every_benchmark_reported(report: Any) -> None:
    assert set(report.results) >= {
        "client_vs_raw",
        "concurrent",
        "fanout_client",
        "fanout_plugin",
        "latency",
        "flood",
        "flood_bounded",
    }
    for figure in report.figures:
        assert figure.name and figure.value
        assert figure.met in (True, False, None)


def test_client_against_raw(report: Any) -> None:
    r = report.results["client_vs_raw"]
    assert r["sends_each"] == r["raw_sends"] == SIZES.sends
    assert r["client_median_us"] > 0 and r["raw_median_us"] > 0
    assert math.isfinite(r["ratio_median"]) and r["ratio_median"] > 0
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


def test_fan_out_is_one_request_per_part(report: Any) -> None:
    client = report.results["fanout_client"]
    assert client["recipients"] == SIZES.recipients == client["addresses_at_carrier"]
    assert client["outbox_requests"] == 1
    plugin = report.results["fanout_plugin"]
    assert [r["parts"] for r in plugin["rounds"]] == [1, 2]
    for r in plugin["rounds"]:
        assert r["answered_sent"], r["answer_head"]
        assert r["outbox_requests"] == r["parts"] == r["sends_with_all_recipients"]
        assert r["token_requests"] == 0


def test_send_latency_figures(report: Any) -> None:
    r = report.results["latency"]
    assert r["commands"] == SIZES.commands and r["failed"] == 0, r["first_failure"]
    assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"]
    assert 0 < r["raw_p50_ms"] <= r["raw_p95_ms"]
    assert r["outbox_requests"] == 2 * SIZES.commands
    assert r["token_requests"] == 0
    full = report.results.get("latency_full_audit")
    if full is not None:
        assert full["failed"] == 0, full["first_failure"]
        assert full["p50_ms"] > 0


@pytest.mark.parametrize(
    ("key", "size"), [("flood", SIZES.flood), ("flood_bounded", SIZES.seen_flood)]
)
def test_flood_nothing_lost_or_repeated(report: Any, key: str, size: int) -> None:
    r = report.results[key]
    assert r["messages"] == size
    assert r["answered_inbox"], r["answer_head"]
    assert (r["lost"], r["repeated"], r["unexpected"]) == (0, 0, 0)
    assert r["ledger_pending"] == 0 and r["carrier_pending"] == 0
    assert 0 < r["posts"] < size  # above COMBINE_ABOVE they are combined
    assert r["seconds"] > 0 and r["messages_per_s"] > 0
    assert r["ledger_seen"] <= r["seen_limit"]


def test_seen_ids_stay_bounded(report: Any) -> None:
    r = report.results["flood_bounded"]
    assert SIZES.seen_flood > SIZES.seen_limit == r["seen_limit"]
    assert r["ledger_seen"] == SIZES.seen_limit
    assert r["tracemalloc_peak_bytes"] and r["tracemalloc_peak_bytes"] > 0


def test_correctness_targets_met(report: Any) -> None:
    """Every target that is a count, not a time, is met even at smoke sizes."""
    timing = ("median", "latency", "gap", "audit log full")
    counted = [
        f for f in report.figures if f.met is not None and not any(t in f.name for t in timing)
    ]
    assert counted
    assert [f.name for f in counted if not f.met] == []


def test_table_json_and_cli(report: Any, tmp_path: Path, monkeypatch, capsys) -> None:
    text = bench.render(report)
    for figure in report.figures:
        assert figure.name in text
    assert "machine:" in text and report.machine["python"] in text
    assert report.machine["cpu"] and report.machine["cores"] >= 1

    monkeypatch.setattr(bench, "run_all", lambda sizes, progress=None: report)
    out = tmp_path / "bench.json"
    code = bench.main(["--quick", "--json", str(out)])
    assert code == 0
    assert "figure" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["sizes"] == bench.asdict(SIZES)
    assert {f["name"] for f in data["figures"]} == {f.name for f in report.figures}
    assert data["results"]["flood"]["lost"] == 0
