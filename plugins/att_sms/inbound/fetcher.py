"""Inbox fetching in a helper process, so a stopped or killed bot cannot lose what the carrier handed over.

The carrier's inbox read is destructive: once it has answered, only our copy remains. If
the fetch and the store write ran inside the bot, a kill landing between the carrier's
answer and the commit would lose those messages, and a kill is always possible (a
SIGKILL, an OOM kill, a stop that outlasts its timeout; errbot 6.2.1 itself has no SIGTERM
handler, the plugin adds one: see ``att_sms.ops.sigterm``). So the bot asks a small child process
to "fetch, then commit to the store", and reads the store afterwards. The child runs in
its own session and ignores SIGTERM and SIGINT: a service stop (SIGTERM to every process
of the service) or a Ctrl-C ends the bot, while the child finishes the read it is in,
commits, notices its parent is gone (end of its stdin) and exits. Only a SIGKILL of the
child itself in the sub-millisecond between answer and commit can lose a read.

Protocol (one JSON object per line): the parent writes the settings first (secret
included: a pipe, never argv or the environment), then one ``{"registration": id}`` per
fetch; the child answers ``{"new": n}`` or ``{"error": type, "message": text, "status": n}``.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from att_sms.carrier.client import AttSmsClient
from att_sms.carrier.errors import (
    AttSmsError,
    AuthenticationError,
    CarrierError,
    CarrierUnavailable,
    NotFoundError,
    ProtocolError,
)
from att_sms.store import Store, open_store

log = logging.getLogger(__name__)

#: Most inbox reads in one fetch of a registration (the carrier may answer in batches).
MAX_READS_PER_FETCH = 50
#: Environment variables a child never inherits (secrets travel through the pipe).
SECRET_VARIABLES = (
    "ATT_CLIENT_SECRET", "ATT_DATABASE_PASSWORD", "PGPASSWORD", "ATT_WEBHOOK_TOKEN",
)  # fmt: skip
#: How the child is started.
#: ``python -m att_sms.inbound.fetcher``, but with the stop signals ignored before anything is
#: imported: a stop landing while the child starts (its imports take a good part of a
#: second) would otherwise end it, and the bot, which now shuts down cleanly on SIGTERM,
#: would fetch in-process in the meantime.
_CHILD_LAUNCH = (
    "import runpy, signal, sys\n"
    "for name in ('SIGTERM', 'SIGINT', 'SIGHUP'):\n"
    "    signal.signal(getattr(signal, name), signal.SIG_IGN)\n"
    "runpy.run_module(sys.argv[1], run_name='__main__', alter_sys=True)\n"
)
CHILD_COMMAND = [sys.executable, "-c", _CHILD_LAUNCH, "att_sms.inbound.fetcher"]
#: The folder that holds the ``att_sms`` package (``plugins/``): the child imports it from
#: there, whatever the bot's own PYTHONPATH (errbot puts it on ``sys.path`` in-process only).
PLUGINS_DIR = Path(__file__).resolve().parents[2]

_ERRORS: dict[str, type[AttSmsError]] = {
    cls.__name__: cls
    for cls in (
        AttSmsError,
        CarrierError,
        AuthenticationError,
        NotFoundError,
        CarrierUnavailable,
        ProtocolError,
    )
}


def drain_into(
    client: AttSmsClient,
    store: Store,
    registration: str,
    keep_reading: Callable[[], bool] = lambda: True,
) -> int:
    """Read a registration's inbox until it is empty (within a bound): until the carrier
    returns an empty batch or says, with a pending count of 0, that it holds no more.

    Each batch is committed before the next read; no further read starts once
    ``keep_reading()`` is false. Returns how many new messages were stored.
    """
    new = 0
    for _ in range(MAX_READS_PER_FETCH):
        batch = client.fetch_inbound(registration)
        for problem in getattr(batch, "skipped", ()):
            log.warning("inbound item for %s skipped: %s", registration, problem)
        new += len(store.record_fetched(registration, batch.messages))
        if not batch.messages and not getattr(batch, "skipped", ()):
            break
        if batch.pending == 0 or not keep_reading():  # the carrier said it holds no more
            break
    return new


class FetcherExited(CarrierUnavailable):
    """The fetch child exited without answering (it could not start, or it crashed)."""


class FetcherProcess:
    """The parent's handle on the fetch child. One fetch at a time (the caller serialises)."""

    def __init__(self, settings: dict[str, Any], reply_timeout: float) -> None:
        self._reply_timeout = reply_timeout
        plugins_dir = str(PLUGINS_DIR)
        env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugins_dir, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            CHILD_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own session: a signal to the bot's process group does not cut a fetch short.
            start_new_session=True,
        )
        self._buffer = b""
        self._write(settings)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def fetch(self, registration: str) -> int:
        """Have the child drain ``registration`` into the store; the number of new messages."""
        try:
            self._write({"registration": registration})
            answer = self._read_line()
        except _Exited as exc:
            self.close(wait=0)
            raise FetcherExited(f"the inbox fetch process exited ({exc})") from None
        except (OSError, ValueError) as exc:
            self.kill()  # it stopped answering: replaced by a new one at the next fetch
            raise CarrierUnavailable(f"the inbox fetch process did not answer ({exc})") from None
        if "new" in answer:
            return int(answer["new"])
        raise _error_from(answer)

    def finish(self) -> None:
        """Ask the child to start no new read: it ends the one it is in, answers, then exits."""
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        """End a child that stopped answering (a hung read): nothing it holds is committed."""
        try:
            self._proc.kill()
            self._proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.close(wait=0)

    def close(self, wait: float = 5.0) -> None:
        """Let the child finish what it is doing and exit (it stops at the end of stdin).

        It is not killed: a fetch it is in the middle of still reaches the store.
        """
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass  # it exits by itself once its fetch is stored
        if self._proc.stdout:
            self._proc.stdout.close()

    def _exit_status(self) -> int | None:
        try:
            return self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(obj).encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise _Exited(f"exit status {self._proc.wait()}") from None

    def _read_line(self) -> dict[str, Any]:
        stdout = self._proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + self._reply_timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValueError("no answer in time")
            # poll(2), not select(2): a bot with over 1024 open files must still fetch.
            with selectors.PollSelector() as selector:
                selector.register(stdout, selectors.EVENT_READ)
                ready = selector.select(left)
            if ready:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise _Exited(f"exit status {self._exit_status()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply


class _Exited(Exception):
    pass


def _error_answer(exc: AttSmsError) -> dict[str, Any]:
    """An error as the child reports it, enough to raise the same error in the parent."""
    answer: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, CarrierError):
        answer.update(text=exc.text, message_id=exc.message_id, kind=exc.kind, status=exc.status)
    elif isinstance(exc, CarrierUnavailable):
        answer["status"] = exc.status
    return answer


