"""The SMS answers to acknowledgements by SMS (``ACK_CONFIRM``), for every page.

- an acknowledgement that took: ``Acknowledged P7: <text>`` to the acker;
- an acknowledgement of a page someone (or the same person) already acknowledged:
  ``P7 was already acknowledged by Bob 3 min ago``;
- an acknowledgement that matches nothing, from a number a page texted in the last day:
  one SMS saying what works, at most once per number per ``NO_MATCH_EVERY`` seconds.

The answers are owed in the store (``att_alert_sms``, unique keys) and sent by the plugin's
poller through the send pipeline, each at most once. Plain module: no errbot import.
"""

from __future__ import annotations

from collections.abc import Callable

from att_sms.store import Store, StoredInbound

from .escalation import ACKNOWLEDGED, Page, paged_numbers

__all__ = ["AckAnswers", "ago"]

NO_MATCH_EVERY = 3600.0
#: Only numbers a page texted this recently get the "nothing matched" answer.
PAGED_WITHIN = 86400.0
_TEXT_SHOWN = 100


def ago(seconds: float) -> str:
    """``40 s``, ``3 min``, ``2 h 5 min``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


class AckAnswers:
    """Owes the answers; ``name_of(tel)`` gives a contact's name for "acknowledged by"."""

    def __init__(self, store: Store, ack_word: str, name_of: Callable[[str], str | None]) -> None:
        self._store = store
        self._word = ack_word.upper()
        self._name_of = name_of

    def acknowledged(self, message: StoredInbound, sender: str, page: Page) -> None:
        text = f"Acknowledged {page.id}: {page.text[:_TEXT_SHOWN]}"
        self._owe(f"ack:{message.key}", page, sender, text)

    def not_acknowledged(self, message: StoredInbound, sender: str, named: str | None) -> None:
        """An ack word that acknowledged nothing: say why, if the sender was paged lately."""
        now = self._store.now()
        pages = [
            p for p in self._store.recent_pages(now - PAGED_WITHIN) if sender in paged_numbers(p)
        ]
        if named is not None:
            pages = [p for p in pages if p.id == named] or pages
        if not pages:
            return
        newest = max(pages, key=lambda p: (p.created_at, int(p.id[1:])))
        if newest.state == ACKNOWLEDGED and (named in (None, newest.id)):
            who = self._who(newest.acked_by, sender)
            text = (
                f"{newest.id} was already acknowledged by {who}"
                f" {ago(now - (newest.acked_at or now))} ago"
            )
            self._owe(f"ack:{message.key}", newest, sender, text)
            return
        prefix = f"nomatch:{sender}:"
        if self._store.sms_owed_since(prefix, now - NO_MATCH_EVERY):
            return
        if named is not None and named != newest.id:
            why = f"{named} was not sent to this number"
        else:
            why = f"{newest.id} is already closed ({newest.state})"
        if newest.state == "open":  # a named page that is not this number's
            why = f"{named} was not sent to this number; your open page is {newest.id}"
        text = f"Nothing acknowledged: {why}. Reply {self._word} P<n> to acknowledge an open page."
        self._owe(prefix + message.key, newest, sender, text)

    def _who(self, acked_by: str | None, sender: str) -> str:
        if acked_by == sender:
            return "you"
        if not acked_by:
            return "someone"
        return (self._name_of(acked_by) or acked_by.removeprefix("tel:"))[:40]

    def _owe(self, key: str, page: Page, tel: str, text: str) -> None:
        self._store.owe_sms(key=key, page=page, tel=tel, text=text)
