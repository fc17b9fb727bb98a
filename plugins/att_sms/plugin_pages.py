"""Escalating pages (``!sms page``): being built; see docs/ESCALATION.md."""

from __future__ import annotations


class PageCommands:
    """Mixed into the AttSms plugin: escalating pages."""

    def _start_pages(self, generation: int) -> None:
        """Start the escalation poller."""

    def _stop_pages(self) -> None:
        """Stop the escalation poller."""
