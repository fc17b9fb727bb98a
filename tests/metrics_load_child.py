"""The bot of test_metrics_slow_clients, in a process of its own with few files allowed.

argv: the file limit, the data dir, the plugin config (JSON). Reads one round name per
line on stdin (``quit`` ends); per round it sends one SMS and polls the inbox once, and
prints one JSON line: both answers, its open files and threads.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
from pathlib import Path


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main() -> None:
    limit, data_dir, config = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    from botkit import Bot  # after the limit: errbot opens its files under it

    bot = Bot(data_dir=data_dir)
    emit({"configured": bot.configure(config), "files": open_files()})
    for line in sys.stdin:
        name = line.strip()
        if name == "quit":
            break
        record: dict = {"round": name}
        for key, command in (
            ("sent", f"!sms send +12125551234 round {name}"),
            ("polled", "!sms inbox"),
        ):
            try:
                record[key] = bot.ask(command, timeout=30)
            except Exception as exc:  # no answer in time: reported, the test fails on it
                record[key] = f"no answer: {type(exc).__name__}"
        record["files"] = open_files()
        record["threads"] = threading.active_count()
        emit(record)
    bot.stop()


if __name__ == "__main__":
    main()
