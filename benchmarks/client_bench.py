"""The carrier client alone: against raw ``requests``, under concurrency, one request's fan-out."""

from __future__ import annotations

import gc
import statistics
import threading
import time
from typing import Any

from benchmarks.harness import (
    MAX_RECIPIENTS,
    ONE_NUMBER,
    POOL_SIZE,
    SEND_KEY,
    Figure,
    RawSender,
    Sizes,
    counters,
    delta,
    new_client,
    numbers,
    percentile,
)
from carrier_sandbox import Sandbox

TARGET_RATIO = 1.15


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
    calls = {
        "client": lambda: client.send([tel], message),
        "raw": lambda: raw.send([tel], message),
    }
    side_delta = {side: {"tokenRequests": 0, "connections": 0, "sends": 0} for side in calls}
    times: dict[str, list[float]] = {"client": [], "raw": []}

    def run(side: str, count: int, timed: bool) -> None:
        before = counters(sandbox)
        call, out = calls[side], times[side]
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
            count = min(sizes.block, sizes.sends - len(times[side]))
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


def bench_fanout_client(sandbox: Sandbox) -> dict[str, Any]:
    """One client send to as many addresses as the carrier takes at once: one request."""
    addresses = ["tel:" + n for n in numbers(MAX_RECIPIENTS)]
    with new_client(sandbox) as client:
        client.send(["tel:" + ONE_NUMBER], "token first")  # keep the token out of the count
        before = counters(sandbox)
        result = client.send(addresses, "fan-out: db-1 is down")
        change = delta(counters(sandbox), before)
    sent = next(s for s in sandbox.state()["sent"] if s["messageId"] == result.message_id)
    return {
        "recipients": len(addresses),
        "outbox_requests": change["requests"].get(SEND_KEY, 0),
        "addresses_at_carrier": len(sent["addresses"]),
    }


def client_figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
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
                "--quick) and look at AttSmsClient's per-call work beyond one session.request "
                "+ response.json() (token-cache lock, debug-log formatting, retry bookkeeping).",
                timing=True,
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
                "the token cache is not reused between sends: check the token cache and the "
                "lifetime it computes (expires_in minus margin must stay > 0).",
            )
        )
        add(
            Figure(
                "send: TCP connections opened (client, sequential)",
                str(cvr["client_connections"]),
                f"<= {cvr['pool_size']} (pool)",
                0 < cvr["client_connections"] <= cvr["pool_size"],
                "connections are not kept alive: a response body left unread or a Connection: "
                "close answer makes urllib3 open a new one; read every body and keep one Session.",
            )
        )
        add(
            Figure(
                "send: outbox requests client / raw",
                f"{cvr['client_outbox_requests']} / {cvr['raw_outbox_requests']}",
                "1 per send",
                cvr["client_outbox_requests"] == cvr["sends_each"] + cvr["warmup"]
                and cvr["raw_outbox_requests"] == cvr["raw_sends"] + cvr["warmup"],
                "a send was repeated or lost: AttSmsClient.send must POST exactly once "
                "(a send is retried only when the connection could not be opened).",
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
                f"fan-out: client.send to {fan['recipients']} addresses (carrier's max), "
                "outbox requests",
                f"{fan['outbox_requests']} (carrier got {fan['addresses_at_carrier']} addresses)",
                "1",
                fan["outbox_requests"] == 1 and fan["addresses_at_carrier"] == fan["recipients"],
                "the client must put every address in one outboundSMSRequest.",
            )
        )
    return rows
