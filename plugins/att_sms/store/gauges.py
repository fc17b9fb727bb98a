"""What the metrics and probes read from the store, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["StoreGauges", "read_gauges"]


@dataclass(frozen=True)
class StoreGauges:
    """Counts the gauges show; reading them at all proves the store answers."""

    waiting: int  # inbound messages stored, not posted yet
    follow_ups: int  # sent messages whose delivery is still watched
    escalations: int  # open pages


def read_gauges(store: Any) -> StoreGauges:
    """One short transaction on ``store`` (a :class:`att_sms.store.Store`)."""
    with store.transaction() as tx:
        waiting = tx.scalar("SELECT COUNT(*) FROM att_inbound WHERE posted_at IS NULL", default=0)
        follow_ups = tx.scalar("SELECT COUNT(*) FROM att_followups", default=0)
        escalations = tx.scalar("SELECT COUNT(*) FROM att_pages WHERE state = 'open'", default=0)
    return StoreGauges(int(waiting), int(follow_ups), int(escalations))
