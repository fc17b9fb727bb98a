"""What running a page produces, in pure functions: the room events a saved transition owes,
a step's send outcome from the send pipeline's result, and the replies about closed or
duplicate pages. ``plugin_pages`` wires them to the store, the carrier and the chat.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import sending
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
    Event,
    Page,
    SendOutcome,
)
from .escalation_text import acked_text, cancelled_text, exhausted_text, format_duration
from .formatting import neutralise

__all__ = [
    "closed_text",
    "duplicate_page_reply",
    "events_between",
    "refusal_detail",
    "step_outcome",
]

#: The send pipeline's whole-refusal reply starts with this.
_NOT_SENT = "Not sent: "


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


def refusal_detail(reply: str) -> str:
    """Why the send pipeline sent nothing, from its reply (for the room post)."""
    reason = reply[len(_NOT_SENT) :] if reply.startswith(_NOT_SENT) else reply
    if reason.startswith("every recipient opted out"):
        return "opted out (texted STOP)"
    return reason.strip().rstrip(".")


def step_outcome(reply: str, report: sending.SendReport | None) -> SendOutcome:
    """A step's outcome from ``_deliver``'s reply and report (one recipient).

    Nothing attempted or nothing taken by the carrier: failed; an uncertain request:
    uncertain (never sent again); anything the carrier took: sent.
    """
    if report is None:
        return SendOutcome(FAILED, detail=refusal_detail(reply))
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
    ago = format_duration(now - earlier.created_at)
    state = "open" if earlier.state == OPEN else earlier.state
    return (
        f"Not paged again: {neutralise(earlier.created_by, max_length=60)} paged the same text to"
        f" the same recipients {ago} ago (page {earlier.id}, {state}). Use {again_usage} to page"
        " anyway."
    )
