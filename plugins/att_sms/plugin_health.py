"""Health and metrics (``!sms health``, the metrics endpoint): being built; see docs/OPERATIONS.md."""

from __future__ import annotations


class HealthCommands:
    """Mixed into the AttSms plugin: health, metrics and poll alerts."""

    def _start_health(self, generation: int) -> None:
        """Start the metrics endpoint and the poll-alert checks."""

    def _stop_health(self) -> None:
        """Stop the metrics endpoint."""
