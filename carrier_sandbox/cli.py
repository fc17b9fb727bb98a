"""``python -m carrier_sandbox``: run the sandbox until SIGTERM/SIGINT.

Prints exactly one line on stdout, ``sandbox listening on http://HOST:PORT`` (flushed);
a port already in use exits 2 with a message on stderr. The client secret is best given
in ``$SANDBOX_CLIENT_SECRET`` (argv is visible to ``ps``); it is never printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from .recipients import DEFAULT_MAX_RECIPIENTS
from .sandbox import Sandbox


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m carrier_sandbox", description="AT&T SMS carrier sandbox"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--client-id", default=os.environ.get("SANDBOX_CLIENT_ID", "sandbox-client"))
    p.add_argument(
        "--client-secret",
        default=None,
        help="default: $SANDBOX_CLIENT_SECRET or sandbox-secret (prefer the env variable)",
    )
    p.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS")
    p.add_argument("--delivery-delay", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--registration", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument("--db", default=None, metavar="PATH", help="SQLite file; state survives restart")
    p.add_argument(
        "--validate",
        action="store_true",
        help="check traffic against the spec (needs openapi-core)",
    )
    p.add_argument("--inbox-batch", type=int, default=0, metavar="N", help="0 = all")
    p.add_argument(
        "--max-recipients",
        "--max-addresses",
        dest="max_recipients",
        type=int,
        default=DEFAULT_MAX_RECIPIENTS,
        metavar="N",
        help=f"addresses allowed per send (default {DEFAULT_MAX_RECIPIENTS}; 0 = no limit)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGTERM/SIGINT; the exit status."""
    args = parser().parse_args(argv)
    secret = args.client_secret or os.environ.get("SANDBOX_CLIENT_SECRET") or "sandbox-secret"
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sandbox = Sandbox(
        args.host,
        args.port,
        client_id=args.client_id,
        client_secret=secret,
        token_ttl=args.token_ttl,
        delivery_delay=args.delivery_delay,
        registrations=tuple(args.registration),
        db_path=args.db,
        validate=args.validate,
        inbox_batch=args.inbox_batch,
        max_recipients=args.max_recipients,
    )
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sandbox.start()
    except OSError as exc:
        print(
            f"sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    print(f"sandbox listening on {sandbox.base_url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0
