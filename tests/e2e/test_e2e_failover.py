"""Failover end to end: two errbot processes (IRC) on one PostgreSQL, one killed, then the other.

ngircd, the carrier sandbox (a process) with inbound SMS arriving all along, a real
PostgreSQL server, and two replicas of the bot in #oncall. The replica holding the lease is
SIGKILLed right after one of its inbound posts (mid-poll); the other takes over. The first
is started again, then the second is killed the same way. Every inbound SMS must reach the
channel, once, except a repeat of what a killed replica had posted but not yet marked
(the post -> mark window), which is counted and printed. Every command is answered once,
including one said while nobody holds the lease. The takeover times are printed.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_harness import CHANNEL, HOST, HUMAN_NICK, Proc, Sandbox, start_ngircd, start_sandbox
from e2e_ircclient import IrcClient
from e2e_replicas import Injector, Kill, LeaseWatch, Replica, tally

#: The fixtures pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import PgServer

pytestmark = pytest.mark.e2e

#: A dead leader's work resumes within this (plugin_replicas.TAKEOVER_BOUND plus a poll).
TAKEOVER_LIMIT = 15.0
#: A killed replica's post that its store commit did not follow happened this shortly before.
POST_MARK_WINDOW = 2.0


class Pair:
    """The running system: ngircd, sandbox, database, two replicas and a person."""

    def __init__(self, workdir: Path, ngircd_path: str, pg_server: PgServer) -> None:
        self.procs: list[Proc] = []
        self.human: IrcClient | None = None
        self.database_url = pg_server.create_database()
        self.pg_server = pg_server
        ngircd, irc_port = start_ngircd(workdir, ngircd_path)
        self.procs.append(ngircd)
        sandbox_proc, sandbox_url = start_sandbox(workdir)
        self.procs.append(sandbox_proc)
        self.sandbox = Sandbox(sandbox_url)
        self.replicas = [
            Replica(
                name, workdir / name, irc_port, sandbox_url, self.database_url, pg_server.password
            )
            for name in ("1", "2")
        ]
        self.human = IrcClient(HOST, irc_port, HUMAN_NICK)
        self.human.connect()
        self.human.join(CHANNEL)
        dbname = self.database_url.rsplit("/", 1)[1]
        self.lease = LeaseWatch(lambda: pg_server.admin(dbname))

    def command(self, text: str, digits: str, timeout: float = 20.0) -> None:
        """Say a send command; wait for its answer (a line with the recipient's digits)."""
        assert self.human is not None
        mark = self.human.say(CHANNEL, text)
        self.human.wait_for_messages(
            lambda ms: any(is_answer(m.text, digits) for m in ms), timeout,
            f"the answer to {text!r}", since=mark,
        )  # fmt: skip

    def wait_for_post_by(self, replica: Replica, since: int, timeout: float = 15.0) -> None:
        assert self.human is not None
        self.human.wait_for_messages(
            lambda ms: any("stream fo" in m.text for m in ms), timeout,
            f"an inbound post by {replica.nick}", since=since, nick=replica.nick,
        )  # fmt: skip

    def close(self) -> None:
        if self.human is not None:
            self.human.close()
        for replica in self.replicas:
            replica.stop()
        for proc in reversed(self.procs):
            proc.stop()
        self.pg_server.drop_database(self.database_url)


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


def is_answer(text: str, digits: str) -> bool:
    """The reply to a send (a follow-up's "Delivery of SMS ..." line is not one)."""
    return "Sent to" in text and digits in digits_of(text)


@pytest.fixture
def pair(ngircd_path: str, pg_server: PgServer, tmp_path: Path) -> Iterator[Pair]:
    system = Pair(tmp_path, ngircd_path, pg_server)
    try:
        yield system
    finally:
        system.close()


def test_killing_the_lease_holder_and_later_the_other_loses_and_repeats_nothing(
    pair: Pair,
) -> None:
    human = pair.human
    assert human is not None
    first, second = pair.replicas
    first.start(human)
    pair.lease.wait_holder(first.pid, 10)
    second.start(human)
    assert pair.lease.holder_pid() == first.pid

    run = uuid.uuid4().hex[:6]
    since = human.mark()
    injector = Injector(pair.sandbox, run).start()
    commands: list[str] = []  # the recipients' digits, one per command

    def send(n: int) -> None:
        digits = f"1212555{n:04d}"
        commands.append(digits)
        pair.command(f"!sms send +{digits} failover {run} {n}", digits)

    send(101)
    kills: list[Kill] = []
    takeovers: list[tuple[float, float]] = []
    for victim, heir in ((first, second), (second, first)):
        pair.wait_for_post_by(victim, human.mark())  # it is posting: mid-poll
        kills.append(Kill(victim.nick, time.time()))
        killed_at = time.monotonic()
        victim.kill9(human)
        send(200 + len(kills))  # said while nobody holds the lease
        lease_after = pair.lease.wait_holder(heir.pid, TAKEOVER_LIMIT + 5)
        lease_took = time.monotonic() - killed_at
        assert lease_after >= 0
        pair.wait_for_post_by(heir, human.mark(), TAKEOVER_LIMIT)
        posting_took = time.monotonic() - killed_at
        takeovers.append((lease_took, posting_took))
        send(300 + len(kills))
        if victim is first:
            victim.start(human)  # back, as the standby
            assert pair.lease.holder_pid() == second.pid

    time.sleep(2)
    markers = injector.stop()
    assert not injector.errors, injector.errors
    human.wait_for_messages(
        lambda ms: not tally(ms, markers, kills, POST_MARK_WINDOW).missing, 30,
        "every injected SMS in the channel", since=since,
    )  # fmt: skip
    time.sleep(3)  # any late duplicate
    messages = human.messages(since)
    counted = tally(messages, markers, kills, POST_MARK_WINDOW)
    answers = {d: sum(is_answer(m.text, d) for m in messages) for d in commands}
    sent = pair.sandbox.sent()
    sends = {d: sum(1 for s in sent if any(d in a for a in s["addresses"])) for d in commands}
    print(
        f"\nfailover: {len(markers)} inbound SMS, {len(commands)} commands;"
        f" takeover after SIGKILL (lease / first post):"
        f" {', '.join(f'{a:.1f} s / {b:.1f} s' for a, b in takeovers)};"
        f" repeats in the post->mark window: {len(counted.window_repeats)}"
        f" {counted.window_repeats}"
    )
    assert counted.missing == [] and counted.other_repeats == [], counted
    assert all(n == 1 for n in answers.values()), answers
    assert all(n == 1 for n in sends.values()), sends
    assert all(posting <= TAKEOVER_LIMIT for _, posting in takeovers), takeovers
