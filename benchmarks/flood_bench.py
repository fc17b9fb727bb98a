"""Inbound floods through the store: fetched (by the fetch child), stored, posted, marked.

Every injected message carries a marker ``mk<tag><6 digits>``; each must appear in exactly
one post to the route's room (nothing lost, nothing repeated).
"""

from __future__ import annotations

import gc
import re
import time
import tracemalloc
from collections import Counter
from typing import Any

from benchmarks.botrun import ask, settle, store_of
from benchmarks.harness import (
    REGISTRATION,
    ROOM,
    Figure,
    counters,
    mib,
    proc_status_kib,
    sub,
)
from carrier_sandbox import Sandbox

_MARKER = re.compile(r"\bmk([a-z])(\d{6})\b")


def flood(
    sandbox: Sandbox,
    bot: Any,
    count: int,
    tag: str,
    *,
    quiet: float,
    seen_limit: int | None = None,
    trace_memory: bool = False,
) -> dict[str, Any]:
    """Inject ``count`` inbound messages, then one ``!sms inbox`` (the sandbox's inbox
    batch is unlimited: one read returns them all), timed to its answer, which comes
    after every post. ``seen_limit`` (if given) is set on the plugin's store first."""
    settled = settle(bot, quiet)  # follow-ups of earlier sends must not run inside the timing
    store = store_of(bot)
    if seen_limit is not None:
        store.seen_limit = seen_limit
    started = time.perf_counter()
    for i in range(count):
        sandbox.inject_inbound(
            REGISTRATION, f"tel:+1646555{i % 10_000:04d}", f"ack mk{tag}{i:06d} on it"
        )
    inject_s = time.perf_counter() - started
    posts_before = len(bot.posts)
    gc.collect()
    rss_before, hwm_before = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    answer, _ = ask(bot, "!sms inbox", timeout=600)
    elapsed = time.perf_counter() - started
    traced_peak = None
    if trace_memory:
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_after, hwm_after = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    every_post = bot.posts_containing("")  # a copy, taken under the bot's lock
    posts = [body for to, body in every_post[posts_before:] if to == ROOM]
    seen: Counter[int] = Counter()
    for body in posts:
        for found_tag, digits in _MARKER.findall(body):
            if found_tag == tag:
                seen[int(digits)] += 1
    store_counts = store.counts()
    return {
        "messages": count,
        "inject_s": inject_s,
        "seconds": elapsed,
        "messages_per_s": count / elapsed if elapsed else 0.0,
        "posts": len(posts),
        "posts_per_s": len(posts) / elapsed if elapsed else 0.0,
        "combine_above": bot.plugin.config.get("COMBINE_ABOVE"),
        "answer_head": answer[:120],
        "answered_inbox": answer.startswith(f"Inbox: {count} messages arrived"),
        "settled_messages": settled,
        "lost": sum(1 for i in range(count) if seen[i] == 0),
        "repeated": sum(n - 1 for n in seen.values() if n > 1),
        "unexpected": sum(1 for i in seen if not 0 <= i < count),
        "store_pending": store_counts["pending"],
        "store_seen": store_counts["seen"],
        "seen_limit": store.seen_limit,
        "carrier_pending": counters(sandbox)["pendingInbound"].get(REGISTRATION, 0),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "hwm_before_kib": hwm_before,
        "hwm_after_kib": hwm_after,
        "tracemalloc_peak_bytes": traced_peak,
    }


def flood_figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
    rows: list[Figure] = []
    add = rows.append
    for key, label in (("flood", "inbound flood"), ("flood_bounded", "second flood")):
        fl = results.get(key)
        if not fl:
            continue
        traced = fl["tracemalloc_peak_bytes"] is not None
        add(
            Figure(
                f"{label}: {fl['messages']} messages fetched, stored, posted"
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
                f"answer was {fl['answer_head']!r}; store pending {fl['store_pending']}, "
                f"carrier pending {fl['carrier_pending']}. Every fetched message must be "
                "stored before posting and marked posted once (InboundPoller._post_pending).",
            )
        )
        add(
            Figure(
                f"{label}: store seen ids / seen_limit (pending)",
                f"{fl['store_seen']} / {fl['seen_limit']} ({fl['store_pending']})",
                "seen <= seen_limit, 0 pending",
                fl["store_seen"] <= fl["seen_limit"] and fl["store_pending"] == 0,
                "every mark_posted that moves a row prunes posted rows beyond the newest "
                "seen_limit (InboundTables._prune_posted, store/inbound.py); more seen rows "
                "means a path marks rows posted without that prune, or seen_limit is not the "
                "one the store prunes with. Pending rows: a post failed or was never marked.",
            )
        )
        if traced:
            add(
                Figure(
                    f"{label}: tracemalloc peak (Python allocations)",
                    f"{fl['tracemalloc_peak_bytes'] / 2**20:.1f} MiB",
                )
            )
        add(
            Figure(
                f"{label}: RSS after (growth), peak RSS growth",
                f"{mib(fl['rss_after_kib'])} (+{mib(sub(fl['rss_after_kib'], fl['rss_before_kib']))})"
                f", +{mib(sub(fl['hwm_after_kib'], fl['hwm_before_kib']))}",
            )
        )
    return rows
