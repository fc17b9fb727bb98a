"""A planned stop of the lease holder is a hand-over, not a takeover after expiry.

Two errbot processes (IRC) on one PostgreSQL, inbound SMS arriving all along. The replica
holding the lease gets SIGTERM (then, restarted as the standby, the other one does), as ``systemctl stop`` sends it: errbot's own shutdown
runs (the plugin's SIGTERM handler), the plugin is deactivated and releases the lease, so
the other replica takes it at its next try (every 2 s), long before the stopped one's
lease would have run out. Every inbound SMS reaches the channel; every command is
answered once. The time from SIGTERM to the other holding the lease is printed (the
figure in docs/DEPLOYMENT.md comes from benchmarks/replicas.py).
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

#: Generous: a stop and a hand-over take about 2 s; a lease left to expire takes 8-12 s.
STOP_LIMIT = 60.0
HANDOVER_LIMIT = 15.0
POST_MARK_WINDOW = 8.0


@pytest.fixture
def pair(ngircd_path: str, pg_server: PgServer, tmp_path: Path) -> Iterator[ReplicaSystem]:
    system = ReplicaSystem(tmp_path, ngircd_path, pg_server)
    try:
        yield system
    finally:
        system.close()


def test_sigterm_of_the_lease_holder_hands_the_lease_over(pair: ReplicaSystem) -> None:
    human = pair.person()
    first, second = pair.replicas
    first.start(human)
    pair.lease.wait_holder(first.pid, 10)
    second.start(human)
    assert pair.lease.holder_pid() == first.pid

    run = uuid.uuid4().hex[:6]
    since = human.mark()
    injector = Injector(pair.sandbox, run).start()
    stops: list[Kill] = []
    timings: list[tuple[float, float, float]] = []
    for victim, heir in ((first, second), (second, first)):
        pair.wait_for_post_by(victim, human.mark())  # it is polling and posting
        expiry_before = pair.lease.expires_at()  # the lease ends then unless renewed/released
        assert expiry_before is not None
        stops.append(Kill(victim.nick, time.time()))
        stopped_at = time.monotonic()
        status = victim.terminate(human, STOP_LIMIT)
        stop_took = time.monotonic() - stopped_at
        assert status == 0, f"errbot exited with {status} on SIGTERM"
        pair.lease.wait_holder(heir.pid, HANDOVER_LIMIT)
        handover_took = time.monotonic() - stopped_at
        acquired = pair.lease.acquired_at()
        assert acquired is not None and acquired < expiry_before, (
            "the other replica took the lease only once it had expired: it was not released"
        )
        pair.wait_for_post_by(heir, human.mark(), HANDOVER_LIMIT)
        timings.append((stop_took, handover_took, time.monotonic() - stopped_at))
        if victim is first:
            victim.start(human)  # back, as the standby

    digits = "12125550401"
    pair.command(f"!sms send +{digits} after the planned stops {run}", digits)
    time.sleep(2)
    markers = injector.stop()
    assert not injector.errors, injector.errors
    human.wait_for_messages(
        lambda ms: not tally(ms, markers, stops, POST_MARK_WINDOW).missing, 30,
        "every injected SMS in the channel", since=since,
    )  # fmt: skip
    time.sleep(2)
    messages = human.messages(since)
    counted = tally(messages, markers, stops, POST_MARK_WINDOW)
    print(
        "\nplanned stops (SIGTERM to exit / to the other holding the lease / to its first"
        " inbound post): "
        + ", ".join(f"{a:.1f} s / {b:.1f} s / {c:.1f} s" for a, b, c in timings)
        + f"; {len(markers)} inbound SMS, repeats: {len(counted.window_repeats)}"
    )
    # A clean stop ends its posts before it disconnects: nothing lost, nothing repeated.
    assert counted.missing == [] and counted.other_repeats == [], counted
    assert counted.window_repeats == [], counted
    assert sum(is_answer(m.text, digits) for m in messages) == 1
