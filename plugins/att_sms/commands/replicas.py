"""Replicas on one PostgreSQL store: one leader does the background work; a command runs once.

Background work (inbox polls and their posts, delivery follow-ups, escalation steps) is
done by the replica that holds the leader lease (``att_sms.store.leases``). Each replica
tries to take or renew it every ``RENEW_EVERY`` seconds; the holder keeps it while it
renews, and ``Replicas.may_work()`` is true only until ``LEASE_TTL`` after its last successful
renewal began. A replica that dies stops renewing, so another takes over within
``TAKEOVER_BOUND`` seconds; a clean deactivation releases the lease at once.

Chat commands: where the chat gives every message to every replica (IRC, XMPP rooms, the
Text and Test backends, Slack's RTM), each copy of an AttSms command is claimed in the
store; the first claim runs it and every other replica drops its copy. The leader claims
at once; another replica waits ``COMMAND_GRACE`` first, so the leader runs commands while
it is there and a command said during a takeover still runs once. Where each event goes
to one connection (Slack Socket Mode and the Events API) every replica runs what it gets.
Only AttSms's commands are filtered, never errbot's own. With SQLite (one bot) none of this
applies: ``may_work()`` is always true and every command runs.

:class:`Replicas` is one activation's part; :class:`CommandOnce` (the plugin's command
filter) lives as long as the plugin, since errbot runs it before and while it activates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from att_sms.store import Store, StoreError
from att_sms.text.common import UTC_CLOCK_SECONDS, utc_time

from .runtime import Runtime

log = logging.getLogger("errbot.plugins.AttSms")

LEASE_NAME = "att_sms.leader"
#: A lease lasts this long after a renewal (seconds, the store's clock).
LEASE_TTL = 10.0
#: Every replica tries to take or renew the lease this often.
RENEW_EVERY = 2.0
#: The holder stops working this long before its lease ends (a pause, clock rates).
SAFETY = 1.0
#: A dead leader's work resumes on another replica within this many seconds.
TAKEOVER_BOUND = LEASE_TTL + RENEW_EVERY + 1.0
#: A replica without the lease waits this long for the leader to claim a command.
COMMAND_GRACE = 2.0
#: Another replica's claim of the same command counts when made at most this long before
#: this replica received it (chat delivery skew between replicas).
CLAIM_SKEW = 10.0
#: Claims are deleted after this long.
CLAIMS_KEPT = 3600.0
#: A command that arrives while the plugin (re)activates waits this long for it.
READY_WAIT = 15.0


def new_holder_id() -> str:
    """A replica's id for one activation: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def command_mode(setting: str, backend: Any) -> str:
    """``once`` (claim each command) or ``all`` (run what this replica receives).

    ``auto`` is ``all`` on slackv3 in Socket Mode or with the Events API, where Slack gives
    each event to one connection, and ``once`` everywhere else (safe on any backend).
    """
    if setting in ("once", "all"):
        return setting
    if getattr(backend, "mode", "") == "slackv3" and getattr(backend, "slack_rtm", None) is None:
        return "all"
    return "once"


def command_fingerprint(msg: Any) -> str:
    """What identifies one chat message across replicas: sender, room (or direct), text."""
    frm = msg.frm
    sender = str(getattr(frm, "person", None) or frm)
    where = str(msg.to) if getattr(msg, "is_group", False) else "direct"
    text = str(msg.body)
    return hashlib.sha256(f"{sender}\0{where}\0{text}".encode()).hexdigest()


