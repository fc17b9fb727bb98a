"""When the plugin makes SIGTERM run errbot's shutdown, and what the handler does.

Real signals to this process, in pytest's main thread; SIGTERM's disposition is restored
after each test. The stop of a real errbot process is in tests/reliability/.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from att_sms.ops import sigterm
from att_sms.ops.sigterm import (
    forget_before_shutdown,
    install_sigterm_shutdown,
    is_ours,
    run_before_shutdown,
)


@pytest.fixture(autouse=True)
def _sigterm_restored() -> Iterator[None]:
    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def test_installed_in_the_main_thread_when_sigterm_is_the_default() -> None:
    assert install_sigterm_shutdown("Text") == sigterm.INSTALLED
    assert is_ours(signal.getsignal(signal.SIGTERM))
    assert install_sigterm_shutdown("IRC") == sigterm.ALREADY


def test_sigterm_stops_the_plugins_work_then_interrupts_the_main_thread() -> None:
    """The callbacks run first (in a thread); then the main thread gets the interrupt."""
    install_sigterm_shutdown("Text")
    ran: list[str] = []
    interrupted_after: list[list[str]] = []

    def stop_work() -> None:
        time.sleep(0.3)  # a poll finishing: the main thread keeps serving meanwhile
        ran.append(threading.current_thread().name)

    assert run_before_shutdown("AttSms", stop_work)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # again while the work stops: ignored
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # errbot's serve loop, say
            time.sleep(0.05)
        interrupted_after.append(list(ran))
    assert ran and ran[0] != threading.main_thread().name
    assert interrupted_after == []  # the interrupt came, and only after the callback


def test_a_blocking_read_in_the_main_thread_is_interrupted() -> None:
    """The Text backend waits in input(): the interrupt must wake a blocking read."""
    install_sigterm_shutdown("Text")
    read_end, write_end = os.pipe()
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            os.read(read_end, 1)  # nothing is ever written
        assert time.monotonic() - started < 5
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_forgotten_callback_does_not_run() -> None:
    install_sigterm_shutdown("Text")
    ran: list[str] = []
    run_before_shutdown("AttSms", lambda: ran.append("x"))
    forget_before_shutdown("AttSms")
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert ran == []


def test_another_handler_is_left_alone() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, mine)
    assert install_sigterm_shutdown("Text") == sigterm.OTHER_HANDLER
    assert signal.getsignal(signal.SIGTERM) is mine
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert install_sigterm_shutdown("Text") == sigterm.OTHER_HANDLER
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_not_from_another_thread_nor_under_the_test_backend() -> None:
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(install_sigterm_shutdown("IRC")))
    worker.start()
    worker.join(5)
    assert results == [sigterm.NOT_MAIN_THREAD]
    assert install_sigterm_shutdown("Test") == sigterm.TEST_BACKEND
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not run_before_shutdown("AttSms", lambda: None)  # nothing installed: no-op
