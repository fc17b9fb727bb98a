"""Delivery follow-ups: after a send, check its status until final, then post once.

Follow-ups are rows in the store, so they continue after a restart; a follow-up is
finished (deleted) only after its post was confirmed by the chat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from att_sms.carrier.client import DeliveryInfo
from att_sms.carrier.errors import AttSmsError, NotFoundError
from att_sms.chat.chat_posting import PostFailed
from att_sms.pages.delivery_loop import DeliveryLoop
from att_sms.sending.pipeline import FOLLOW_UP_FIRST
from att_sms.store import FollowUp

from .runtime import Runtime
from .sending import status_line
from .threads import ConversationThreads

log = logging.getLogger("errbot.plugins.AttSms")

FINAL_STATES = frozenset({"DeliveredToTerminal", "DeliveryImpossible"})
FOLLOW_UP_MAX_GAP = 300.0
FOLLOW_UP_TICK = 1.0  # how often due follow-ups are looked for
POST_RETRY = 30.0  # a follow-up whose post failed is tried again after this long


class FollowUps:
    """The follow-up poller: ``tick`` checks the due follow-ups and posts their updates."""

    def __init__(
        self, rt: Runtime, threads: ConversationThreads, *, may_work: Callable[[], bool]
    ) -> None:
        self._rt = rt
        self._threads = threads
        self._may_work = may_work

    def tick(self) -> None:
        """Check due follow-ups; post one update per message when final or given up."""
        if not self._may_work():
            return
        store = self._rt.store
        for task in store.due_follow_ups(store.now()):
            if not self._rt.current():
                return
            try:
                self._follow_one(task)
            except Exception:  # one bad task must not stop the others
                log.exception("AttSms follow-up of %s failed", task.message_id)

    def _follow_one(self, task: FollowUp) -> None:
        settings, client, store = self._rt.settings, self._rt.client, self._rt.store
        infos: list[DeliveryInfo] | None = None
        problem, gone = "", False
        try:
            infos = client.delivery_status(task.message_id)
        except NotFoundError as exc:
            problem, gone = f"the carrier does not know it ({exc})", True
        except AttSmsError as exc:
            problem = str(exc)
        now = store.now()
        if infos:
            task.last = [[i.address, i.status] for i in infos]
            DeliveryLoop(store).on_statuses(task.message_id, [i.status for i in infos])
        final = bool(infos) and all(i.status in FINAL_STATES for i in infos or ())
        if final or gone or now - task.started >= settings.follow_up_limit:
            try:
                self._threads.post_follow_up(task, follow_up_text(task, final, problem, now))
            except (PostFailed, ValueError) as exc:
                log.warning("AttSms follow-up of %s not posted yet: %s", task.message_id, exc)
                task.next_at = now + POST_RETRY
                store.reschedule_follow_up(task)
                return
            store.finish_follow_up(task.message_id)
            return
        task.attempts += 1
        task.next_at = now + min(FOLLOW_UP_FIRST * 2**task.attempts, FOLLOW_UP_MAX_GAP)
        store.reschedule_follow_up(task)


def follow_up_text(task: FollowUp, final: bool, problem: str, now: float) -> str:
    """A follow-up's post: the final states, or why following stopped and the last seen."""
    states = "; ".join(status_line(address, status) for address, status in task.last)
    if final:
        return f"Delivery of SMS {task.message_id}: {states}"
    minutes = max(1, round((now - task.started) / 60))
    why = f": {problem}" if problem else ""
    last = f" Last known: {states}" if states else " No delivery status was seen."
    return f"Stopped following SMS {task.message_id} after {minutes} min{why}.{last}"
