"""Replicas on one real PostgreSQL server: the leader lease, command claims, two bots.

The store tests run on both engines (the lease works on SQLite too, the plugin just does
not need it there); the bot tests start two errbot TestBots in this process, each with its
own data directory, both on one PostgreSQL schema and one carrier sandbox, and check that
work is done once and state is shared.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from att_sms.commands import replicas as plugin_replicas
from att_sms.commands.replicas import LEASE_NAME, LeaderLease, command_fingerprint, command_mode
from att_sms.store import Store
from botkit import Bot, sandbox_config

#: The fixtures engine, pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine, PgServer

ALICE = "+12125551234"


@pytest.fixture
def stores(engine: Engine) -> Iterator[tuple[Store, Store]]:
    """Two replicas' views of one store (two connections, as two processes would have)."""
    first, second = engine.open(), engine.open()
    yield first, second
    second.close()
    first.close()


# -- the lease -------------------------------------------------------------------------------


def test_a_lease_is_taken_renewed_expires_and_is_taken_over(stores: tuple[Store, Store]) -> None:
    a, b = stores
    first = a.acquire_lease("lead", "A", ttl=1.0)
    assert first.held_by("A") and first.acquired_at == first.renewed_at
    assert first.expires_at == pytest.approx(first.now + 1.0)
    refused = b.acquire_lease("lead", "B", ttl=1.0)
    assert not refused.held_by("B") and refused.holder == "A"
    time.sleep(0.2)
    renewed = a.acquire_lease("lead", "A", ttl=1.0)
    assert renewed.held_by("A")
    assert renewed.acquired_at == first.acquired_at and renewed.expires_at > first.expires_at
    time.sleep(1.1)  # A stops renewing: its lease runs out
    assert b.lease("lead").expired
    taken = b.acquire_lease("lead", "B", ttl=1.0)
    assert taken.held_by("B") and taken.acquired_at > first.acquired_at
    assert not a.acquire_lease("lead", "A", ttl=1.0).held_by("A")
    assert not a.release_lease("lead", "A")  # not A's to release
    assert b.release_lease("lead", "B")
    assert b.lease("lead") is None
    assert a.acquire_lease("lead", "A", ttl=1.0).held_by("A")  # free again: at once


