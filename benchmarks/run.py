#!/usr/bin/env python
"""Benchmarks of errbot-att-sms against the carrier sandbox on loopback.

``python benchmarks/run.py`` (``make bench``) runs every benchmark once, at full size, in
one process: the carrier sandbox (``carrier_sandbox.Sandbox``, real HTTP on 127.0.0.1),
the client, and the AttSms plugin inside errbot's test backend (``tests/botkit.Bot``) on
the storage ``config_template.py`` sets. It prints one table (name, value, target, met)
and the machine. ``--quick`` runs the smoke sizes; ``--json FILE`` also writes every
figure to FILE.

``run_all`` is importable: ``tests/test_bench_smoke.py`` runs it at tiny sizes and checks
that the figures are sane and complete (never timings). Method: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO / "plugins", REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchmarks.botrun import (  # noqa: E402
    bot_environment,
    default_storage,
    errbot_logs_to,
    running_bot,
    storage_in_use,
)
from benchmarks.client_bench import (  # noqa: E402
    bench_client_vs_raw,
    bench_concurrent,
    bench_fanout_client,
    client_figures,
)
from benchmarks.cost_bench import (  # noqa: E402
    BUSY_LIMITS,
    bench_cost,
    bench_cost_history,
    cost_figures,
)
from benchmarks.flood_bench import flood, flood_figures  # noqa: E402
from benchmarks.harness import FULL, QUICK, Figure, Report, Sizes, machine_info, start_sandbox  # noqa: E402
from benchmarks.history_bench import bench_history, history_figures  # noqa: E402
from benchmarks.send_bench import bench_fanout_plugin, bench_own_cost, send_figures  # noqa: E402
from carrier_sandbox import Sandbox  # noqa: E402

__all__ = ["FULL", "QUICK", "Report", "Sizes", "asdict", "figures", "main", "render", "run_all"]


def run_all(sizes: Sizes, progress: Callable[[str], None] | None = None) -> Report:
    """Every benchmark, in one process, with one sandbox."""
    say = progress or (lambda _text: None)
    started = time.perf_counter()
    report = Report(machine=machine_info(), sizes=asdict(sizes))
    results = report.results
    with tempfile.TemporaryDirectory(prefix="att-sms-bench-") as tmp:
        workdir = Path(tmp)
        template = default_storage(workdir / "template")
        report.machine["storage_config"] = {k: str(v) for k, v in template.items()}
        sandbox = start_sandbox()
        try:
            say(f"client vs raw: {sizes.sends} sends each")
            results["client_vs_raw"] = bench_client_vs_raw(sandbox, sizes)
            say(f"concurrent: {sizes.threads} threads")
            results["concurrent"] = bench_concurrent(sandbox, sizes)
            say("fan-out (client)")
            results["fanout_client"] = bench_fanout_client(sandbox)
            with bot_environment(), errbot_logs_to(workdir / "errbot.log"):
                say("starting errbot's test backend")
                with running_bot(sandbox, workdir / "main", FOLLOW_UP=True) as bot:
                    report.machine["errbot_storage"] = storage_in_use(bot)
                    say(f"fan-out (!sms send): {sizes.recipients} recipients")
                    results["fanout_plugin"] = bench_fanout_plugin(sandbox, bot, sizes)
                    say(f"!sms send against !echo and raw HTTP: {sizes.commands} rounds")
                    results["own_cost"] = bench_own_cost(sandbox, bot, sizes)
                    say(f"inbound flood: {sizes.flood} messages")
                    results["flood"] = flood(sandbox, bot, sizes.flood, "a", quiet=sizes.quiet)
                    say(f"second flood: {sizes.seen_flood} messages, seen_limit {sizes.seen_limit}")
                    results["flood_bounded"] = flood(
                        sandbox, bot, sizes.seen_flood, "b", quiet=sizes.quiet,
                        seen_limit=sizes.seen_limit, trace_memory=True,
                    )  # fmt: skip
                say(f"history: {sizes.history} recorded sends, fresh and used bot side by side")
                results["history"] = bench_history(sandbox, workdir / "history", sizes)
                run_cost(sandbox, workdir / "cost", sizes, results, say)
        finally:
            sandbox.stop()
    report.seconds = time.perf_counter() - started
    report.figures = figures(results)
    return report


def run_cost(
    sandbox: Sandbox, workdir: Path, sizes: Sizes, results: dict, say: Callable[[str], None]
) -> None:
    """The cost of a send (issue 19): own cost in runs, and fresh vs used on two storages."""
    limits = ", ".join(f"{k} {v}" for k, v in BUSY_LIMITS.items())
    say(f"cost: {sizes.cost_runs} runs of {sizes.cost_commands} rounds, fresh bots ({limits})")
    results["cost"] = bench_cost(sandbox, workdir, sizes)
    say(f"cost: fresh vs {sizes.history} sends, config_template's storage and Shelf")
    results["cost_history"] = bench_cost_history(sandbox, workdir, sizes)


def run_cost_only(sizes: Sizes, progress: Callable[[str], None] | None = None) -> Report:
    """Only the cost of a send (``--cost``): a few minutes instead of the whole run."""
    say = progress or (lambda _text: None)
    started = time.perf_counter()
    report = Report(machine=machine_info(), sizes=asdict(sizes))
    with tempfile.TemporaryDirectory(prefix="att-sms-bench-") as tmp:
        workdir = Path(tmp)
        report.machine["storage_config"] = {
            k: str(v) for k, v in default_storage(workdir / "template").items()
        }
        sandbox = start_sandbox()
        try:
            with bot_environment(), errbot_logs_to(workdir / "errbot.log"):
                run_cost(sandbox, workdir / "cost", sizes, report.results, say)
        finally:
            sandbox.stop()
    report.machine["errbot_storage"] = report.results["cost"]["storage"]
    report.seconds = time.perf_counter() - started
    report.figures = figures(report.results)
    return report


def figures(results: dict[str, dict]) -> list[Figure]:
    """The table's rows, each with its target and, when missed, why and what would help."""
    return [
        *client_figures(results),
        *send_figures(results),
        *history_figures(results),
        *flood_figures(results),
        *cost_figures(results),
    ]


def render(report: Report) -> str:
    """The table, the misses (why, and what would reach the target), and the machine."""
    header = ("figure", "value", "target", "met")
    rows = [
        (f.name, f.value, f.target or "-", "-" if f.met is None else ("yes" if f.met else "NO"))
        for f in report.figures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.append("")
    for note in report.notes:
        out += [f"note: {note}", ""]
    missed = [f for f in report.figures if f.met is False]
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
    storage = m.get("storage_config", {})
    out += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{m['implementation']} {m['python']}, {m['os']}",
        f"versions: errbot {m['errbot']}, requests {m['requests']}, urllib3 {m['urllib3']}, "
        f"SQLite {m['sqlite']}",
        f"errbot storage: {m.get('errbot_storage', 'n/a')} (config_template.py: STORAGE = "
        f"{storage.get('STORAGE', 'n/a')!r}); plugin store: SQLite in BOT_DATA_DIR",
        f"date: {m['date']}; run took {report.seconds:.1f} s",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (seconds, not minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--cost", action="store_true", help="only the cost of a send (issue 19)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    run = run_cost_only if args.cost else run_all
    report = run(sizes, progress=lambda text: print(f"... {text}", file=sys.stderr, flush=True))
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0  # a missed target is a finding, printed with its cause, not a failed command


if __name__ == "__main__":
    raise SystemExit(main())
