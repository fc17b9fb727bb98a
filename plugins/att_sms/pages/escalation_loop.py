"""Running a page: every transition due now, in order, saved before and after each send.

``run_due`` drives the state machine of ``att_sms.pages.escalation`` with a clock, a ``save``
and a ``send`` callback, and reports what the room is told (``Event``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .escalation import (
    ADVANCE,
    EXHAUST,
    EXHAUSTED,
    FAILED,
    MOVED_ON,
    SEND,
    Action,
    Page,
    advance,
    begin_send,
    exhaust,
    next_action,
    record_send,
)

__all__ = ["Event", "SendOutcome", "run_due"]


@dataclass(frozen=True)
class Event:
    """Something the room is told about (``escalation_text.event_text``).

    ``kind`` is ``sent``, ``uncertain`` or ``failed`` (a step's send),
    ``moved_on`` (its wait ended unacknowledged) or ``exhausted``; ``page``
    is the page right after it (for ``moved_on``: right before moving on).
    """

    kind: str
    page: Page
    detail: str | None = None


@dataclass(frozen=True)
class SendOutcome:
    """What a send callback reports: ``outcome`` is sent / uncertain / failed."""

    outcome: str
    message_ids: tuple[str, ...] = ()
    detail: str | None = None
    to: str | None = None  # whom it went to, when not the recipient itself (a rotation)


def run_due(
    page: Page,
    clock: Callable[[], float],
    *,
    save: Callable[[Page], None],
    send: Callable[[Page, str], SendOutcome],
) -> tuple[Page, list[Event], Action]:
    """Apply every transition due now; return the page, what happened, and what is left.

    ``save`` must store the page durably (and may refuse a stale ``version``);
    it runs before and after each send.  ``send(page, recipient)`` sends
    ``escalation_text.sms_text(page)`` and maps every error to an outcome; if it raises, the
    step stays ``sending`` just as if the bot had died: ``recover_interrupted``.
    """
    events: list[Event] = []
    while True:
        now = clock()
        action = next_action(page, now)
        if action.kind == SEND:
            page = begin_send(page, now)
            save(page)
            result = send(page, page.recipient)
            page = record_send(
                page, result.outcome, clock(), message_ids=result.message_ids,
                detail=result.detail, to=result.to,
            )  # fmt: skip
            save(page)
            events.append(Event(result.outcome, page, result.detail))
        elif action.kind == ADVANCE:
            if page.send_state != FAILED:
                events.append(Event(MOVED_ON, page))
            page = advance(page, now)
            save(page)
        elif action.kind == EXHAUST:
            page = exhaust(page, now)
            save(page)
            events.append(Event(EXHAUSTED, page))
        else:
            return page, events, action
