"""SIGTERM runs errbot's own shutdown, as Ctrl-C does.

errbot 6.2.1 has no SIGTERM handler: ``systemctl stop`` (or ``docker stop``, a Kubernetes
pod's end) ends the process at once, and no plugin is deactivated. errbot does stop
cleanly on Ctrl-C: the backend's serve loop, in the main thread, catches the
``KeyboardInterrupt`` and calls ``bot.shutdown()``, which deactivates every plugin (here:
the leader lease released, the fetch child told to finish, commands in flight waited
for). The handler installed here raises that same ``KeyboardInterrupt`` on the first
SIGTERM, so a stop takes errbot's own path; a second SIGTERM during the shutdown is
ignored (the supervisor's SIGKILL after its stop timeout ends a shutdown that hangs).

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
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

__all__ = ["INSTALLED", "install_sigterm_shutdown", "is_ours"]

log = logging.getLogger("errbot.plugins.AttSms")

INSTALLED = "installed"
ALREADY = "installed already"
OTHER_HANDLER = "SIGTERM has a handler already"
NOT_MAIN_THREAD = "not in the main thread"
TEST_BACKEND = "errbot's Test backend serves in a thread of its own"

_MARK = "att_sms_sigterm"
_received = threading.Event()


def _shutdown_on_sigterm(signum: int, frame: Any) -> None:
    if _received.is_set():
        log.warning("AttSms: SIGTERM again while errbot shuts down; ignored")
        return
    _received.set()
    log.warning("AttSms: SIGTERM received: errbot shuts down (plugins are deactivated)")
    raise KeyboardInterrupt("SIGTERM")


setattr(_shutdown_on_sigterm, _MARK, True)  # recognised after `!plugin reload` re-imports


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
        signal.signal(signal.SIGTERM, _shutdown_on_sigterm)
    except ValueError:  # another interpreter than the main one
        return NOT_MAIN_THREAD
    _received.clear()
    log.info("AttSms: SIGTERM now runs errbot's shutdown (as Ctrl-C does)")
    return INSTALLED
