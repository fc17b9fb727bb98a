"""What running a page produces, in pure functions: the room events a saved transition owes,
a step's send outcome from the send pipeline's typed :class:`Delivery`, the page a command
starts, and the replies about started, closed or duplicate pages. ``commands.pages`` wires
them to the store, the carrier and the chat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from att_sms.sending import parts as sending
from att_sms.sending.pipeline import Delivery
from att_sms.settings import Settings
from att_sms.text.common import format_elapsed
from att_sms.text.formatting import neutralise

from .ack_matching import DEFAULT_ACK_WORDS
from .escalation import (
    ACKNOWLEDGED,
    CANCELLED,
    EXHAUSTED,
    FAILED,
    MOVED_ON,
    OPEN,
    SENDING,
    SENT,
    UNCERTAIN,
    Page,
    new_page,
)
from .escalation_loop import Event, SendOutcome
from .escalation_text import acked_text, cancelled_text, exhausted_text, list_line

__all__ = [
    "ack_word",
    "closed_text",
    "duplicate_page_reply",
    "events_between",
    "page_builder",
    "started_reply",
    "step_outcome",
]


def events_between(old: Page, new: Page) -> list[Event]:
    """The events ``run_due`` reports for the transition ``old`` -> ``new``.

    Derived from the two rows, so that the room post is queued in the very transaction
    that saves the change: a send's outcome, moving on (not after a failed step, whose
    post already said so), and the page closing unacknowledged.
    """
    events: list[Event] = []
    if old.send_state == SENDING and new.send_state in (SENT, UNCERTAIN, FAILED):
        detail = new.history[-1].get("detail") if new.history else None
        events.append(Event(new.send_state, new, detail))
    moved = (new.step, new.round) != (old.step, old.round)
    if moved and old.send_state != FAILED:
        events.append(Event(MOVED_ON, old))
    if old.state == OPEN and new.state == EXHAUSTED:
        events.append(Event(EXHAUSTED, new))
    return events


def refusal_detail(delivery: Delivery) -> str:
    """Why the send pipeline sent nothing (for the room post)."""
    if delivery.all_opted_out:
        return "opted out (texted STOP)"
    return (delivery.refused or delivery.reply).strip().rstrip(".")


def step_outcome(delivery: Delivery) -> SendOutcome:
    """A step's outcome from the send pipeline's delivery (one recipient).

    Nothing attempted or nothing taken by the carrier: failed; an uncertain request:
    uncertain (never sent again); anything the carrier took: sent.
    """
    report = delivery.report
    if report is None:
        return SendOutcome(FAILED, detail=refusal_detail(delivery))
    ids = tuple(report.message_ids)
    reasons = [r.reason for r in report.recipients if r.reason]
    reason = reasons[0] if reasons else report.stopped
    if report.addresses(sending.UNCERTAIN):
        return SendOutcome(UNCERTAIN, ids, reason)
    if ids:
        return SendOutcome(SENT, ids)
    return SendOutcome(FAILED, detail=reason)


def closed_text(page: Page, names: Mapping[str, str] | None = None) -> str:
    """Why nothing is done to a page that is no longer open."""
    if page.state == ACKNOWLEDGED:
        said = acked_text(page, names)
    elif page.state == CANCELLED:
        said = cancelled_text(page)
    else:
        said = exhausted_text(page)
    return f"Nothing to do: {said}"


def duplicate_page_reply(earlier: Page, now: float, again_usage: str) -> str:
    """The reply to a page that repeats ``earlier`` within the de-duplication window."""
    ago = format_elapsed(now - earlier.created_at)
    state = "open" if earlier.state == OPEN else earlier.state
    return (
        f"Not paged again: {neutralise(earlier.created_by, max_length=60)} paged the same text to"
        f" the same recipients {ago} ago (page {earlier.id}, {state}). Use {again_usage} to page"
        " anyway."
    )


def ack_word(settings: Settings) -> str:
    """The word the SMS tells people to reply with."""
    return (settings.ack_words or DEFAULT_ACK_WORDS)[0]


def page_builder(
    room: str, text: str, recipients: list[str], user: str, settings: Settings
) -> Callable[[int, float], Page]:
    """Makes the page once the store gave it a number and a time."""

    def build(number: int, now: float) -> Page:
        return new_page(
            number, room, text, recipients, now, created_by=user,
            escalate_after=settings.escalate_after, rounds=settings.escalate_rounds,
        )  # fmt: skip

    return build


def started_reply(page: Page, texts: list[str], cost: str | None, now: float) -> str:
    """The reply to !sms page: what its first run did (or where the page stands)."""
    lines = texts or [f"Page {page.id} started: " + list_line(page, now)]
    if cost:
        lines.append(f"Each SMS of this page: {cost}.")
    return "\n".join(lines)
