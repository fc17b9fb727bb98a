"""Room posts and SMS text for escalating pages (``att_sms.pages.escalation``).

Every part that came from outside (an acknowledging reply, a carrier's error
detail, contact names, chat user names, the page text) goes through
``formatting.neutralise``, so a post can never mention, break lines or mark up.
"""

from __future__ import annotations

from collections.abc import Mapping

from att_sms.pages.ack_matching import DEFAULT_ACK_WORDS
from att_sms.pages.escalation import (
    BUSY,
    EXHAUSTED,
    FAILED,
    MOVED_ON,
    SEND,
    SENT,
    UNCERTAIN,
    WAIT,
    Page,
    has_next,
    next_action,
)
from att_sms.pages.escalation_loop import Event
from att_sms.sending.recipients import ROTATION_PREFIX
from att_sms.text.common import format_elapsed, plural
from att_sms.text.formatting import neutralise
from att_sms.text.numbers import display_number

__all__ = [
    "acked_text", "cancelled_text", "event_text", "exhausted_text", "failed_text",
    "interrupted_text", "list_line", "moved_on_text", "paged_text",
    "sms_text", "uncertain_text",
]  # fmt: skip

Names = Mapping[str, str] | None


def party_name(party: str | None, names: Names = None) -> str:
    """A number with its contact name, or a chat user; neutralised."""
    if not party:
        return "someone"
    if party.startswith(ROTATION_PREFIX):
        return f"whoever is on call for {neutralise(party[len(ROTATION_PREFIX) :], max_length=40)}"
    if not party.startswith("tel:"):
        return neutralise(party, max_length=60)
    shown = neutralise(display_number(party), max_length=40)
    name = (names or {}).get(party)
    return f"{neutralise(name, max_length=60)} ({shown})" if name else shown


def _step_who(page: Page, names: Names = None) -> str:
    """The current step's recipient; for a rotation, whom it resolved to (if it did yet)."""
    target = page.recipient
    if not target.startswith(ROTATION_PREFIX):
        return party_name(target, names)
    rotation = neutralise(target[len(ROTATION_PREFIX) :], max_length=40)
    last = page.history[-1] if page.history else None
    if last and (last["step"], last["round"]) == (page.step, page.round) and last["to"] != target:
        return f"{party_name(last['to'], names)} for {rotation}"
    return f"whoever is on call for {rotation}"


def step_label(page: Page) -> str:
    text = f"step {page.number}/{page.total_steps}"
    return text + (f", round {page.round + 1}/{page.rounds}" if page.rounds > 1 else "")


def sms_text(page: Page, ack_word: str = DEFAULT_ACK_WORDS[0]) -> str:
    """The SMS a step sends: the page text and how to acknowledge."""
    return f"{page.id}: {page.text} (Reply {ack_word.upper()} {page.id} to acknowledge)"


def paged_text(page: Page, names: Names = None) -> str:
    return f"Page {page.id}: paged {_step_who(page, names)} ({step_label(page)})."


def uncertain_text(page: Page, names: Names = None, detail: str | None = None) -> str:
    why = f" ({neutralise(detail, max_length=200)})" if detail else ""
    then = "Moving on" if has_next(page) else "Closing the page"
    return (
        f"Page {page.id}: the SMS to {_step_who(page, names)} ({step_label(page)}) may or may not"
        f" have gone out{why}; it is not sent again. {then} in"
        f" {format_elapsed(page.escalate_after)} unless acknowledged."
    )


def failed_text(page: Page, names: Names = None, detail: str | None = None) -> str:
    why = f": {neutralise(detail, max_length=200)}" if detail else ""
    then = "moving on." if has_next(page) else "that was the last step."
    return f"Page {page.id}: could not page {_step_who(page, names)} ({step_label(page)}){why}; {then}"


def interrupted_text(page: Page, names: Names = None) -> str:
    """For a page ``recover_interrupted`` changed at start-up."""
    return (
        f"Page {page.id}: the bot stopped while paging {_step_who(page, names)}"
        f" ({step_label(page)}); that SMS may or may not have gone out and is not sent again."
    )


def moved_on_text(page: Page, names: Names = None) -> str:
    """Before ``advance``: the current step was not acknowledged in time."""
    return (
        f"Page {page.id}: {_step_who(page, names)} did not acknowledge within"
        f" {format_elapsed(page.escalate_after)}; moving on."
    )


def acked_text(page: Page, names: Names = None, reply: str | None = None) -> str:
    """After ``acknowledge``; ``reply`` is the acknowledging SMS, if any."""
    after = format_elapsed((page.acked_at or page.created_at) - page.created_at)
    said = f": {neutralise(reply, max_length=160)}" if reply and reply.strip() else ""
    return f"Page {page.id} acknowledged by {party_name(page.acked_by, names)} after {after}{said}"


def cancelled_text(page: Page) -> str:
    return f"Page {page.id} cancelled by {party_name(page.cancelled_by)}."


def exhausted_text(page: Page) -> str:
    failed = sum(1 for e in page.history if e["outcome"] == FAILED)
    steps = plural(page.total_steps, "step")
    note = f" ({failed} could not be sent)" if failed else ""
    return f"Page {page.id}: nobody acknowledged after {steps}{note}; the page is closed."


def list_line(page: Page, now: float, names: Names = None) -> str:
    """One line of ``!sms pages``: step, who was paged when, what is next, the text."""
    paged = ", ".join(
        f"{party_name(e['to'], names)} {format_elapsed(now - e['at'])} ago"
        + ("" if e["outcome"] == SENT else f" ({e['outcome']})")
        for e in page.history
    )
    action = next_action(page, now)
    if action.kind == WAIT and action.at is not None:
        upcoming = f"next step in {format_elapsed(action.at - now)}"
        if not has_next(page):
            upcoming = f"closes in {format_elapsed(action.at - now)}"
    else:
        upcoming = "sending now" if action.kind in (SEND, BUSY) else "due now"
    return (
        f"{page.id} ({step_label(page)}, open {format_elapsed(now - page.created_at)}):"
        f" {'paged ' + paged if paged else 'nobody paged yet'}; {upcoming}."
        f" Text: {neutralise(page.text, max_length=80)}"
    )


def event_text(event: Event, names: Names = None) -> str:
    """The room post for an ``Event`` from ``run_due``."""
    page = event.page
    if event.kind == SENT:
        return paged_text(page, names)
    if event.kind == UNCERTAIN:
        return uncertain_text(page, names, event.detail)
    if event.kind == FAILED:
        return failed_text(page, names, event.detail)
    if event.kind == MOVED_ON:
        return moved_on_text(page, names)
    if event.kind == EXHAUSTED:
        return exhausted_text(page)
    raise ValueError(f"unknown event kind {event.kind!r}")