class LeaderLease:
    """One replica's view of the leader lease (no errbot: usable by tests and benchmarks)."""

    def __init__(
        self, store: Store, holder: str, *, ttl: float = LEASE_TTL, name: str = LEASE_NAME
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.name = name
        self._valid_until = float("-inf")  # time.monotonic()
        self._lock = threading.Lock()
        self.problem: str | None = None

    def held(self) -> bool:
        """True while this replica holds the lease (a local check: no database query)."""
        return time.monotonic() < self._valid_until

    def renew(self) -> bool:
        """Take or renew the lease; True when held afterwards. Never raises."""
        with self._lock:
            was_held = self.held()
            started = time.monotonic()
            try:
                lease = self.store.acquire_lease(self.name, self.holder, self.ttl)
            except Exception as exc:  # the database is away: keep what is left of the lease
                self._report(f"{type(exc).__name__}: {exc}")
                return self.held()
            self._report(None)
            if lease.held_by(self.holder):
                self._valid_until = started + self.ttl - SAFETY
            else:
                self._valid_until = float("-inf")
            held = self.held()
        if held and not was_held:
            log.warning(
                "AttSms replica %s now holds the lease: it does the background work", self.holder
            )
        elif was_held and not held:
            log.warning("AttSms replica %s lost the lease to %s", self.holder, lease.holder)
        return held

    def release(self) -> None:
        """Stop working and give the lease up at once. Never raises."""
        with self._lock:
            was_held, self._valid_until = self.held(), float("-inf")
        try:
            if self.store.release_lease(self.name, self.holder) or was_held:
                log.info("AttSms replica %s released the lease", self.holder)
        except Exception as exc:  # it then expires by itself
            log.warning(
                "AttSms could not release the lease (it expires in %.0f s): %s", self.ttl, exc
            )

    def _report(self, problem: str | None) -> None:
        if problem != self.problem and problem is not None:
            log.warning("AttSms cannot renew the replicas' lease: %s", problem)
        self.problem = problem


class ClaimBook:
    """A replica's memory of claims: other replicas' claims it matched to copies it got
    (a person may repeat a command), and the deferred commands it decided to run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}
        self._redispatched: set[int] = set()

    def seen(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._seen)

    def remember(self, claim_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._seen[claim_id] = now
            for old in [c for c, at in self._seen.items() if now - at > 2 * CLAIM_SKEW]:
                del self._seen[old]

    def add_redispatched(self, msg: Any) -> None:
        with self._lock:
            self._redispatched.add(id(msg))

    def take_redispatched(self, msg: Any) -> bool:
        """True (once) when ``msg`` is a deferred command this replica is running."""
        with self._lock:
            if id(msg) in self._redispatched:
                self._redispatched.discard(id(msg))
                return True
            return False


class Replicas:
    """One activation's part in the replicas' coordination: one replica at a time polls,
    posts and follows up (only on PostgreSQL; on SQLite this bot always works)."""

    def __init__(self, rt: Runtime, *, holder: str) -> None:
        self._rt = rt
        self.holder = holder
        self.replicated = rt.store.database.dialect == "postgresql"
        self.lease: LeaderLease | None = None
        self._claims_pruned_at = 0.0

    def may_work(self) -> bool:
        """True when this replica may poll the inbox, post, follow up and escalate now."""
        if not self.replicated:
            return True
        lease = self.lease
        return lease is not None and lease.held()

    def start(self) -> None:
        """Take part in the replicas' coordination (only on PostgreSQL); the caller then
        runs :meth:`lease_tick` every ``RENEW_EVERY`` seconds and puts the filter first."""
        if not self.replicated:
            return
        self.lease = LeaderLease(self._rt.store, self.holder)
        self.lease.renew()  # at once: a lone replica works from its first poll on

    def stop(self) -> None:
        """Stop taking part and release the lease (another replica takes over at once)."""
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()

    def lease_tick(self) -> None:
        """Take or renew the lease; now and then delete old command claims. Never raises."""
        lease = self.lease
        if lease is None:
            return
        if lease.renew():
            self._prune_claims(self._rt.store)

    def _prune_claims(self, store: Store) -> None:
        if time.monotonic() - self._claims_pruned_at < CLAIMS_KEPT / 10:
            return
        self._claims_pruned_at = time.monotonic()
        try:
            store.prune_command_claims(store.now() - CLAIMS_KEPT)
        except Exception as exc:  # pruning waits for the next time
            log.info("AttSms could not prune old command claims: %s", exc)

    def now(self) -> float:
        """The store's clock (the one claims and the lease are dated with)."""
        return self._rt.store.now()

    def claim(self, msg: Any, arrived: float, *, leader: bool, book: ClaimBook) -> bool:
        """True when this replica is the one to run ``msg`` (``book``: the claims seen)."""
        store = self._rt.store
        try:
            claim = store.claim_command(
                command_fingerprint(msg), self.holder, arrived - CLAIM_SKEW, book.seen()
            )
        except Exception as exc:  # no store: nobody can claim; the leader still answers
            log.warning(
                "AttSms could not claim a command (%s): %s",
                "running it" if leader else "dropped",
                exc,
            )
            return leader
        if not claim.won:
            book.remember(claim.claim_id)
        return claim.won

    # ----------------------------------------------------------------- !sms replicas

    def replicas(self, msg: Any, args: str) -> str:
        """!sms replicas: the lease's holder and how commands run."""
        settings, store = self._rt.settings, self._rt.store
        if not self.replicated:
            return "One bot on SQLite: no replicas (set DATABASE_URL to a PostgreSQL database to run several)."
        try:
            lease = store.lease(LEASE_NAME)
        except StoreError as exc:
            return f"Cannot read the lease: {exc}"
        setting = getattr(settings, "replica_commands", "auto")
        mode = command_mode(setting, self._rt.bot)
        commands = (
            "every replica runs the commands it receives"
            if mode == "all"
            else "each command runs once, on the lease holder (or on another replica if it did not take it)"
        )
        if lease is None or lease.expired:
            holder = "nobody holds the lease (a replica takes it within a few seconds)"
        else:
            who = "this replica" if lease.holder == self.holder else "another replica"
            since = utc_time(lease.acquired_at, UTC_CLOCK_SECONDS)
            holder = (
                f"the lease is held by {lease.holder} ({who}) since {since},"
                f" renewed {lease.now - lease.renewed_at:.0f} s ago"
            )
        return (
            f"Replicas on {store.describe()}: {holder}. This replica is {self.holder}."
            f" Commands ({setting}): {commands}. A replica that dies is replaced within"
            f" {TAKEOVER_BOUND:.0f} s."
        )


def put_filter_first(bot: Any, method: Any) -> None:
    """Ahead of errbot's ACL filter: a replica that drops a command says nothing."""
    filters = bot.command_filters
    if method in filters:
        filters.remove(method)
        filters.insert(0, method)


class CommandOnce:
    """The plugin's command filter: run an AttSms command on this replica only if no other
    replica runs it. Lives as long as the plugin: it runs before and while it activates."""

    def __init__(
        self,
        bot: Any,
        *,
        is_own_command: Callable[[Any], bool],
        replicas: Callable[[], Replicas | None],
        starting: Callable[[], bool],
        database_configured: Callable[[], bool],
        replica_commands: Callable[[], str],
    ) -> None:
        self._bot = bot
        self._is_own_command = is_own_command
        self._replicas = replicas
        self._starting = starting
        self._database_configured = database_configured
        self._replica_commands = replica_commands
        self._book = ClaimBook()

    def filter(self, msg: Any, cmd: Any, args: Any, dry_run: bool) -> tuple[Any, Any, Any]:
        """errbot's cmdfilter: ``(msg, cmd, args)`` to run it here, ``(None, ...)`` to drop it."""
        if dry_run or msg is None or not self._is_own_command(cmd):
            return msg, cmd, args
        book = self._book
        if book.take_redispatched(msg) or not self._coordinating():
            return msg, cmd, args
        mode = command_mode(self._replica_commands(), self._bot)
        if mode == "all" and not self._starting():
            return msg, cmd, args
        replicas = self._replicas()
        lease = replicas.lease if replicas is not None else None
        if replicas is not None and lease is not None and lease.held():
            won = replicas.claim(msg, replicas.now(), leader=True, book=book)
            return (msg, cmd, args) if won else (None, cmd, args)
        threading.Thread(
            target=self._run_if_unclaimed,
            args=(msg, cmd, args, time.monotonic()),
            name="AttSms command claim",
            daemon=True,
        ).start()
        return None, cmd, args

    def _coordinating(self) -> bool:
        """True on PostgreSQL, also while the store is being opened, and while the plugin is
        starting (a command then waits for it instead of finding it not configured yet)."""
        replicas = self._replicas()
        if (replicas is not None and replicas.lease is not None) or self._starting():
            return True
        return self._database_configured()

    def _run_if_unclaimed(self, msg: Any, cmd: str, args: Any, arrived_mono: float) -> None:
        """After the grace: run the command here when no other replica claimed it."""
        book = self._book
        try:
            if not self._wait_until_started(arrived_mono + READY_WAIT):
                log.warning(
                    "AttSms dropped %s: the plugin was still starting after %.0f s", cmd, READY_WAIT
                )
                return
            if not self._coordinating():  # started with no replicas (SQLite): run it here
                book.add_redispatched(msg)
                self._bot._process_command(msg, cmd, args, None)
                return
            lease = self._wait_for_lease(arrived_mono + READY_WAIT)
            if lease is None:
                log.warning(
                    "AttSms dropped %s: the plugin was not active for %.0f s", cmd, READY_WAIT
                )
                return
            wait = arrived_mono + COMMAND_GRACE - time.monotonic()
            if wait > 0 and not lease.held():
                time.sleep(wait)
            replicas = self._replicas()
            if replicas is None:
                return
            arrived = replicas.now() - (time.monotonic() - arrived_mono)
            if not replicas.claim(msg, arrived, leader=lease.held(), book=book):
                return
            log.info("AttSms runs %s here: no other replica had claimed it", cmd)
            book.add_redispatched(msg)
            self._bot._process_command(msg, cmd, args, None)  # errbot's own path: ACLs, then run
        except Exception:
            log.exception("AttSms could not run the deferred command %s", cmd)
        finally:
            book.take_redispatched(msg)

    def _wait_until_started(self, deadline: float) -> bool:
        """False when the plugin is still being activated at the deadline."""
        while self._starting():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _wait_for_lease(self, deadline: float) -> LeaderLease | None:
        """This replica's lease object once the plugin is active (None at the deadline)."""
        while True:
            replicas = self._replicas()
            lease = replicas.lease if replicas is not None else None
            if lease is not None:
                return lease
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
