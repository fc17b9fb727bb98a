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
from att_sms import sigterm
from att_sms.sigterm import install_sigterm_shutdown, is_ours


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


def test_the_first_sigterm_interrupts_the_main_thread_as_ctrl_c_does() -> None:
    install_sigterm_shutdown("Text")
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at once and interrupts the sleep
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)  # a second one, during the shutdown: ignored
    time.sleep(0.2)
    assert time.monotonic() - started >= 0.2


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
