"""Room alerts about polling: when to say that SMS replies stopped, and that they came back.

Plain logic with the time passed in: the plugin gives, per registration, when its current
run of failed polls began, and posts the :class:`PollAlert` lines it gets back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from att_sms.text.common import format_duration

from .health import short_error

__all__ = ["PollAlert", "PollAlerts"]


@dataclass(frozen=True)
class PollAlert:
    """One line to post in the registration's room: ``kind`` is "down" or "recovered"."""

    registration: str
    kind: str
    text: str


class PollAlerts:
    """Decides when to say in the room that replies stopped, and when they came back.

    Per run of failures: one "down" line once it has lasted ``alert_after`` seconds,
    and one "recovered" line when it ends, only if "down" was said.
    """

    def __init__(self, alert_after: float = 600.0) -> None:
        if not alert_after >= 0:
            raise ValueError(f"alert_after must be a number >= 0, not {alert_after!r}")
        self.alert_after = alert_after
        self._alerted: dict[str, float] = {}

    def check(
        self,
        registration: str,
        failing_since: float | None,
        now: float,
        error: str | None = None,
    ) -> PollAlert | None:
        """The line to post now for ``registration``, if any (each at most once per run)."""
        if failing_since is None:
            since = self._alerted.pop(registration, None)
            if since is None:
                return None
            return PollAlert(
                registration,
                "recovered",
                f"SMS replies to registration {registration} are coming in again "
                f"(polling the carrier failed for {format_duration(now - since)}).",
            )
        if registration in self._alerted or now - failing_since < self.alert_after:
            return None
        self._alerted[registration] = failing_since
        reason = f" Last error: {short_error(error)}." if error else ""
        return PollAlert(
            registration,
            "down",
            f"SMS replies to registration {registration} are not coming in: polling the "
            f"carrier has failed for {format_duration(now - failing_since)}.{reason} The bot "
            "keeps trying and will say so here when replies come in again.",
        )

    def check_all(
        self,
        failing_since: Mapping[str, float | None],
        now: float,
        errors: Mapping[str, str] | None = None,
    ) -> list[PollAlert]:
        """:meth:`check` for every registration; forgets those no longer listed."""
        for gone in set(self._alerted) - set(failing_since):
            del self._alerted[gone]
        alerts = [
            self.check(reg, since, now, (errors or {}).get(reg))
            for reg, since in sorted(failing_since.items())
        ]
        return [alert for alert in alerts if alert is not None]

    def alerted(self) -> frozenset[str]:
        """Registrations whose "down" line was said and not yet followed by "recovered"."""
        return frozenset(self._alerted)
