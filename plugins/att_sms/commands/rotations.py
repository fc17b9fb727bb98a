"""Rotations in chat: ``!sms rotation add|remove``, ``!sms rotations``, ``!sms oncall``,
``!sms override``; and the poller that posts each handoff once (see docs/ROTATIONS.md).

The logic is ``att_sms.rotations.oncall.OnCallDesk``; this module only wires it to the
plugin. A handoff is claimed in the store with its room post (``att_page_posts``, made by the
pages' poller with the chat's confirmation), so replicas and restarts post it once; with
HANDOFF_SMS the incoming person is texted through the send pipeline (opt-outs, quotas, audit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from att_sms.rotations import RotationError
from att_sms.rotations.oncall import OnCallDesk
from att_sms.sending.pipeline import SendRequest

from .runtime import Runtime, reply_target, user_of
from .sending import SendDesk

log = logging.getLogger("errbot.plugins.AttSms")

HANDOFF_TICK = 2.0  # how often the poller looks for a handoff to post


class RotationDesk:
    """Rotations, overrides, who is on call; the poller that queues handoff posts."""

    def __init__(
        self,
        rt: Runtime,
        sending: SendDesk,
        *,
        may_work: Callable[[], bool],
        holder: Callable[[], str],
    ) -> None:
        self._rt = rt
        self._sending = sending
        self._may_work = may_work
        #: Who claims a handoff: this replica's id, or "bot" without replicas.
        self._holder = holder

    def _desk(self) -> OnCallDesk:
        return OnCallDesk(self._rt.store, self._rt.rules, self._rt.settings.timezone)

    def _check_room(self, room: str) -> None:
        try:
            self._rt.build_identifier(room)
        except Exception as exc:  # ValueError and the backends' own errors
            raise RotationError(f"cannot post to room {room!r}: {exc}") from None

    # ----------------------------------------------------------------- commands

    def rotation_add(self, msg: Any, args: str) -> str:
        """``!sms rotation add``: create or replace a rotation (posting to this room)."""
        user, room = user_of(msg), reply_target(msg)
        return self._desk().add(args, user, room, self._check_room)

    def rotation_remove(self, msg: Any, args: str) -> str:
        """``!sms rotation remove <name>``."""
        return self._desk().remove(args, user_of(msg))

    def rotations(self, msg: Any, args: str) -> str:
        """``!sms rotations``: every rotation, who is on call and who is next."""
        return self._desk().list()

    def oncall(self, msg: Any, args: str) -> str:
        """``!sms oncall [<rotation>]``."""
        return self._desk().oncall(args)

    def override(self, msg: Any, args: str) -> str:
        """``!sms override <rotation> <member> <duration|--until ...>``."""
        return self._desk().override(args, user_of(msg))

    def override_remove(self, msg: Any, args: str) -> str:
        """``!sms override remove <rotation>``: end the override in force now."""
        return self._desk().end_override(args, user_of(msg))

    # ----------------------------------------------------------------- handoffs

    def handoffs_tick(self) -> None:
        """Claim and queue each new handoff's post; text the incoming person. Never raises."""
        try:
            if not self._rt.current() or not self._may_work():
                return
            rt = self._rt
            for handoff in self._desk().claim_handoffs(self._holder()):
                log.info("AttSms handoff of %s queued: %s", handoff.rotation, handoff.text)
                if rt.settings.handoff_sms and handoff.tel:
                    request = SendRequest(
                        who=f"rotation:{handoff.rotation}", where=handoff.room,
                        text=handoff.sms, addresses=(handoff.tel,), again=True,
                    )  # fmt: skip
                    delivery = self._sending.pipeline().deliver(request)
                    log.info("AttSms handoff SMS for %s: %s", handoff.rotation, delivery.reply)
        except Exception:  # the poller must survive anything
            log.exception("AttSms handoff run failed unexpectedly")
