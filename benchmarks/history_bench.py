"""Does a send cost more once the bot has a history? A fresh bot against one with 10,000
recorded sends, side by side in the same process, on the default storage.

The history is recorded through the store's API with exactly the writes a send makes
(quota reservation and settlement, audit entry with its dedup key, a delivery follow-up
that is then finished), at the store's clock and by the same user who then sends: like
running the sends, minus 10,000 HTTP round trips and follow-up polls.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

from att_sms.sending.pipeline import FOLLOW_UP_FIRST, dedup_key
from att_sms.store import FollowUp

from benchmarks.botrun import ask, running_bot, settle, storage_in_use, store_of
from benchmarks.harness import ONE_NUMBER, Figure, Sizes, numbers, percentile
from carrier_sandbox import Sandbox

#: A send after 10,000 recorded sends is at most this much slower at p50 (issue 11).
TARGET_HISTORY_RATIO = 1.10
#: Colleagues who share the recorded sends the sending user has no room for under RATE_LIMIT.
TEAM = 24


def record_sends(store: Any, who: str, count: int) -> float:
    """Record ``count`` sends by ``who`` as ``!sms send`` would; returns the seconds taken."""
    tels = ["tel:" + n for n in numbers(1000, exchange="556")]
    started = time.perf_counter()
    for i in range(count):
        tel, text, message_id = tels[i % len(tels)], f"recorded page {i}", f"SMSbench{i:020d}"
        reservation = store.reserve_quota(who, 1, 0, 0)
        with store.transaction() as tx:
            now = store.now()
            store.settle_quota(reservation, 1, tx)
            store.record_audit(
                who=who, recipients=[tel], parts=1, message_ids=[message_id], outcome="sent",
                dedup_key=dedup_key([tel], text), tx=tx,
            )  # fmt: skip
            store.add_follow_ups([FollowUp(message_id, who, [tel], now, now + FOLLOW_UP_FIRST)], tx)
        store.finish_follow_up(message_id)
    return time.perf_counter() - started


def record_team_sends(store: Any, who: str, count: int, room: int) -> tuple[float, int]:
    """Record ``count`` sends: ``room`` of them by ``who`` (the most ``who`` may have in the
    hour and still send every probe under ``RATE_LIMIT``), the rest by ``TEAM`` colleagues.
    Returns the seconds taken and how many were by ``who``."""
    own = max(0, min(count, room))
    seconds = record_sends(store, who, own)
    others = count - own
    for i in range(TEAM):
        share = others // TEAM + (1 if i < others % TEAM else 0)
        seconds += record_sends(store, f"{who}-colleague-{i:02d}", share)
    return seconds, own


def bench_history(
    sandbox: Sandbox,
    workdir: Path,
    sizes: Sizes,
    *,
    storage: dict[str, Any] | None = None,
    limits: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Two bots at once: ``fresh`` and ``used`` (``sizes.history`` sends recorded first);
    then ``sizes.history_commands`` ``!sms send`` each, in blocks of ``sizes.history_block``
    alternating in ABBA order, timed from the command to its answer.

    ``storage``: errbot's storage settings (default: config_template.py's). ``limits``:
    plugin settings such as RATE_LIMIT and DAILY_LIMIT; with a RATE_LIMIT the user who
    sends keeps just enough room for the probes and the rest is the team's (above).
    """
    limits = limits or {}
    warmups = max(2, sizes.warmup)
    with contextlib.ExitStack() as stack:
        bots = {
            name: stack.enter_context(
                running_bot(sandbox, workdir / name, storage, FOLLOW_UP=True, **limits)
            )
            for name in ("fresh", "used")
        }
        for name, bot in bots.items():
            for i in range(warmups):
                ask(bot, f"!sms send {ONE_NUMBER} history warm-up {name} {i}")
        used = store_of(bots["used"])
        who = used.last_audit(1)[0]["who"]  # whoever the test backend's commands come from
        rate_limit = limits.get("RATE_LIMIT", 0)
        room = rate_limit - warmups - sizes.history_commands - 1 if rate_limit else sizes.history
        record_s, by_user = record_team_sends(used, who, sizes.history, room)
        audit_entries = len(used.last_audit(sizes.history * 2))
        for bot in bots.values():
            settle(bot, sizes.quiet)
        times: dict[str, list[float]] = {name: [] for name in bots}
        failed: list[str] = []
        order = ("fresh", "used", "used", "fresh")
        blocks = -(-sizes.history_commands // sizes.history_block)
        for index in range(blocks * 2):
            name = order[index % 4]
            for _ in range(min(sizes.history_block, sizes.history_commands - len(times[name]))):
                text = f"history probe {name} {len(times[name]):04d}"
                started = time.perf_counter()
                answer, _ = ask(bots[name], f"!sms send {ONE_NUMBER} {text}")
                times[name].append(time.perf_counter() - started)
                if not answer.startswith("Sent to"):
                    failed.append(f"{name}: {answer[:160]}")
        storage = storage_in_use(bots["used"])
        sizes_bytes = {name: store_of(bot).size_bytes() for name, bot in bots.items()}
    p50 = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    return {
        "recorded": sizes.history,
        "recorded_by_user": by_user,
        "limits": dict(limits),
        "record_s": record_s,
        "audit_entries": audit_entries,
        "commands": sizes.history_commands,
        "block": sizes.history_block,
        "failed": len(failed),
        "first_failure": failed[0] if failed else "",
        "fresh_p50_ms": p50["fresh"],
        "used_p50_ms": p50["used"],
        "fresh_p95_ms": percentile(times["fresh"], 95) * 1e3,
        "used_p95_ms": percentile(times["used"], 95) * 1e3,
        "ratio": p50["used"] / p50["fresh"],
        "storage": storage,
        "fresh_store_bytes": sizes_bytes["fresh"],
        "used_store_bytes": sizes_bytes["used"],
    }


def history_figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
    his = results.get("history")
    if not his:
        return []
    n = his["recorded"]
    return [
        Figure(
            f"history: {n} sends recorded in the store (audit entries kept)",
            f"{his['record_s']:.1f} s, {n / his['record_s']:.0f} sends/s"
            f" ({his['audit_entries']} entries)",
        ),
        Figure(
            f"!sms send p50 after {n} sends vs a fresh bot ({his['commands']} each, ABBA)",
            f"{his['used_p50_ms']:.2f} ms vs {his['fresh_p50_ms']:.2f} ms = {his['ratio']:.3f}x",
            f"<= {TARGET_HISTORY_RATIO:.2f}x",
            his["ratio"] <= TARGET_HISTORY_RATIO and his["failed"] == 0,
            f"({his['failed']} failed; {his['first_failure']!r}) a send reads more when the "
            "store holds more. Store.reserve_quota reads at most rate_limit rows and one day "
            "counter since 2026-11-30 (it read every send of the user that hour before: "
            "2.9x); time the store calls of a send on the used bot (wrap Store's methods) "
            "to find the read that grows with the history.",
            timing=True,
        ),
        Figure(
            "history: p95 used / fresh",
            f"{his['used_p95_ms']:.2f} ms / {his['fresh_p95_ms']:.2f} ms",
        ),
        Figure(
            "history: plugin store size used / fresh",
            f"{_kib(his['used_store_bytes'])} / {_kib(his['fresh_store_bytes'])}",
        ),
    ]


def _kib(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 1024:.0f} KiB"
