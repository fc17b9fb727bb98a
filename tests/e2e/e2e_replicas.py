"""Two errbot replicas (IRC backend) on one PostgreSQL, for the failover test and benchmark.

Each replica is its own errbot process with its own nick, working directory and data
directory; both take the plugin's settings from ``ATT_*`` variables (the harness's), plus
``ATT_DATABASE_URL`` and ``ATT_DATABASE_PASSWORD``. ``LeaseWatch`` reads the leader lease
straight from the database, to tell which replica holds it and when that changed.
"""

from __future__ import annotations

import bisect
import itertools
import re
import signal
import subprocess
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
    HOST,
    HUMAN_NICK,
    LOGS,
    Proc,
    Sandbox,
    errbot_config,
    errbot_env,
    start_ngircd,
    start_sandbox,
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
        extra_config: str = "",
    ) -> None:
        self.name = name
        self.nick = f"{BOT_NICK}{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.py"
        text = errbot_config(workdir, irc_port).replace(repr(BOT_NICK), repr(self.nick))
        config.write_text(text + extra_config)
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

    def terminate(self, human: IrcClient, bound: float = 60.0) -> int:
        """A planned stop, as ``systemctl stop`` does it: SIGTERM, then wait for the exit.

        Returns errbot's exit status; AssertionError when it is still running after ``bound``.
        """
        proc = self.proc.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)  # the fetch child, in its own session, ignores it
        try:
            status = proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            message = f"{self.nick} did not stop within {bound:.0f} s of SIGTERM"
            raise AssertionError(message) from None
        human.wait_member(CHANNEL, self.nick, False, 30)
        return status

    def stop(self) -> None:
        self.proc.stop()


class ReplicaSystem:
    """ngircd, the sandbox, a database on ``pg_server``, two replicas (not started), a person."""

    def __init__(
        self, workdir: Path, ngircd_path: str, pg_server: Any, extra_config: str = ""
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.human: IrcClient | None = None
        self.pg_server = pg_server
        self.database_url = pg_server.create_database()
        try:
            ngircd, irc_port = start_ngircd(workdir, ngircd_path)
            self.procs.append(ngircd)
            sandbox_proc, sandbox_url = start_sandbox(workdir)
            self.procs.append(sandbox_proc)
            self.sandbox = Sandbox(sandbox_url)
            self.replicas = [
                Replica(
                    name,
                    workdir / name,
                    irc_port,
                    sandbox_url,
                    self.database_url,
                    pg_server.password,
                    extra_config,
                )  # fmt: skip
                for name in ("1", "2")
            ]
            self.human = IrcClient(HOST, irc_port, HUMAN_NICK)
            self.human.connect()
            self.human.join(CHANNEL)
        except BaseException:
            self.close()
            raise
        dbname = self.database_url.rsplit("/", 1)[1]
        self.lease = LeaseWatch(lambda: pg_server.admin(dbname))

    def person(self) -> IrcClient:
        assert self.human is not None
        return self.human

    def other(self, replica: Replica) -> Replica:
        return self.replicas[1] if replica is self.replicas[0] else self.replicas[0]

    def holder(self) -> Replica | None:
        pid = self.lease.holder_pid()
        return next((r for r in self.replicas if r.proc.alive() and r.pid == pid), None)

    def command(self, text: str, digits: str, timeout: float = 20.0) -> None:
        """Say a send command; wait for its answer (a line with the recipient's digits)."""
        mark = self.person().say(CHANNEL, text)
        self.person().wait_for_messages(
            lambda ms: any(is_answer(m.text, digits) for m in ms), timeout,
            f"the answer to {text!r}", since=mark,
        )  # fmt: skip

    def wait_for_post_by(self, replica: Replica, since: int, timeout: float = 15.0) -> float:
        """Wait for an inbound post by ``replica`` after message ``since``; its time."""
        found = self.person().wait_for_messages(
            lambda ms: any("stream fo" in m.text for m in ms), timeout,
            f"an inbound post by {replica.nick}", since=since, nick=replica.nick,
        )  # fmt: skip
        return next(m.at for m in found if "stream fo" in m.text)

    def close(self) -> None:
        if self.human is not None:
            self.human.close()
        for replica in getattr(self, "replicas", []):
            replica.stop()
        for proc in reversed(self.procs):
            proc.stop()
        self.pg_server.drop_database(self.database_url)


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


def is_answer(text: str, digits: str) -> bool:
    """The reply to a send (a follow-up's "Delivery of SMS ..." line is not one)."""
    return "Sent to" in text and digits in digits_of(text)


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

    def expires_at(self) -> float | None:
        """When the current lease runs out unless renewed (the database's clock), if any."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT expires_at FROM att_leases WHERE name = %s", (LEASE_NAME,)
            ).fetchone()
        return None if row is None else float(row[0])

    def acquired_at(self) -> float | None:
        """When the current holder took the lease (the database's clock), if anyone did."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT acquired_at FROM att_leases WHERE name = %s", (LEASE_NAME,)
            ).fetchone()
        return None if row is None else float(row[0])

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

    def __init__(
        self, sandbox: Sandbox, run: str, every: float = 0.25, limit: int | None = None
    ) -> None:
        self.sandbox = sandbox
        self.run = run
        self.every = every
        self.limit = limit
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
            if self._stop.is_set() or (self.limit is not None and n >= self.limit):
                return
            marker = f"fo{self.run}n{n:05d}"
            try:
                self.sandbox.inject("tel:+12125550177", f"stream {marker}")
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return
            self.markers.append(marker)
            if self.every:
                self._stop.wait(self.every)

    def wait_done(self, timeout: float) -> None:
        self._thread.join(timeout)


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
    a replica killed at most ``window`` seconds later and every later copy came after it.

    The IRC backend cuts a long post into lines anywhere, even inside a marker: each nick's
    lines are searched as one text, a marker counting at the line where it starts.
    """
    result = Tally()
    seen: dict[str, list[ChannelMessage]] = {m: [] for m in markers}
    by_nick: dict[str, list[ChannelMessage]] = {}
    for message in messages:
        by_nick.setdefault(message.nick, []).append(message)
    pattern = re.compile("|".join(re.escape(m) for m in markers)) if markers else None
    for lines in by_nick.values():
        if pattern is None:
            break
        starts = list(itertools.accumulate((len(m.text) for m in lines), initial=0))
        for found in pattern.finditer("".join(m.text for m in lines)):
            seen[found.group()].append(lines[bisect.bisect_right(starts, found.start()) - 1])
    for marker, posts in seen.items():
        posts.sort(key=lambda m: m.index)
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
