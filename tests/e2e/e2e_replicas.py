"""Two errbot replicas (IRC backend) on one PostgreSQL, for the failover test and benchmark.

Each replica is its own errbot process with its own nick, working directory and data
directory; both take the plugin's settings from ``ATT_*`` variables (the harness's), plus
``ATT_DATABASE_URL`` and ``ATT_DATABASE_PASSWORD``. ``LeaseWatch`` reads the leader lease
straight from the database, to tell which replica holds it and when that changed.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from e2e_harness import (
    BOT_NICK,
    CHANNEL,
    ERRBOT_READY_TIMEOUT,
    LOGS,
    Proc,
    Sandbox,
    errbot_config,
    errbot_env,
    tail,
    venv_bin,
)
from e2e_ircclient import ChannelMessage, IrcClient

LEASE_NAME = "att_sms.leader"
_probes = itertools.count(1)


class Replica:
    """One errbot process of the pair: ``start()``, ``kill9()``; ``pid`` names its lease."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        irc_port: int,
        sandbox_url: str,
        database_url: str,
        password: str,
    ) -> None:
        self.name = name
        self.nick = f"{BOT_NICK}{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.py"
        config.write_text(errbot_config(workdir, irc_port).replace(repr(BOT_NICK), repr(self.nick)))
        env = errbot_env(sandbox_url)
        env.update(ATT_DATABASE_URL=database_url, ATT_DATABASE_PASSWORD=password)
        LOGS[f"{name}.log"] = workdir / "errbot.log"
        self.proc = Proc(
            name, [str(venv_bin("errbot")), "-c", str(config)], workdir / "errbot.out",
            env=env, cwd=workdir,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, human: IrcClient) -> float:
        """Start errbot; wait until it is in the channel and answers; the seconds it took."""
        began = time.monotonic()
        self.proc.start()
        try:
            human.wait_member(CHANNEL, self.nick, True, ERRBOT_READY_TIMEOUT)
            probe = f"probe{next(_probes)}{self.name}"
            mark = human.say(CHANNEL, f"!echo {probe}")
            human.wait_for_messages(
                lambda ms: any(probe in m.text for m in ms), 30, f"{self.nick} to answer",
                since=mark, nick=self.nick,
            )  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(
                f"{self.nick} did not become ready: {exc}\n{tail(f'{self.name}.log', 40)}"
            ) from exc
        return time.monotonic() - began

    def kill9(self, human: IrcClient) -> None:
        """SIGKILL errbot (its fetch child, in its own session, finishes its read)."""
        self.proc.kill9()
        human.wait_member(CHANNEL, self.nick, False, 30)

    def stop(self) -> None:
        self.proc.stop()


class LeaseWatch:
    """The leader lease as the database holds it (a connection of the test's own)."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect

    def holder_pid(self) -> int | None:
        """The pid in the holder id of the unexpired lease, or None when nobody holds it."""
        with self._connect() as conn:
            try:
                row = conn.execute(
                    "SELECT holder FROM att_leases WHERE name = %s"
                    " AND expires_at > EXTRACT(EPOCH FROM clock_timestamp())",
                    (LEASE_NAME,),
                ).fetchone()
            except psycopg.errors.UndefinedTable:  # no replica has created the store yet
                return None
        return None if row is None else int(row[0].split(":")[-2])

    def wait_holder(self, pid: int, timeout: float) -> float:
        """Wait until replica ``pid`` holds the lease; the seconds waited."""
        began = time.monotonic()
        while self.holder_pid() != pid:
            if time.monotonic() - began > timeout:
                raise AssertionError(f"pid {pid} did not take the lease within {timeout:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - began


class Injector:
    """Inbound SMS at the carrier, one every ``every`` seconds, each with its own marker."""

    def __init__(self, sandbox: Sandbox, run: str, every: float = 0.25) -> None:
        self.sandbox = sandbox
        self.run = run
        self.every = every
        self.markers: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="e2e-injector", daemon=True)

    def start(self) -> Injector:
        self._thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        return list(self.markers)

    def _loop(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            marker = f"fo{self.run}n{n:04d}"
            try:
                self.sandbox.inject("tel:+12125550177", f"stream {marker}")
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return
            self.markers.append(marker)
            self._stop.wait(self.every)


@dataclass
class Kill:
    """A SIGKILL of a replica: its nick and the wall-clock time (as IRC messages carry)."""

    nick: str
    at: float


@dataclass
class Tally:
    """How often each marker reached the channel, and which repeats the windows explain."""

    counts: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    window_repeats: list[str] = field(default_factory=list)
    other_repeats: list[str] = field(default_factory=list)


def tally(
    messages: Iterable[ChannelMessage], markers: list[str], kills: list[Kill], window: float
) -> Tally:
    """Count markers; a repeat is in the post -> mark window when its first post came from
    a replica killed at most ``window`` seconds later and every later copy came after it."""
    result = Tally()
    pattern = re.compile("|".join(re.escape(m) for m in markers)) if markers else None
    seen: dict[str, list[ChannelMessage]] = {m: [] for m in markers}
    for message in messages:
        if pattern is None:
            break
        for found in pattern.findall(message.text):
            seen[found].append(message)
    for marker, posts in seen.items():
        result.counts[marker] = len(posts)
        if not posts:
            result.missing.append(marker)
        elif len(posts) > 1:
            first = posts[0]
            explained = any(
                k.nick == first.nick
                and -0.5 <= k.at - first.at <= window  # the IRC line may trail the kill
                and all(p.at >= k.at for p in posts[1:])
                for k in kills
            )
            (result.window_repeats if explained else result.other_repeats).append(marker)
    return result
