"""Escalating pages (``!sms page``): the state machine, with every time passed in.

A page texts its recipients one step at a time, in order, ``rounds`` passes
through the list, ``escalate_after`` seconds apart, until someone
acknowledges, someone cancels it, or the steps run out (``exhausted``).

A ``Page`` is a plain record whose fields map 1:1 to a table row (lists as
JSON).  Transitions return a new ``Page`` with ``version`` increased, so a
store can refuse a write that lost a race (``WHERE version = ?``).

No step is ever sent twice nor skipped, across restarts too: a step goes
``pending`` -> ``sending`` (saved BEFORE the SMS goes out) -> ``sent``,
``uncertain`` or ``failed`` (saved after).  A page found ``sending`` at
start-up may or may not have gone out: ``recover_interrupted`` makes it
``uncertain`` (never resent; the room is told) and escalation goes on after
the usual wait.  An uncertain step waits like a sent one; a failed step (the
carrier refused it, an opt-out, a quota) moves on at once.

Running the due transitions of a page (``run_due``) is ``att_sms.pages.escalation_loop``;
matching an acknowledgement by SMS to its page is ``att_sms.pages.ack_matching``. Chat texts
for all of this are in ``att_sms.pages.escalation_text``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACKNOWLEDGED", "ADVANCE", "BUSY", "CANCELLED",
    "DEFAULT_ESCALATE_AFTER", "DEFAULT_ESCALATE_ROUNDS", "EXHAUST", "EXHAUSTED", "FAILED",
    "MOVED_ON", "NOTHING", "OPEN", "PENDING", "SEND", "SENDING", "SENT", "UNCERTAIN", "WAIT",
    "Action", "EscalationError", "Page", "acknowledge",
    "advance", "begin_send", "cancel", "exhaust", "has_next", "new_page",
    "next_action", "page_id", "paged_numbers", "parse_page_id", "record_send",
    "recover_interrupted", "wait_over_at",
]  # fmt: skip

OPEN, ACKNOWLEDGED, CANCELLED, EXHAUSTED = "open", "acknowledged", "cancelled", "exhausted"
STATES = (OPEN, ACKNOWLEDGED, CANCELLED, EXHAUSTED)
PENDING, SENDING, SENT, UNCERTAIN, FAILED = "pending", "sending", "sent", "uncertain", "failed"
SEND_STATES = (PENDING, SENDING, SENT, UNCERTAIN, FAILED)
#: What ``next_action`` asks for.
SEND, WAIT, ADVANCE, EXHAUST, BUSY, NOTHING = "send", "wait", "advance", "exhaust", "busy", "none"
#: Event kinds besides the send outcomes.
MOVED_ON = "moved_on"

DEFAULT_ESCALATE_AFTER = 300
DEFAULT_ESCALATE_ROUNDS = 1

_PAGE_ID = re.compile(r"[Pp]?(\d{1,9})")


class EscalationError(ValueError):
    """A transition that the page's state does not allow, or a malformed page row."""


@dataclass
class Page:
    """One page; ``step`` and ``round`` are 0-based, times are epoch seconds."""

    id: str
    room: str
    text: str
    recipients: list[str]
    created_at: float
    created_by: str
    escalate_after: float
    rounds: int
    step: int = 0
    round: int = 0
    step_started_at: float | None = None
    state: str = OPEN
    acked_by: str | None = None
    acked_at: float | None = None
    cancelled_by: str | None = None
    ended_at: float | None = None
    send_state: str = PENDING
    message_ids: list[str] = field(default_factory=list)
    #: One entry per finished step: {"to", "round", "step", "at", "outcome", "ids", "detail"}.
    history: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0

    @property
    def recipient(self) -> str:
        """The current step's recipient."""
        return self.recipients[self.step]

    @property
    def number(self) -> int:
        """The current step counted over all rounds, 1-based."""
        return self.round * len(self.recipients) + self.step + 1

    @property
    def total_steps(self) -> int:
        return self.rounds * len(self.recipients)

    def to_row(self) -> dict[str, Any]:
        """The record as a JSON-compatible dict (deep copy)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Page:
        """Rebuild a page from ``to_row()``; ``EscalationError`` if it is not one."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(row) != names:
            raise EscalationError(f"page row has fields {sorted(row)}, expected {sorted(names)}")
        page = cls(**{name: row[name] for name in names})
        _check_page(page)
        return dataclasses.replace(
            page,
            recipients=list(page.recipients),
            message_ids=list(page.message_ids),
            history=[dict(entry) for entry in page.history],
        )


