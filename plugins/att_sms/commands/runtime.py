"""What one activation of the plugin works with, handed to each area's class explicitly.

``AttSms.activate`` builds one :class:`Runtime` (settings, store, client, number rules,
metrics, the chat and the activation's generation) and the area classes over it
(``commands.wiring``); deactivation drops them. Nothing here imports errbot: the chat is
reached through the two callables errbot's plugin gives (its bot, ``build_identifier``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from att_sms.carrier.client import AttSmsClient
from att_sms.ops.metrics import Metrics
from att_sms.sending.pipeline import Context
from att_sms.settings import Settings
from att_sms.store import Store
from att_sms.text.numbers import NumberRules


class Activations:
    """The plugin's activation counter: every (de)activation bumps it, so that a poll chain
    or a run started by an earlier activation sees it is stale and stops."""

    def __init__(self) -> None:
        self._number = 0
        self._lock = threading.Lock()

    @property
    def number(self) -> int:
        return self._number

    def bump(self) -> int:
        """Start a new generation (an activation, or a deactivation); its number."""
        with self._lock:
            self._number += 1
            return self._number

    def is_current(self, generation: int) -> bool:
        return generation == self._number


class InFlight:
    """Work that is talking to the carrier or the store (commands, poller runs):
    deactivation waits for it before closing them."""

    def __init__(self) -> None:
        self._count = 0
        self._done = threading.Condition()

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._done:
            self._count += 1
        try:
            yield
        finally:
            with self._done:
                self._count -= 1
                self._done.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing runs (at most ``timeout`` seconds); False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self._count == 0, timeout=timeout)


@dataclass(frozen=True)
class Runtime:
    """One activation's shared parts. Frozen: a reconfiguration builds a new one."""

    settings: Settings
    store: Store
    client: AttSmsClient
    rules: NumberRules
    metrics: Metrics
    generation: int
    activations: Activations
    #: errbot's bot (the backend): posting with confirmation, threads, the command table.
    bot: Any
    #: errbot's ``build_identifier``: a room or person's text -> the backend's identifier.
    build_identifier: Callable[[str], Any]
    #: errbot's BOT_DATA_DIR (the fetch child and the thread poster's id use it).
    data_dir: str

    def current(self) -> bool:
        """True while this runtime's activation is the plugin's current one."""
        return self.activations.is_current(self.generation)

    def context(self) -> Context:
        """What the send pipeline works with."""
        return Context(self.settings, self.client, self.rules, self.store)


def user_of(msg: Any) -> str:
    """Who typed ``msg``: the person behind a room occupant, else the sender."""
    frm = msg.frm
    person = getattr(frm, "person", None)
    return str(person or frm)


def reply_target(msg: Any) -> str:
    """Where an answer to ``msg`` goes: the room for a room message, else the person."""
    if getattr(msg, "is_group", False):
        return str(msg.to)
    return str(msg.frm)
