"""The plugin's parts for one activation, built over one :class:`Runtime` in dependency order.

Each area is a plain class that gets what it needs in its constructor; this module is the
only place that knows how they fit together::

    Replicas ─────────────── may_work ──────────────┐
    ConversationThreads ─┬─> SendDesk ─┬─> PageDesk ─┼─> AlertDesk
                         │             └────────────┼─> RotationDesk
                         ├─> FollowUps              │
                         └─> InboundPoller <── ack_notes (PageDesk)
                                  └─> HealthDesk
    DirectoryDesk (the store only)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .alerts import ALERT_SMS_TICK, AlertDesk
from .directory import DirectoryDesk
from .followup import FOLLOW_UP_TICK, FollowUps
from .health import HEALTH_TICK, HealthDesk
from .inbound import POLL_TICK, InboundPoller
from .pages import PAGES_TICK, PageDesk
from .replicas import RENEW_EVERY, Replicas, new_holder_id
from .rotations import HANDOFF_TICK, RotationDesk
from .runtime import Runtime
from .sending import SendDesk
from .threads import ConversationThreads


@dataclass(frozen=True)
class Locks:
    """Locks that outlive an activation: a run of an earlier one may still hold them."""

    pages: threading.Lock
    poll: threading.Lock


@dataclass(frozen=True)
class Services:
    """One activation's area classes (see the module's docstring for who uses whom)."""

    runtime: Runtime
    replicas: Replicas
    threads: ConversationThreads
    sending: SendDesk
    follow_ups: FollowUps
    directory: DirectoryDesk
    pages: PageDesk
    alerts: AlertDesk
    rotations: RotationDesk
    inbound: InboundPoller
    health: HealthDesk


def build_services(
    rt: Runtime,
    *,
    locks: Locks,
    thread_holder: str,
    run_pages_soon: Callable[[], None],
) -> Services:
    """The area classes over ``rt``. ``run_pages_soon`` runs the page poller's tick now (in
    the background), for a page an alert just opened."""
    replicas = Replicas(rt, holder=new_holder_id())
    may_work = replicas.may_work
    threads = ConversationThreads(rt, holder=thread_holder)
    sending = SendDesk(rt, threads)
    pages = PageDesk(rt, sending, threads, may_work=may_work, lock=locks.pages)
    inbound = InboundPoller(
        rt, threads, may_work=may_work, ack_notes=pages.ack_notes, lock=locks.poll
    )
    return Services(
        runtime=rt,
        replicas=replicas,
        threads=threads,
        sending=sending,
        follow_ups=FollowUps(rt, threads, may_work=may_work),
        directory=DirectoryDesk(rt),
        pages=pages,
        alerts=AlertDesk(rt, pages, sending, may_work=may_work, run_pages_soon=run_pages_soon),
        rotations=RotationDesk(rt, sending, may_work=may_work, holder=_holder_of(replicas)),
        inbound=inbound,
        health=HealthDesk(rt, inbound, may_work=may_work),
    )


#: ``schedule(interval, tick)``: run ``tick`` every ``interval`` seconds while this
#: activation is current (errbot's pollers, through AttSms).
Schedule = Callable[[float, Callable[[], None]], None]


def start(services: Services, schedule: Schedule) -> None:
    """Start one activation's work, in this order: the lease first (a lone replica works
    from its first poll on), then inbound, follow-ups, pages, handoffs, owed SMS, health."""
    settings = services.runtime.settings
    services.replicas.start()
    if services.replicas.replicated:
        schedule(RENEW_EVERY, services.replicas.lease_tick)
    services.inbound.start()
    if settings.poll_interval > 0 and settings.inbox_routes:
        schedule(POLL_TICK, services.inbound.tick)
    if settings.follow_up:
        schedule(FOLLOW_UP_TICK, services.follow_ups.tick)
    schedule(PAGES_TICK, services.pages.tick)
    schedule(HANDOFF_TICK, services.rotations.handoffs_tick)
    schedule(ALERT_SMS_TICK, services.alerts.owed_sms_tick)
    services.health.start()
    if settings.inbox_routes:
        schedule(HEALTH_TICK, services.health.tick)


def stop(services: Services) -> None:
    """Stop one activation's work (its pollers are already stopped): the metrics endpoint,
    a page run's store writes, a poll's store writes and the fetch child, then the lease."""
    services.health.stop()
    services.pages.stop()
    services.inbound.stop()
    services.replicas.stop()


def _holder_of(replicas: Replicas) -> Callable[[], str]:
    """Who claims a handoff: this replica (PostgreSQL), else the one bot."""
    return lambda: replicas.holder if replicas.replicated else "bot"