def _check_page(page: Page) -> None:
    problems = []
    if not isinstance(page.id, str) or parse_page_id(page.id) != page.id:
        problems.append(f"id {page.id!r}")
    if not all(isinstance(n, int) for n in (page.step, page.round, page.version)):
        raise EscalationError(f"bad page {page.id!r}: step, round and version must be integers")
    if not isinstance(page.recipients, list) or not all(
        isinstance(r, str) and r for r in page.recipients
    ):
        raise EscalationError(f"bad page {page.id!r}: recipients {page.recipients!r}")
    if not page.recipients:
        problems.append("no recipients")
    if not isinstance(page.rounds, int) or page.rounds < 1:
        problems.append(f"rounds {page.rounds!r}")
    if not isinstance(page.escalate_after, int | float) or page.escalate_after < 0:
        problems.append(f"escalate_after {page.escalate_after!r}")
    if page.state not in STATES or page.send_state not in SEND_STATES:
        problems.append(f"state {page.state!r}/{page.send_state!r}")
    if not (0 <= page.step < max(1, len(page.recipients)) and 0 <= page.round < page.rounds):
        problems.append(f"step {page.step!r} round {page.round!r}")
    if problems:
        raise EscalationError(f"bad page {page.id!r}: {', '.join(problems)}")


def page_id(number: int) -> str:
    """``P7`` for 7."""
    if number < 1:
        raise ValueError("page numbers start at 1")
    return f"P{number}"


def parse_page_id(text: str, *, bare: bool = False) -> str | None:
    """``"P7"`` for ``P7``, ``p7``, ``#P7`` (and ``7`` when ``bare``), else ``None``."""
    text = text.strip().lstrip("#")
    match = _PAGE_ID.fullmatch(text)
    if not match or (not bare and text[:1] not in "Pp") or int(match[1]) < 1:
        return None
    return page_id(int(match[1]))


def new_page(
    number: int,
    room: str,
    text: str,
    recipients: Sequence[str],
    now: float,
    *,
    created_by: str,
    escalate_after: float = DEFAULT_ESCALATE_AFTER,
    rounds: int = DEFAULT_ESCALATE_ROUNDS,
) -> Page:
    """An open page at step 1; repeated recipients are paged once, at their first place."""
    ordered = list(dict.fromkeys(recipients))
    page = Page(page_id(number), room, text, ordered, now, created_by, escalate_after, rounds)
    _check_page(page)
    return page


# -- what to do next -----------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """``kind`` is send / wait / advance / exhaust / busy / none; ``at`` is when
    to look again (wait), ``recipient`` whom to page (send)."""

    kind: str
    at: float | None = None
    recipient: str | None = None


def has_next(page: Page) -> bool:
    """Whether a step follows the current one."""
    return page.number < page.total_steps


def wait_over_at(page: Page) -> float:
    """When the current step's wait ends (now for a failed step)."""
    if page.send_state == FAILED:
        return page.step_started_at or 0.0
    return (page.step_started_at or 0.0) + page.escalate_after


def next_action(page: Page, now: float) -> Action:
    """What the page needs at ``now``.  ``busy``: a send is in flight (or was
    interrupted: call ``recover_interrupted`` at start-up); never send it again."""
    if page.state != OPEN:
        return Action(NOTHING)
    if page.send_state == PENDING:
        return Action(SEND, recipient=page.recipient)
    if page.send_state == SENDING:
        return Action(BUSY)
    due = wait_over_at(page)
    if now < due:
        return Action(WAIT, at=due)
    return Action(ADVANCE if has_next(page) else EXHAUST)


