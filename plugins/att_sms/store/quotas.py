"""Senders' quotas in the store: the rate limit and the daily limit (``att_sends``).

A send reserves its units before it goes out (``reserve_quota``) and settles them once the
carrier answered (``settle_quota``). Quotas probe the ``att_sends`` rows of an index range and
keep one counter a day (``att_quota_days``), so the cost of a send does not grow with history
or traffic; ``att_sms.sending.policy`` decides from what they read.
"""

from __future__ import annotations

from typing import Any

from att_sms.sending import policy
from att_sms.text.common import UTC_DAY, utc_time

from .engine import Database, Tx

#: Send rows older than this are pruned (the daily limit needs one UTC day).
SENDS_KEPT = 2 * 86400.0
#: Old send rows are pruned on every PRUNE_EVERY-th reservation (windows skip them anyway).
PRUNE_EVERY = 100
#: Reservations remembered until settled (more are forgotten and read back when settled).
HELD_KEPT = 1000


class QuotaTables:
    """The quota part of the store (mixed into ``Store``)."""

    _db: Database
    _held: dict[int, tuple[int, float]]  # reservation id -> (units, at), set in Store.__init__

    def reserve_quota(
        self, user: str, units: int, rate_limit: int, daily_limit: int, tx: Tx | None = None
    ) -> int:
        """Check both limits and hold ``units`` for ``user``; the reservation's id.

        Raises ``policy.QuotaError`` (in ``tx``: the caller's transaction must then roll
        back, as leaving its ``with`` by the exception does). Settle it with
        ``settle_quota`` once the carrier answered, with what was billed (0 removes it: a
        refused send counts nothing). Five statements whatever the traffic: the day's
        counter is counted up and read in one upsert (a refusal rolls it back), and the
        rate limit probes for one row (``_quota_state``), reading the hour's sends only at
        the limit.
        """
        if tx is None:
            with self._db.transaction() as own:
                return self.reserve_quota(user, units, rate_limit, daily_limit, own)
        tx.lock("att_sends")
        now = self._db.now()
        day = _day(now)
        used = _count_day_units(tx, day, units)  # a refusal below rolls it back
        state = _quota_state(tx, user, now, rate_limit, {day: used})
        policy.check_quota(state, user, max(1, units), now, rate_limit, daily_limit)
        row = tx.one(
            "INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?) RETURNING id",
            (user, now, units),
        )
        assert row is not None
        if row[0] % PRUNE_EVERY == 0:  # old rows count in no window: prune now and then
            tx.execute("DELETE FROM att_sends WHERE at < ?", (now - SENDS_KEPT,))
        if len(self._held) >= HELD_KEPT:  # reservations of commands that died before settling
            self._held.clear()
        # What settle_quota may skip reading. Should the transaction roll back instead, the
        # entry is harmless: settling reads only reservations it was given, and a reused
        # id is written over here first.
        self._held[int(row[0])] = (units, now)
        return int(row[0])

    def settle_quota(self, reservation: int, units: int, tx: Tx | None = None) -> None:
        """Count ``units`` for a reservation; 0 forgets the send altogether."""
        if tx is None:
            with self._db.transaction() as own:
                self.settle_quota(reservation, units, own)
            return
        # A send billed what it reserved (the usual case): the row already says so, and what
        # this process reserved tells that without a read. Any other change reads the row.
        known = self._held.pop(reservation, None)
        if known is not None and units == known[0] and units > 0:
            return
        held = tx.one("SELECT units, at FROM att_sends WHERE id = ?", (reservation,))
        if held is None:
            return
        _add_day_units(tx, _day(float(held[1])), max(0, units) - int(held[0]))
        if units <= 0:
            tx.execute("DELETE FROM att_sends WHERE id = ?", (reservation,))
        else:
            tx.execute("UPDATE att_sends SET units = ? WHERE id = ?", (units, reservation))


def _day(when: float) -> str:
    return utc_time(when, UTC_DAY)


def _add_day_units(tx: Tx, day: str, units: int) -> None:
    if units:
        tx.execute(
            "INSERT INTO att_quota_days (day, units) VALUES (?, ?)"
            " ON CONFLICT (day) DO UPDATE SET units = att_quota_days.units + excluded.units",
            (day, units),
        )


def _count_day_units(tx: Tx, day: str, units: int) -> int:
    """Add ``units`` to ``day``'s counter in one statement; the units counted before them."""
    row = tx.one(
        "INSERT INTO att_quota_days (day, units) VALUES (?, ?)"
        " ON CONFLICT (day) DO UPDATE SET units = att_quota_days.units + excluded.units"
        " RETURNING units",
        (day, units),
    )
    assert row is not None
    return int(row[0]) - units


def _quota_state(
    tx: Tx, user: str, now: float, rate_limit: int, days: dict[str, int]
) -> dict[str, Any]:
    """What the limits look at, in ``policy``'s dict form (``days``: today's units so far).

    The rate limit refuses only when the user's ``rate_limit``-th newest send is inside
    the window: one probe for that row (an index walk in the database, no rows into
    Python), and only when it exists are the sends read (policy's reset time and count).
    Below the limit the list stays empty, which policy decides the same way, so a busy
    user's send costs about what a quiet one's does.
    """
    recent: list[float] = []
    since = now - policy.RATE_WINDOW
    if rate_limit > 0 and tx.one(
        "SELECT at FROM att_sends WHERE who = ? AND at > ? ORDER BY at DESC LIMIT 1 OFFSET ?",
        (user, since, rate_limit - 1),
    ):
        recent = sorted(
            float(r[0])
            for r in tx.all(
                "SELECT at FROM att_sends WHERE who = ? AND at > ? ORDER BY at DESC LIMIT ?",
                (user, since, rate_limit),
            )
        )
    return {"users": {user: recent}, "days": days}