def test_of_many_contenders_at_once_exactly_one_gets_the_lease(engine: Engine) -> None:
    replicas = [engine.open() for _ in range(6)]
    start = threading.Barrier(len(replicas))
    won: list[str] = []

    def contend(store: Store, name: str) -> None:
        start.wait()
        if store.acquire_lease("lead", name, ttl=30).held_by(name):
            won.append(name)

    try:
        for _round in range(5):
            threads = [
                threading.Thread(target=contend, args=(store, f"r{_round}-{i}"))
                for i, store in enumerate(replicas)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert len(won) == 1, won
            assert replicas[0].lease("lead").holder == won[0]
            assert replicas[0].release_lease("lead", won.pop())
    finally:
        for store in replicas:
            store.close()


def test_a_replica_cut_off_from_the_database_stops_working_when_its_lease_ends(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin_replicas, "SAFETY", 0.2)
    store, other = engine.open(), engine.open()
    try:
        lease = LeaderLease(store, "A", ttl=1.2)
        assert lease.renew() and lease.held()
        store.close()  # its database is away from now on
        assert lease.renew()  # cannot renew, never raises, and the lease is still its own
        assert lease.problem is not None
        time.sleep(1.3)  # past its end
        assert not lease.renew() and not lease.held()
        assert LeaderLease(other, "B", ttl=1.2).renew()  # another replica takes over
    finally:
        other.close()


# -- command claims --------------------------------------------------------------------------


def test_a_command_every_replica_received_is_claimed_once(stores: tuple[Store, Store]) -> None:
    a, b = stores
    since = a.now() - 10
    first = a.claim_command("fp-send", "A", since)
    assert first.won
    copy = b.claim_command("fp-send", "B", since)
    assert not copy.won and copy.claim_id == first.claim_id
    # The person says it again on purpose: A claims anew; B matches its second copy to it.
    again = a.claim_command("fp-send", "A", since)
    assert again.won and again.claim_id != first.claim_id
    second_copy = b.claim_command("fp-send", "B", since, seen={first.claim_id})
    assert not second_copy.won and second_copy.claim_id == again.claim_id
    # A third time, and only B got it (A missed it): B runs it.
    assert b.claim_command("fp-send", "B", since, seen={first.claim_id, again.claim_id}).won
    # Claims older than the skew window never match; old claims are pruned.
    assert a.claim_command("fp-other", "A", since).won
    assert b.claim_command("fp-other", "B", a.now() + 1).won
    assert a.prune_command_claims(a.now() + 1) == 5


def test_the_same_text_from_another_person_or_room_is_another_command() -> None:
    def message(person: str, room: str | None, body: str) -> Any:
        to = room if room is not None else "bot"
        return SimpleNamespace(
            frm=SimpleNamespace(person=person), to=to, is_group=room is not None, body=body
        )

    base = command_fingerprint(message("ann", "#ops", "!sms send bob hi"))
    assert base == command_fingerprint(message("ann", "#ops", "!sms send bob hi"))
    assert base != command_fingerprint(message("ben", "#ops", "!sms send bob hi"))
    assert base != command_fingerprint(message("ann", "#dev", "!sms send bob hi"))
    assert base != command_fingerprint(message("ann", None, "!sms send bob hi"))
    assert base != command_fingerprint(message("ann", "#ops", "!sms send bob hi!"))


def test_command_mode_by_backend() -> None:
    irc = SimpleNamespace(mode="irc")
    socket_mode = SimpleNamespace(mode="slackv3", slack_rtm=None)
    rtm = SimpleNamespace(mode="slackv3", slack_rtm=object())
    assert command_mode("auto", irc) == "once"
    assert command_mode("auto", SimpleNamespace(mode="test")) == "once"
    assert command_mode("auto", socket_mode) == "all"
    assert command_mode("auto", rtm) == "once"  # RTM gives every connection every event
    assert command_mode("once", socket_mode) == "once"
    assert command_mode("all", irc) == "all"


# -- two bots on one PostgreSQL ---------------------------------------------------------------


@pytest.fixture
def replicas(
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sandbox: Any,
    client_id: str,
    pg_server: PgServer,
    pg_url: str,
) -> Iterator[Callable[..., tuple[Bot, Bot]]]:
    """Start two bots on one PostgreSQL schema; the first configured holds the lease."""
    monkeypatch.setenv("ATT_DATABASE_PASSWORD", pg_server.password)
    sandbox.add_registration("reg-ops")
    started: list[Bot] = []

    def start(**overrides: Any) -> tuple[Bot, Bot]:
        config = sandbox_config(sandbox, client_id, DATABASE_URL=pg_url, POLL_INTERVAL=1)
        config.update(overrides)
        for name in ("a", "b"):
            bot = Bot(data_dir=tmp_path / name)
            started.append(bot)
            assert bot.configure(config) == "Plugin configuration done."
        a, b = started[-2:]
        assert a.plugin.services.replicas.may_work() and not b.plugin.services.replicas.may_work()
        return a, b

    yield start
    for bot in reversed(started):
        bot.stop()


def answers(bot: Bot, wait: float = 0.5) -> list[str]:
    return bot.drain(wait)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def test_each_inbound_sms_is_posted_once_by_the_leader(replicas: Any, sandbox: Any) -> None:
    a, b = replicas()
    run = uuid.uuid4().hex[:6]
    markers = [f"in{run}n{i:02d}" for i in range(20)]
    for m in markers:
        sandbox.inject_inbound("reg-ops", "tel:+12125559876", f"page {m}")
    wait_until(lambda: all(a.posts_containing(m) for m in markers), 15, "every inbound posted")
    time.sleep(2.5)  # more polls on both: nothing comes twice
    for m in markers:
        assert len(a.posts_containing(m)) + len(b.posts_containing(m)) == 1, m
    assert b.posts_containing(run) == []  # the standby posts nothing


def test_a_command_every_replica_receives_runs_once_and_its_follow_up_posts_once(
    replicas: Any, sandbox: Any
) -> None:
    a, b = replicas()
    text = f"once {uuid.uuid4().hex[:8]}"
    a.push(f"!sms send {ALICE} {text}")
    b.push(f"!sms send {ALICE} {text}")
    said = answers(a, 1.0) + answers(b, plugin_replicas.COMMAND_GRACE + 1.5)
    assert [line for line in said if line.startswith("Sent to")] == [said[0]], said
    sent = [s for s in sandbox.state()["sent"] if s["message"] == text]
    assert len(sent) == 1
    follow = f"Delivery of SMS {sent[0]['messageId']}"
    wait_until(lambda: a.posts_containing(follow) or b.posts_containing(follow), 15, follow)
    time.sleep(2)
    assert len(a.posts_containing(follow)) + len(b.posts_containing(follow)) == 1
    # errbot's own commands are never filtered: both replicas answer.
    answers(a), answers(b)
    assert a.ask("!echo both") == "both" and b.ask("!echo both") == "both"


def test_a_command_only_a_standby_receives_runs_there_after_the_grace(
    replicas: Any, sandbox: Any
) -> None:
    a, b = replicas()
    text = f"standby {uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    reply = b.ask(f"!sms send {ALICE} {text}", timeout=15)
    took = time.monotonic() - began
    assert reply.startswith("Sent to"), reply
    assert took >= plugin_replicas.COMMAND_GRACE
    assert [s["message"] for s in sandbox.state()["sent"]].count(text) == 1
    assert answers(a) == []
    # The filter runs first (ahead of errbot's ACLs) and lets !help's dry runs through.
    assert b.backend.command_filters[0] == b.plugin._replica_command_filter
    assert "sms send" in b.ask("!help AttSms")


def test_a_stop_received_by_one_replica_blocks_a_send_through_the_other(
    replicas: Any, sandbox: Any
) -> None:
    a, b = replicas()
    sandbox.inject_inbound("reg-ops", f"tel:{ALICE}", "STOP")
    wait_until(lambda: a.posts_containing("STOP"), 10, "the STOP posted by the leader")
    reply = b.ask(f"!sms send {ALICE} after the stop", timeout=15)
    assert "opted out" in reply, reply
    assert all(s["message"] != "after the stop" for s in sandbox.state()["sent"])
    # Contacts and the audit log are one too.
    assert "alice" in a.ask("!sms contact add alice +13125550199").lower()
    assert "alice" in b.ask("!sms contacts", timeout=15).lower()
    assert a.ask("!sms send alice via a").startswith("Sent to")
    assert "+13125550199" in b.ask("!sms log 1", timeout=15)


def test_the_rate_limit_is_one_limit_across_replicas(replicas: Any, sandbox: Any) -> None:
    a, b = replicas(RATE_LIMIT=1)
    assert a.ask(f"!sms send {ALICE} first of the hour").startswith("Sent to")
    reply = b.ask(f"!sms send {ALICE} second of the hour", timeout=15)
    assert not reply.startswith("Sent to") and "limit" in reply.lower(), reply
    assert [s["message"] for s in sandbox.state()["sent"]] == ["first of the hour"]


def test_quota_reservations_from_two_stores_at_once_respect_one_limit(
    pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    # Imported here: a bot started earlier in this process may have reloaded the package.
    from att_sms.sending.policy import QuotaError
    from att_sms.store import open_store

    views = [
        open_store(tmp_path, database_url=pg_url, password=pg_server.password) for _ in range(2)
    ]
    granted: list[int] = []
    refused: list[str] = []
    start = threading.Barrier(8)

    def reserve(store: Store) -> None:
        start.wait()
        try:
            granted.append(store.reserve_quota("ann", 1, rate_limit=3, daily_limit=0))
        except QuotaError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=reserve, args=(views[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in views:
        store.close()
    assert len(granted) == 3 and len(refused) == 5


def test_a_replica_that_leaves_hands_the_work_over_at_once(replicas: Any, sandbox: Any) -> None:
    a, b = replicas()
    assert a.ask("!plugin deactivate AttSms") == "Plugin AttSms deactivated."
    wait_until(b.plugin.services.replicas.may_work, plugin_replicas.RENEW_EVERY + 3, "the standby to take over")
    lease = b.plugin.services.runtime.store.lease(LEASE_NAME)
    assert lease.held_by(b.plugin.services.replicas.holder)
    sandbox.inject_inbound("reg-ops", "tel:+12125559876", "after the handover")
    assert len(b.wait_for_posts("after the handover", timeout=10)) == 1
    assert a.ask("!plugin activate AttSms") == "Plugin AttSms activated."
    assert not a.plugin.services.replicas.may_work() and b.plugin.services.replicas.may_work()  # it comes back as a standby


def test_replica_commands_all_runs_what_each_replica_receives(replicas: Any, sandbox: Any) -> None:
    a, b = replicas(REPLICA_COMMANDS="all")
    began = time.monotonic()
    assert b.ask(f"!sms send {ALICE} all mode", timeout=15).startswith("Sent to")
    assert time.monotonic() - began < plugin_replicas.COMMAND_GRACE