# -- transitions -----------------------------------------------------------------


def _changed(page: Page, **changes: Any) -> Page:
    return dataclasses.replace(page, version=page.version + 1, **changes)


def _require(page: Page, states: Iterable[str], send_states: Iterable[str], doing: str) -> None:
    if page.state not in states:
        raise EscalationError(f"page {page.id} is {page.state}: cannot {doing}")
    if page.send_state not in send_states:
        raise EscalationError(f"page {page.id} step is {page.send_state}: cannot {doing}")


def begin_send(page: Page, now: float) -> Page:
    """Mark the current step as being sent: save this BEFORE sending."""
    _require(page, [OPEN], [PENDING], "send")
    return _changed(page, send_state=SENDING, step_started_at=now, message_ids=[])


def record_send(
    page: Page,
    outcome: str,
    now: float,
    *,
    message_ids: Sequence[str] = (),
    detail: str | None = None,
    to: str | None = None,
) -> Page:
    """The send's outcome (sent / uncertain / failed); also on a page closed meanwhile.

    ``to`` is whom the step texted when its recipient was resolved at send time (a
    rotation's ``rotation:<name>`` -> whoever was on call); the history keeps it.
    """
    if outcome not in (SENT, UNCERTAIN, FAILED):
        raise EscalationError(f"unknown send outcome {outcome!r}")
    _require(page, STATES, [SENDING], "record a send")
    entry = {
        "to": to or page.recipient, "round": page.round, "step": page.step, "at": now,
        "outcome": outcome, "ids": list(message_ids), "detail": detail,
    }  # fmt: skip
    return _changed(
        page,
        send_state=outcome,
        step_started_at=now,
        message_ids=list(message_ids),
        history=[*page.history, entry],
    )


def recover_interrupted(page: Page, now: float) -> Page:
    """A step found ``sending`` (the bot died or the send raised) becomes ``uncertain``.

    Its wait counts from when the send began.  Pages in any other state come back unchanged.
    """
    if page.send_state != SENDING:
        return page
    started = page.step_started_at if page.step_started_at is not None else now
    recovered = record_send(page, UNCERTAIN, now, detail="interrupted")
    return dataclasses.replace(recovered, step_started_at=started)


def advance(page: Page, now: float) -> Page:
    """Move to the next step once the current one is done with."""
    _require(page, [OPEN], [SENT, UNCERTAIN, FAILED], "move on")
    if not has_next(page) or now < wait_over_at(page):
        raise EscalationError(f"page {page.id} cannot move on yet")
    step, round_ = page.step + 1, page.round
    if step == len(page.recipients):
        step, round_ = 0, round_ + 1
    return _changed(
        page, step=step, round=round_, send_state=PENDING, step_started_at=None, message_ids=[]
    )


def exhaust(page: Page, now: float) -> Page:
    """Close the page after its last step's wait: nobody acknowledged."""
    _require(page, [OPEN], [SENT, UNCERTAIN, FAILED], "close")
    if has_next(page) or now < wait_over_at(page):
        raise EscalationError(f"page {page.id} has steps or time left")
    return _changed(page, state=EXHAUSTED, ended_at=now)


def acknowledge(page: Page, by: str, now: float) -> Page:
    """Acknowledged by ``by`` (a ``tel:`` number or a chat user)."""
    _require(page, [OPEN], SEND_STATES, "acknowledge")
    return _changed(page, state=ACKNOWLEDGED, acked_by=by, acked_at=now, ended_at=now)


def cancel(page: Page, by: str, now: float) -> Page:
    """Stopped from chat by ``by``."""
    _require(page, [OPEN], SEND_STATES, "cancel")
    return _changed(page, state=CANCELLED, cancelled_by=by, ended_at=now)


def paged_numbers(page: Page) -> list[str]:
    """Numbers this page has texted (or may have: sending, uncertain), in order."""
    numbers = [e["to"] for e in page.history if e["outcome"] in (SENT, UNCERTAIN)]
    if page.send_state == SENDING:
        numbers.append(page.recipient)
    return list(dict.fromkeys(numbers))
