"""What a notification does to its alert group, as a pure function of the group's state.

- ``firing`` of a group never seen, or seen last resolved: **open** a page.
- ``firing`` while the group's page is open: **ignore** (same firing set) or post one
  **changed** line (the set of firing fingerprints changed). Nobody is paged again.
- ``firing`` after the page closed (acknowledged, cancelled, or nobody acknowledged):
  the same, until ``REPAGE_AFTER`` seconds after it closed; then **repage** (a new page).
- ``resolved`` of a group that is firing: **resolve** (close the page if still open, tell
  the room, text the people already paged). Otherwise **ignore**.
"""

from __future__ import annotations

from dataclasses import dataclass

from .payload import FIRING, RESOLVED, Notification

__all__ = [
    "CHANGED", "IGNORE", "OPEN_PAGE", "REPAGE", "RESOLVE", "Decision", "GroupState", "decide",
]  # fmt: skip

OPEN_PAGE, IGNORE, CHANGED, RESOLVE, REPAGE = "open", "ignore", "changed", "resolve", "repage"


@dataclass(frozen=True)
class GroupState:
    """An alert group as stored, with its page's state (``escalation.Page.state``)."""

    route: str
    group_key: str
    page_id: str
    status: str  # firing / resolved: the last notification's
    fingerprints: tuple[str, ...]
    page_open: bool
    page_ended_at: float | None = None


@dataclass(frozen=True)
class Decision:
    kind: str
    why: str


def decide(
    state: GroupState | None, notification: Notification, now: float, repage_after: float
) -> Decision:
    """The decision for ``notification`` given the group's stored ``state`` (None: new)."""
    if notification.status == RESOLVED:
        if state is None or state.status == RESOLVED:
            return Decision(IGNORE, "resolved, and no firing group is known")
        return Decision(RESOLVE, f"group resolved; page {state.page_id}")
    assert notification.status == FIRING
    if state is None:
        return Decision(OPEN_PAGE, "first firing notification of the group")
    if state.status == RESOLVED:
        return Decision(OPEN_PAGE, f"fired again after it was resolved (page {state.page_id})")
    changed = notification.firing_fingerprints != state.fingerprints
    if not state.page_open:
        ended = state.page_ended_at if state.page_ended_at is not None else now
        if now - ended >= repage_after:
            return Decision(
                REPAGE, f"still firing {int(now - ended)} s after page {state.page_id} closed"
            )
    if changed:
        return Decision(CHANGED, f"firing set changed; page {state.page_id}")
    return Decision(IGNORE, f"repeat of page {state.page_id}")
