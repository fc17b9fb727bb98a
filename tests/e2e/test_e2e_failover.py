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

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_replicas import Injector, Kill, ReplicaSystem, is_answer, tally

#: The fixtures pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import PgServer

pytestmark = pytest.mark.e2e

#: A dead leader's work resumes within this (commands.replicas.TAKEOVER_BOUND plus a poll).
TAKEOVER_LIMIT = 15.0
#: A killed replica's post that its store commit did not follow began at most this long
#: before the kill: a combined post ("40 SMS replies: ...") is one post, and sending its
#: lines at IRC_CHANNEL_RATE takes seconds.
POST_MARK_WINDOW = 8.0
#: After the second kill the restarted replica posts what piled up (about 100 SMS, at the
#: IRC server's channel rate); on a loaded 2-core machine that took over 30 s.
DRAIN_LIMIT = 90.0


@pytest.fixture
def pair(ngircd_path: str, pg_server: PgServer, tmp_path: Path) -> Iterator[ReplicaSystem]:
    system = ReplicaSystem(tmp_path, ngircd_path, pg_server)
    try:
        yield system
    finally:
        system.close()


def test_killing_the_lease_holder_and_later_the_other_loses_and_repeats_nothing(
    pair: ReplicaSystem,
) -> None:
    human = pair.person()
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
        lambda ms: not tally(ms, markers, kills, POST_MARK_WINDOW).missing, DRAIN_LIMIT,
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
