"""Closed loop on delivery: a page step whose SMS the carrier reports as undeliverable
(``DeliveryImpossible``) stops waiting for an acknowledgement that cannot come. The step
becomes failed, so the escalation poller moves on to the next step at once, and the page's
room is told, in the same transaction. For every page, from chat or from alerts.
Plain module: no errbot import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from att_sms.store import Store

from .escalation import FAILED, OPEN, SENT, UNCERTAIN, Page, has_next
from .escalation_text import Names, party_name, step_label

__all__ = ["UNDELIVERABLE", "DeliveryLoop", "undeliverable", "undeliverable_text"]

UNDELIVERABLE = "DeliveryImpossible"
CONFLICT_RETRIES = 5
_DETAIL = "not delivered (DeliveryImpossible)"


def undeliverable(page: Page, message_id: str, now: float) -> Page | None:
    """``page`` with its current step failed, if ``message_id`` is that step's SMS and the
    page still waits on it; else None (an earlier step, a closed page)."""
    if page.state != OPEN or page.send_state not in (SENT, UNCERTAIN):
        return None
    if message_id not in page.message_ids or not page.history:
        return None
    last = {**page.history[-1], "outcome": FAILED, "detail": _DETAIL}
    return dataclasses.replace(
        page,
        send_state=FAILED,
        step_started_at=now,
        history=[*page.history[:-1], last],
        version=page.version + 1,
    )


def undeliverable_text(page: Page, names: Names = None) -> str:
    then = "moving on now." if has_next(page) else "that was the last step."
    return (
        f"Page {page.id}: the SMS to {party_name(page.recipient, names)} ({step_label(page)}) could not be"
        f" delivered (the carrier says {UNDELIVERABLE}); {then}"
    )


class DeliveryLoop:
    """Applies delivery reports to the pages in ``store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def on_statuses(self, message_id: str, statuses: Iterable[str]) -> str | None:
        """The page whose step failed because of ``message_id``, if any."""
        if UNDELIVERABLE not in set(statuses):
            return None
        store = self._store
        for _ in range(CONFLICT_RETRIES):
            for page in store.open_pages():
                failed = undeliverable(page, message_id, store.now())
                if failed is None:
                    continue
                names = {t: n for t in page.recipients if (n := store.name_of(t))}
                text = undeliverable_text(failed, names)
                if store.save_page(failed, expected_version=page.version, posts=[text]):
                    return page.id
                break  # the page changed: read it again
            else:
                return None
        return None
