"""One bot replica as its own process, for the two-replica alert test: errbot's test backend
with AttSms on a PostgreSQL store and errbot's Webserver on a given port.

``python tests/alerts_replica.py DATA_DIR PORT READY_FILE CONFIG_JSON``; the secrets come
from the environment (ATT_CLIENT_SECRET, ATT_DATABASE_PASSWORD, ATT_WEBHOOK_TOKEN). It
writes READY_FILE once the endpoint answers, and stops when its stdin closes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import requests

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from botkit import Bot  # noqa: E402


def main() -> None:
    data_dir, port, ready_file, config = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    bot = Bot(data_dir=Path(data_dir))
    try:
        answer = bot.configure(json.loads(config))
        if answer != "Plugin configuration done.":
            raise SystemExit(f"AttSms refused its configuration: {answer}")
        answer = bot.ask(f"!plugin config Webserver {{'HOST': '127.0.0.1', 'PORT': {port}}}")
        if answer != "Plugin configuration done.":
            raise SystemExit(f"Webserver refused its configuration: {answer}")
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/att_sms/alerts", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("the Webserver did not start") from None
                time.sleep(0.05)
        Path(ready_file).write_text(str(bot.plugin.services.replicas.may_work()))
        sys.stdin.read()  # until the test closes it
    finally:
        bot.stop()


if __name__ == "__main__":
    main()
