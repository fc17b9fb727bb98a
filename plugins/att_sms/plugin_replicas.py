"""Replicas on one PostgreSQL store: which replica does the background work; being built."""

from __future__ import annotations


class ReplicaCoordination:
    """Mixed into the AttSms plugin: one replica at a time polls, posts and follows up."""

    def _may_work(self) -> bool:
        """True when this replica may poll the inbox, post, follow up and escalate now."""
        return True

    def _start_replicas(self, generation: int) -> None:
        """Start taking part in the replicas' coordination."""

    def _stop_replicas(self) -> None:
        """Stop taking part (let another replica take over at once)."""
