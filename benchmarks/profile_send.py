#!/usr/bin/env python
"""Where the plugin's own time in ``!sms send`` goes: a developer's tool, not a benchmark.

``python benchmarks/profile_send.py [N]`` starts one bot as the cost benchmark does
(config_template.py's storage, ``FOLLOW_UP`` on, ``BUSY_LIMITS`` with a rate limit above
the 2N sends it makes), sends N commands and
prints the p50 of each stage of the send pipeline (the store's calls, planning, resolving,
the carrier send, the record transaction), then cProfile's top functions of the plugin's
part (the command's worker thread only; cProfile slows Python code about twofold, so read
its shares, and the stage p50s for times).
"""

from __future__ import annotations

import cProfile
import functools
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO / "plugins", REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import att_sms.commands.sending as sending_module  # noqa: E402
import att_sms.sending.pipeline as pipeline_module  # noqa: E402
import att_sms.sending.recipients as recipients_module  # noqa: E402
from att_sms.store import Store  # noqa: E402

from benchmarks.botrun import ask, bot_environment, errbot_logs_to, running_bot, settle  # noqa: E402
from benchmarks.cost_bench import BUSY_LIMITS  # noqa: E402
from benchmarks.harness import ONE_NUMBER, start_sandbox  # noqa: E402

STAGES: list[tuple[Any, str]] = [
    (Store, "directory"),
    (Store, "opted_out"),
    (Store, "recent_send"),
    (Store, "reserve_quota"),
    (pipeline_module, "plan_message"),
    (recipients_module, "resolve"),
    (pipeline_module, "send_parts"),
    (pipeline_module.SendPipeline, "_record"),
    (sending_module.SendDesk, "deliver"),
]


def _timed(function: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    return timed


def _sent(answer: str) -> None:
    if not answer.startswith("Sent to"):
        raise RuntimeError(f"!sms send was not sent: {answer[:200]}")


def main(count: int = 600) -> str:
    times: dict[str, list[float]] = defaultdict(list)
    originals = [(owner, name, getattr(owner, name)) for owner, name in STAGES]
    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="att-sms-profile-") as tmp:
        sandbox = start_sandbox()
        try:
            with bot_environment(), errbot_logs_to(Path(tmp) / "errbot.log"):
                limits = {
                    **BUSY_LIMITS,
                    "RATE_LIMIT": max(BUSY_LIMITS["RATE_LIMIT"], 2 * count + 50),
                }
                with running_bot(sandbox, Path(tmp) / "bot", FOLLOW_UP=True, **limits) as bot:
                    for i in range(30):
                        ask(bot, f"!sms send {ONE_NUMBER} profile warm-up {i}")
                    try:
                        for owner, name, original in originals:
                            setattr(owner, name, _timed(original, times[name]))
                        for i in range(count):
                            _sent(ask(bot, f"!sms send {ONE_NUMBER} profile {i}")[0])
                        for owner, name, original in originals:
                            setattr(owner, name, original)
                        deliver = sending_module.SendDesk.deliver

                        def profiled(self: Any, request: Any) -> Any:
                            profile.enable()
                            try:
                                return deliver(self, request)
                            finally:
                                profile.disable()

                        sending_module.SendDesk.deliver = profiled
                        for i in range(count):
                            _sent(ask(bot, f"!sms send {ONE_NUMBER} profiled {i}")[0])
                    finally:
                        for owner, name, original in originals:
                            setattr(owner, name, original)
                    settle(bot, 1.0)
        finally:
            sandbox.stop()
    lines = [f"{count} x !sms send, p50 per stage (the pipeline and its metric: SendDesk.deliver):"]
    measured = {name: values for name, values in times.items() if values}
    for name, values in sorted(measured.items(), key=lambda item: -statistics.median(item[1])):
        lines.append(
            f"  {name:16s} {statistics.median(values) * 1e6:8.0f} us  ({len(values)} calls)"
        )
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
    return "\n".join(lines) + "\n\n" + out.getvalue()


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 600))