def _error_from(answer: dict[str, Any]) -> AttSmsError:
    error = _ERRORS.get(str(answer.get("error")), AttSmsError)
    message = str(answer.get("message", "inbox fetch failed"))
    if issubclass(error, CarrierError):
        return error(
            str(answer.get("text", message)),
            status=answer.get("status"),
            message_id=answer.get("message_id"),
            kind=answer.get("kind"),
        )
    if issubclass(error, CarrierUnavailable):
        return error(message, status=answer.get("status"))
    return error(message)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The child's loop: settings line, then one fetch per request line, until end of input.

    Just over 50 lines: opening the store and client, the loop and closing both read best
    as one piece (the child has nothing else)."""
    first = stdin.readline()
    if not first:
        return 0
    settings = json.loads(first)
    store = open_store(
        settings["data_dir"],
        database_url=settings.get("database_url", ""),
        password=settings.get("database_password") or None,
        default_region=settings.get("default_region", "US"),
    )
    client = AttSmsClient(
        settings["base_url"],
        settings["client_id"],
        settings["client_secret"],
        settings.get("scope", "SMS"),
        read_timeout=float(settings.get("read_timeout", 10.0)),
    )
    lock = threading.Lock()

    def bot_still_waiting() -> bool:
        # The bot writes nothing while it waits for an answer: stdin readable = end of input
        # (the bot stopped, or died and the kernel closed its end of the pipe).
        try:
            with selectors.PollSelector() as selector:
                selector.register(stdin, selectors.EVENT_READ)
                return not selector.select(0)
        except (OSError, ValueError):  # not a pipe (io.UnsupportedOperation is both)
            return True

    try:
        for line in iter(stdin.readline, b""):
            request = json.loads(line)
            with lock:
                try:
                    answer: dict[str, Any] = {
                        "new": drain_into(
                            client, store, str(request["registration"]), bot_still_waiting
                        )
                    }
                except AttSmsError as exc:
                    answer = _error_answer(exc)
            try:
                stdout.write(json.dumps(answer).encode() + b"\n")
                stdout.flush()
            except (BrokenPipeError, OSError):
                return 0  # the bot is gone; what we fetched is in the store
    finally:
        client.close()
        store.close()
    return 0


def _ignore_stop_signals() -> None:
    """A service stop must not cut a fetch short: the child ends at the end of its stdin."""
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


if __name__ == "__main__":
    _ignore_stop_signals()
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
