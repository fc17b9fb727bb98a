"""SIGTERM runs errbot's own shutdown, as Ctrl-C does, once the plugin has stopped its work.

errbot 6.2.1 has no SIGTERM handler: ``systemctl stop`` (or ``docker stop``, a Kubernetes
pod's end) ends the process at once, and no plugin is deactivated. errbot does stop
cleanly on Ctrl-C: the backend's serve loop, in the main thread, catches the
``KeyboardInterrupt``; the backend then runs errbot's disconnect callback (every plugin
deactivated) and ``bot.shutdown()``.

A ``KeyboardInterrupt`` at once is not enough, though: the IRC backend closes its connection
*before* it deactivates the plugins, and drops what is sent meanwhile ("the message will be
lost"), so an inbound SMS posted in that gap would be marked posted and never seen. So
the first SIGTERM starts, in a thread, the callbacks plugins registered with
:func:`run_before_shutdown` (AttSms deactivates itself through errbot's plugin manager: the
polls and posts in progress end while the chat is still connected, commands in flight are
waited for, the leader lease is released, the fetch child is told to finish); then a
SIGTERM goes to the main thread, where the handler raises the ``KeyboardInterrupt``, and
errbot's own shutdown runs. The callbacks get :data:`STOP_WORK_LIMIT` seconds at most. A
SIGTERM from outside while they run is ignored (systemd's SIGKILL after ``TimeoutStopSec``
ends a shutdown that hangs).

Installed only
* from the main thread: Python installs signal handlers nowhere else. errbot creates its
  plugins in the main thread (``bootstrap.setup_bot``), so the plugin calls
  :func:`install_sigterm_shutdown` from its constructor; activation may run in a
  backend's own thread (IRC's connect thread, Slack's socket thread), where the call only
  reports that it cannot;
* when SIGTERM's disposition is still ``SIG_DFL``: a handler someone else installed (a
  wrapper, a test runner) or an ignored SIGTERM is left alone;
* not under errbot's ``Test`` backend, which serves in a thread of its own: an interrupt of
  the main thread would not reach it.

The registry of callbacks lives on the installed handler, so that a plugin re-imported by
``!plugin reload`` registers with the handler that is actually installed.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "INSTALLED",
    "STOP_WORK_LIMIT",
    "forget_before_shutdown",
    "install_sigterm_shutdown",
    "is_ours",
    "run_before_shutdown",
]

log = logging.getLogger("errbot.plugins.AttSms")

INSTALLED = "installed"
ALREADY = "installed already"
OTHER_HANDLER = "SIGTERM has a handler already"
NOT_MAIN_THREAD = "not in the main thread"
TEST_BACKEND = "errbot's Test backend serves in a thread of its own"

#: Seconds the registered callbacks may take before errbot's shutdown runs anyway (below
#: systemd's default TimeoutStopSec of 90 s, with room for errbot's own shutdown).
STOP_WORK_LIMIT = 60.0

_MARK = "att_sms_sigterm"


class _SigtermShutdown:
    """The installed handler: first the plugins stop their work, then errbot shuts down."""

    def __init__(self) -> None:
        setattr(self, _MARK, True)
        self.callbacks: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._received = False
        self._work_stopped = threading.Event()
        self._raised = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self._work_stopped.is_set():
            if not self._raised:
                self._raised = True
                raise KeyboardInterrupt("SIGTERM")  # errbot's serve loop shuts down
            return
        with self._lock:
            if self._received:
                log.warning("AttSms: SIGTERM again while the plugins stop; ignored")
                return
            self._received = True
        log.warning("AttSms: SIGTERM received: stopping the plugin's work, then errbot")
        threading.Thread(target=self._stop_work, name="att-sms-sigterm", daemon=True).start()

    def _stop_work(self) -> None:
        worker = threading.Thread(target=self._run_callbacks, name="att-sms-stop", daemon=True)
        worker.start()
        worker.join(STOP_WORK_LIMIT)
        if worker.is_alive():
            log.error(
                "AttSms: the plugin did not stop in %.0f s; errbot stops now", STOP_WORK_LIMIT
            )
        self._work_stopped.set()
        # A real signal, to the main thread: it interrupts a blocking read there (the Text
        # backend's input()), which a simulated interrupt would not.
        main = threading.main_thread().ident
        if main is not None:  # always set: the main thread is running
            signal.pthread_kill(main, signal.SIGTERM)

    def _run_callbacks(self) -> None:
        for name, callback in list(self.callbacks.items()):
            try:
                callback()
            except Exception:
                log.exception("AttSms: stopping %s before the shutdown failed", name)


def is_ours(handler: Any) -> bool:
    """Whether ``handler`` (what ``signal.getsignal`` returned) is this module's handler."""
    return bool(getattr(handler, _MARK, False))


def install_sigterm_shutdown(backend: str = "") -> str:
    """Make SIGTERM run errbot's shutdown when that is safe; returns what was done."""
    if backend == "Test":
        return TEST_BACKEND
    current = signal.getsignal(signal.SIGTERM)
    if is_ours(current):
        return ALREADY
    if current is not signal.SIG_DFL:
        log.info("AttSms leaves SIGTERM alone: a handler is installed already (%r)", current)
        return OTHER_HANDLER
    if threading.current_thread() is not threading.main_thread():
        return NOT_MAIN_THREAD
    try:
        signal.signal(signal.SIGTERM, _SigtermShutdown())
    except ValueError:  # another interpreter than the main one
        return NOT_MAIN_THREAD
    log.info("AttSms: SIGTERM now runs errbot's shutdown (as Ctrl-C does)")
    return INSTALLED


def run_before_shutdown(name: str, callback: Callable[[], None]) -> bool:
    """Run ``callback`` (from a thread) on SIGTERM before errbot shuts down; False when
    this module's handler is not installed (then a SIGTERM does what it did before)."""
    handler = signal.getsignal(signal.SIGTERM)
    if not is_ours(handler):
        return False
    handler.callbacks[name] = callback  # type: ignore[union-attr]
    return True


def forget_before_shutdown(name: str) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    if is_ours(handler):
        handler.callbacks.pop(name, None)  # type: ignore[union-attr]
