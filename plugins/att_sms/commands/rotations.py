"""Rotations in chat: ``!sms rotation add|remove``, ``!sms rotations``, ``!sms oncall``,
``!sms override``; and the poller that posts each handoff once (see docs/ROTATIONS.md).

The logic is ``att_sms.rotations.oncall.OnCallDesk``; this mixin only wires it to errbot. A handoff
is claimed in the store with its room post (``att_page_posts``, made by the pages' poller
with the chat's confirmation), so replicas and restarts post it once; with HANDOFF_SMS the
incoming person is texted through the send pipeline (opt-outs, quotas, audit).
"""

from __future__ import annotations

import logging
from typing import Any

from errbot import botcmd

from att_sms.rotations import RotationError
from att_sms.rotations.oncall import OnCallDesk
from att_sms.sending.pipeline import NotActive, SendRequest

log = logging.getLogger("errbot.plugins.AttSms")

HANDOFF_TICK = 2.0  # how often the poller looks for a handoff to post


class RotationCommands:
    """Mixed into the AttSms plugin: rotations, overrides, who is on call, handoff posts."""

    def _desk(self) -> OnCallDesk:
        store = self._sms_store
        if self._settings is None or store is None:
            raise NotActive
        return OnCallDesk(store, self._rules_or_default(), self._settings.timezone)

    def _check_room(self, room: str) -> None:
        try:
            self.build_identifier(room)
        except Exception as exc:  # ValueError and the backends' own errors
            raise RotationError(f"cannot post to room {room!r}: {exc}") from None

    def _rotation_command(self, run: Any) -> str:
        if self._settings is None:
            return self._not_configured()
        try:
            return run(self._desk())
        except NotActive:
            return "Nothing done: the plugin is being reconfigured; try again."

    @botcmd
    def sms_rotation_add(self, msg: Any, args: str) -> str:
        """<name> <member>[,<member>...] [--shift 1w] [--start YYYY-MM-DDTHH:MM] [--tz Zone] [--room #room]

        Creates or replaces a rotation: members (contacts or numbers) take turns, one shift
        each, handing off on the zone's wall clock (default: weekly, next Monday 09:00,
        TIMEZONE, this room). Its name is a recipient for !sms send and !sms page.
        """
        user, room = self._user_of(msg), self._reply_target(msg)
        return self._rotation_command(lambda d: d.add(args, user, room, self._check_room))

    @botcmd
    def sms_rotation_remove(self, msg: Any, args: str) -> str:
        """<name>: removes a rotation and its overrides."""
        return self._rotation_command(lambda d: d.remove(args, self._user_of(msg)))

    @botcmd
    def sms_rotations(self, msg: Any, args: str) -> str:
        """Lists the rotations: who is on call, until when (in the rotation's zone), who is next."""
        return self._rotation_command(lambda d: d.list())

    @botcmd
    def sms_oncall(self, msg: Any, args: str) -> str:
        """[<rotation>]: who is on call now (overrides included), until when, and who is next."""
        return self._rotation_command(lambda d: d.oncall(args))

    @botcmd
    def sms_override(self, msg: Any, args: str) -> str:
        """<rotation> <member> <duration|--until YYYY-MM-DDTHH:MM>: puts a member on call from now.

        The newest override wins over older ones and over the rotation.
        """
        return self._rotation_command(lambda d: d.override(args, self._user_of(msg)))

    @botcmd
    def sms_override_remove(self, msg: Any, args: str) -> str:
        """<rotation>: ends the override in force now."""
        return self._rotation_command(lambda d: d.end_override(args, self._user_of(msg)))

    # ----------------------------------------------------------------- handoffs

    def _start_handoffs(self, generation: int) -> None:
        self.start_poller(HANDOFF_TICK, self._handoffs_tick, args=(generation,))

    def _handoffs_tick(self, generation: int) -> None:
        """Claim and queue each new handoff's post; text the incoming person. Never raises."""
        if generation != self._generation or self._settings is None:
            return
        self._begin_command()
        try:
            if generation != self._generation or not self._may_work():
                return
            ctx = self._context()
            holder = getattr(self, "_holder", None) or "bot"
            for handoff in OnCallDesk(ctx.store, ctx.rules, ctx.settings.timezone).claim_handoffs(
                holder
            ):
                log.info("AttSms handoff of %s queued: %s", handoff.rotation, handoff.text)
                if ctx.settings.handoff_sms and handoff.tel:
                    request = SendRequest(
                        who=f"rotation:{handoff.rotation}", where=handoff.room,
                        text=handoff.sms, addresses=(handoff.tel,), again=True,
                    )  # fmt: skip
                    delivery = self._send_pipeline(ctx).deliver(request)
                    log.info("AttSms handoff SMS for %s: %s", handoff.rotation, delivery.reply)
        except NotActive:
            return
        except Exception:  # the poller must survive anything
            log.exception("AttSms handoff run failed unexpectedly")
        finally:
            self._end_command()
