"""Acknowledging pages by SMS reply, as a plain class: the inbound poster asks it for a note
per message before posting (``acknowledges page P7``), so the acknowledgement is saved, with
its room post queued, before the reply itself is shown. See docs/ESCALATION.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from att_sms.sending import recipients
from att_sms.settings import Settings
from att_sms.store import Store, StoredInbound
from att_sms.text.numbers import canonical_sender

from .ack_answers import AckAnswers
from .ack_matching import ack_target, is_ack
from .escalation import Page, acknowledge
from .escalation_text import acked_text
from .page_outcomes import ack_word

log = logging.getLogger("errbot.plugins.AttSms")

#: An acknowledgement that lost a race to another writer tries again this often.
CONFLICT_RETRIES = 5


def page_names(store: Store, page: Page) -> dict[str, str]:
    """Contact names of the page's numbers (for posts)."""
    numbers = [*page.recipients, page.acked_by or ""]
    found = {tel: store.name_of(tel) for tel in numbers if tel.startswith("tel:")}
    if any(recipients.rotation_of(r) for r in page.recipients):  # whoever a step reaches
        for name, tel in sorted(store.directory()["contacts"].items(), reverse=True):
            found[tel] = name  # the alphabetically first name of a number wins
    return {tel: name for tel, name in found.items() if name}


class SmsAcks:
    """Pages acknowledged by SMS replies.

    ``mark_ack(page_id, room, text)`` is told of the room post that acknowledges a page
    before it is queued (conversation threads show it in the channel); it must not raise.
    """

    def __init__(
        self, store: Store, settings: Settings, mark_ack: Callable[[str, str, str], None]
    ) -> None:
        self._store = store
        self._settings = settings
        self._mark_ack = mark_ack

    def notes(self, messages: list[StoredInbound]) -> dict[str, str]:
        """Acknowledge pages from ``messages``; a note for each acknowledging message's post."""
        notes: dict[str, str] = {}
        if not self._settings.ack_words:
            return notes
        for message in messages:
            try:
                note = self._acknowledge(message)
            except Exception:  # never hold back the inbound posts
                log.exception("AttSms could not check %s for an acknowledgement", message.key)
                continue
            if note:
                notes[message.key] = note
        return notes

    def _acknowledge(self, message: StoredInbound) -> str | None:
        store, settings = self._store, self._settings
        acks, named = is_ack(message.message, settings.ack_words)
        if not acks:
            return None
        earlier = store.page_acked_by_message(message.key)  # a post being retried
        if earlier is not None:
            return f"acknowledges page {earlier.id}"
        sender = canonical_sender(message.sender_address, settings.default_region)
        answers = (
            AckAnswers(store, ack_word(settings), store.name_of) if settings.ack_confirm else None
        )
        for _ in range(CONFLICT_RETRIES):
            page = ack_target(store.open_pages(), sender, named)
            if page is None:
                break
            acked = acknowledge(page, sender, store.now())
            text = acked_text(acked, page_names(store, acked), reply=message.message)
            self._mark_ack(acked.id, acked.room, text)
            if store.save_page(
                acked, expected_version=page.version, posts=[text], ack_key=message.key
            ):
                if answers is not None:
                    answers.acknowledged(message, sender, acked)
                return f"acknowledges page {acked.id}"
        if answers is not None:
            answers.not_acknowledged(message, sender, named)
        return f"not an acknowledgement: no open page {named} texted this number" if named else None
