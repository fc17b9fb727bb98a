"""Replicas on one PostgreSQL store: one leader does the background work; a command runs once.

Background work (inbox polls and their posts, delivery follow-ups, escalation steps) is
done by the replica that holds the leader lease (``att_sms.store.leases``). Each replica
tries to take or renew it every ``RENEW_EVERY`` seconds; the holder keeps it while it
renews, and ``_may_work()`` is true only until ``LEASE_TTL`` after its last successful
renewal began. A replica that dies stops renewing, so another takes over within
``TAKEOVER_BOUND`` seconds; a clean deactivation releases the lease at once.

Chat commands: where the chat gives every message to every replica (IRC, XMPP rooms, the
Text and Test backends, Slack's RTM), each copy of an AttSms command is claimed in the
store; the first claim runs it and every other replica drops its copy. The leader claims
at once; another replica waits ``COMMAND_GRACE`` first, so the leader runs commands while
it is there and a command said during a takeover still runs once. Where each event goes
to one connection (Slack Socket Mode and the Events API) every replica runs what it gets.
Only AttSms's commands are filtered, never errbot's own. With SQLite (one bot) none of this
applies: ``_may_work()`` is always true and every command runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

from errbot import botcmd, cmdfilter

from att_sms.store import Store, StoreError
from att_sms.text.common import UTC_CLOCK_SECONDS, utc_time

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


class ReplicaCoordination:
    """Mixed into the AttSms plugin: one replica at a time polls, posts and follows up."""

    _replicated = False
    _lease: LeaderLease | None = None
    _holder = ""

    def _may_work(self) -> bool:
        """True when this replica may poll the inbox, post, follow up and escalate now."""
        if not self._replicated:
            return True
        lease = self._lease
        return lease is not None and lease.held()

    def _start_replicas(self, generation: int) -> None:
        """Take part in the replicas' coordination (only on PostgreSQL)."""
        store = self._sms_store
        self._replicated = store is not None and store.database.dialect == "postgresql"
        self._claims_pruned_at = 0.0
        if not self._replicated:
            return
        self._holder = new_holder_id()
        self._lease = LeaderLease(store, self._holder)
        self._lease.renew()  # at once: a lone replica works from its first poll on
        self.start_poller(RENEW_EVERY, self._lease_tick, args=(generation,))
        self._put_command_filter_first()

    def _stop_replicas(self) -> None:
        """Stop taking part and release the lease (another replica takes over at once)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    def _lease_tick(self, generation: int) -> None:
        lease = self._lease
        if generation != self._generation or lease is None:
            return
        if lease.renew():
            self._prune_claims(lease.store)

    def _prune_claims(self, store: Store) -> None:
        if time.monotonic() - self._claims_pruned_at < CLAIMS_KEPT / 10:
            return
        self._claims_pruned_at = time.monotonic()
        try:
            store.prune_command_claims(store.now() - CLAIMS_KEPT)
        except Exception as exc:  # pruning waits for the next time
            log.info("AttSms could not prune old command claims: %s", exc)

    # ----------------------------------------------------------------- commands once

    def _put_command_filter_first(self) -> None:
        """Ahead of errbot's ACL filter: a replica that drops a command says nothing."""
        filters = self._bot.command_filters
        mine = self._replica_command_filter
        if mine in filters:
            filters.remove(mine)
            filters.insert(0, mine)

    @cmdfilter
    def _replica_command_filter(self, msg: Any, cmd: Any, args: Any, dry_run: bool) -> tuple:
        """Let this replica run an AttSms command only if no other replica runs it."""
        if dry_run or msg is None or not self._is_own_command(cmd):
            return msg, cmd, args
        book = self._claim_book()
        if book.take_redispatched(msg) or not self._coordinating():
            return msg, cmd, args
        mode = command_mode(getattr(self._settings, "replica_commands", "auto"), self._bot)
        if mode == "all" and not self._starting:
            return msg, cmd, args
        store, lease = self._sms_store, self._lease
        if store is not None and lease is not None and lease.held():
            won = self._claim(msg, store.now(), leader=True)
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
        if self._lease is not None or self._starting:
            return True
        settings = self._settings
        return settings is not None and bool(settings.database_url)

    def _claim_book(self) -> ClaimBook:
        book = self.__dict__.get("_att_claim_book")
        if book is None:  # the filter may run before the first activation finished
            book = self.__dict__.setdefault("_att_claim_book", ClaimBook())
        return book

    def _is_own_command(self, cmd: Any) -> bool:
        if not isinstance(cmd, str):
            return False
        method = self._bot.commands.get(cmd) or self._bot.re_commands.get(cmd)
        return getattr(method, "__self__", None) is self

    def _claim(self, msg: Any, arrived: float, *, leader: bool) -> bool:
        """True when this replica is the one to run ``msg``."""
        store = self._sms_store
        if store is None:
            return False
        book = self._claim_book()
        try:
            claim = store.claim_command(
                command_fingerprint(msg), self._holder, arrived - CLAIM_SKEW, book.seen()
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

    def _run_if_unclaimed(self, msg: Any, cmd: str, args: Any, arrived_mono: float) -> None:
        """After the grace: run the command here when no other replica claimed it."""
        book = self._claim_book()
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
            store = self._sms_store
            if store is None:
                return
            arrived = store.now() - (time.monotonic() - arrived_mono)
            if not self._claim(msg, arrived, leader=lease.held()):
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
        while self._starting:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _wait_for_lease(self, deadline: float) -> LeaderLease | None:
        """This replica's lease object once the plugin is active (None at the deadline)."""
        while self._lease is None or self._sms_store is None:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        return self._lease

    # ----------------------------------------------------------------- !sms replicas

    @botcmd
    def sms_replicas(self, msg: Any, args: str) -> str:
        """Which replica does the background work (inbox, follow-ups, pages) and how commands run."""
        if self._settings is None:
            return self._not_configured()
        store = self._sms_store
        if not self._replicated or store is None:
            return "One bot on SQLite: no replicas (set DATABASE_URL to a PostgreSQL database to run several)."
        try:
            lease = store.lease(LEASE_NAME)
        except StoreError as exc:
            return f"Cannot read the lease: {exc}"
        setting = getattr(self._settings, "replica_commands", "auto")
        mode = command_mode(setting, self._bot)
        commands = (
            "every replica runs the commands it receives"
            if mode == "all"
            else "each command runs once, on the lease holder (or on another replica if it did not take it)"
        )
        if lease is None or lease.expired:
            holder = "nobody holds the lease (a replica takes it within a few seconds)"
        else:
            who = "this replica" if lease.holder == self._holder else "another replica"
            since = utc_time(lease.acquired_at, UTC_CLOCK_SECONDS)
            holder = (
                f"the lease is held by {lease.holder} ({who}) since {since},"
                f" renewed {lease.now - lease.renewed_at:.0f} s ago"
            )
        return (
            f"Replicas on {store.describe()}: {holder}. This replica is {self._holder}."
            f" Commands ({setting}): {commands}. A replica that dies is replaced within"
            f" {TAKEOVER_BOUND:.0f} s."
        )
