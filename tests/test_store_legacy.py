"""Upgrade from release 1: its errbot storage and inbound ledger imported once, on both engines."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from att_sms.carrier.client import InboundMessage
from att_sms.sending import policy
from att_sms.store import FollowUp, Store, handle_for
from att_sms.store.legacy import IMPORTED_KEY, import_legacy, legacy_ledger_path

#: The fixtures engine, pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine

ALICE = "tel:+12125551234"
BOB = "tel:+13125550199"
UK = "tel:+442079460958"

# Release 1's ledger, as plugins/att_sms/inbox.py created it.
OLD_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    registration_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender_address TEXT NOT NULL,
    message TEXT NOT NULL,
    destination_address TEXT,
    date_time TEXT,
    fetched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    posted_at REAL NOT NULL,
    handle TEXT,
    sender_address TEXT
);
CREATE INDEX IF NOT EXISTS seen_handle ON seen (handle);
"""


def old_storage(now: float) -> dict[str, Any]:
    """Release 1's plugin storage: the values its errbot plugin kept under each key."""
    today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    return {
        "directory": {
            "contacts": {"zed": ALICE, "amy": BOB},
            "groups": {"oncall": ["zed", UK, "amy"], "empty": []},
        },
        "optouts": {BOB: 1_700_000_000.0},
        "quota": {"users": {"alice": [now - 120, now - 60]}, "days": {today: 7, "bad-day": 2}},
        "audit": [
            {
                "who": f"u{n}",
                "when": 1_700_000_000.0 + n,
                "recipients": [ALICE],
                "parts": n + 1,
                "message_ids": [f"id{n}"],
                "outcome": "sent",
            }
            for n in range(3)
        ],  # fmt: skip
        "followups": [
            {
                "message_id": "f1",
                "target": "#ops",
                "addresses": [ALICE],
                "started": 10.0,
                "next_at": 12.0,
                "attempts": 1,
                "last": [[ALICE, "DeliveredToNetwork"]],
            },
            {"message_id": "broken"},  # a malformed task is skipped, not fatal
        ],  # fmt: skip
    }


def write_old_ledger(path: Path) -> dict[str, str]:
    """A ledger with posted messages (with and without handles) and pending ones.

    Returns the handle each message was (or will be) posted with, by message id.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(OLD_LEDGER_SCHEMA)
    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('pending', 700)")
    handles: dict[str, str] = {}
    for n, mid in enumerate(["p1", "p2", "p3", "q1", "q2"], start=701):
        db.execute(
            "INSERT INTO pending (seq, key, registration_id, message_id, sender_address, message,"
            " destination_address, date_time, fetched_at) VALUES (?, ?, 'reg', ?, ?, ?, ?, ?, ?)",
            (n, f"reg\x1f{mid}", mid, ALICE, f"text {mid}", "tel:+15550001", "2026-01-01", 5.0),
        )
        handles[mid] = handle_for(n)
    for mid in ("p1", "p2", "p3"):  # posted: moved from pending to seen, with their handle
        db.execute("DELETE FROM pending WHERE message_id = ?", (mid,))
        db.execute(
            "INSERT INTO seen (key, posted_at, handle, sender_address) VALUES (?, 9.0, ?, ?)",
            (f"reg\x1f{mid}", handles[mid], BOB if mid == "p2" else ALICE),
        )
    # Posted by a release that kept no handles yet.
    db.execute("INSERT INTO seen (key, posted_at, handle, sender_address) VALUES (?, 3.0, NULL, ?)",
               ("reg\x1fancient", ALICE))  # fmt: skip
    db.commit()
    db.close()
    return handles


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    opened = engine.open()
    yield opened
    opened.close()


def test_everything_is_imported_once(engine: Engine, store: Store) -> None:
    now = store.now()
    ledger = legacy_ledger_path(engine.data_dir)
    handles = write_old_ledger(ledger)
    counts = import_legacy(store, old_storage(now), ledger)
    assert counts == {
        "contacts": 2, "groups": 2, "optouts": 1, "sends": 3, "audit": 3, "followups": 1,
        "inbound_pending": 2, "inbound_posted": 4,
    }  # fmt: skip
    assert store.get_meta(IMPORTED_KEY) is not None
    _check_imported(store, handles)
    assert import_legacy(store, old_storage(now), ledger) is None
    _check_imported(store, handles)  # nothing doubled


def _check_imported(store: Store, handles: dict[str, str]) -> None:
    assert store.directory() == {
        "contacts": {"zed": ALICE, "amy": BOB},
        "groups": {"oncall": ["zed", UK, "amy"], "empty": []},
    }
    assert store.name_of(BOB) == "amy"
    assert store.optouts() == [(BOB, 1_700_000_000.0)]
    assert [e["who"] for e in store.last_audit(10)] == ["u0", "u1", "u2"]
    assert store.last_audit(1)[0]["message_ids"] == ["id2"]
    assert store.due_follow_ups(100.0) == [
        FollowUp("f1", "#ops", [ALICE], 10.0, 12.0, 1, [[ALICE, "DeliveredToNetwork"]])
    ]
    pending = store.pending()
    assert [(r.message_id, r.handle, r.message) for r in pending] == [
        ("q1", handles["q1"], "text q1"),
        ("q2", handles["q2"], "text q2"),
    ]
    assert store.counts() == {"pending": 2, "seen": 4}
    for mid, sender in (("p1", ALICE), ("p2", BOB), ("q2", ALICE)):
        origin = store.origin_of(handles[mid])
        assert origin is not None and origin.sender_address == sender
        assert origin.registration_id == "reg"


def test_imported_quota_state_still_limits(engine: Engine, store: Store) -> None:
    import_legacy(store, old_storage(store.now()), legacy_ledger_path(engine.data_dir))
    with pytest.raises(policy.QuotaError) as rate:
        store.reserve_quota("alice", 1, rate_limit=2, daily_limit=0)
    assert rate.value.limit == "rate"
    with pytest.raises(policy.QuotaError) as daily:
        store.reserve_quota("bob", 2, rate_limit=0, daily_limit=8)
    assert daily.value.limit == "daily"
    store.reserve_quota("bob", 1, rate_limit=0, daily_limit=8)


def test_imported_messages_are_not_posted_again_and_new_ones_number_on(
    engine: Engine,
    store: Store,
) -> None:
    ledger = legacy_ledger_path(engine.data_dir)
    handles = write_old_ledger(ledger)
    import_legacy(store, {}, ledger)
    again = [InboundMessage(mid, "x", ALICE, None, None) for mid in ("p1", "q1", "ancient")]
    assert store.record_fetched("reg", again) == []
    [new] = store.record_fetched("reg", [InboundMessage("new", "x", ALICE, None, None)])
    assert new.seq > 705
    assert new.handle not in handles.values()
    assert store.origin_of(new.handle).sender_address == ALICE


def test_nothing_to_import_is_remembered_too(engine: Engine, store: Store) -> None:
    ledger = legacy_ledger_path(engine.data_dir)
    assert import_legacy(store, {}, ledger) == {
        "contacts": 0, "groups": 0, "optouts": 0, "sends": 0, "audit": 0, "followups": 0,
        "inbound_pending": 0, "inbound_posted": 0,
    }  # fmt: skip
    write_old_ledger(ledger)  # appearing later changes nothing: the import ran
    assert import_legacy(store, old_storage(store.now()), ledger) is None
    assert store.counts() == {"pending": 0, "seen": 0}


class CorruptShelf(Mapping[str, Any]):
    """Plugin storage whose audit entry cannot be read (a shelf left corrupt by a kill)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        if key == "audit":
            raise EOFError("pickle data was truncated")
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_unreadable_parts_are_skipped_and_the_rest_imported(engine: Engine, store: Store) -> None:
    ledger = legacy_ledger_path(engine.data_dir)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_bytes(b"not a database at all" * 100)
    values = old_storage(store.now())
    values["optouts"] = ["not", "a", "dict"]
    counts = import_legacy(store, CorruptShelf(values), ledger)
    assert counts is not None
    assert (counts["audit"], counts["optouts"], counts["inbound_posted"]) == (0, 0, 0)
    assert counts["contacts"] == 2 and store.name_of(ALICE) == "zed"


def test_replicas_starting_together_import_once(engine: Engine) -> None:
    ledger = legacy_ledger_path(engine.data_dir)
    write_old_ledger(ledger)
    stores = [engine.open() for _ in range(3)]
    results: list[Any] = []
    gate = threading.Barrier(len(stores))

    def run(store: Store) -> None:
        gate.wait()
        results.append(import_legacy(store, old_storage(store.now()), ledger))

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 3
        assert [r for r in results if r is not None][0]["audit"] == 3
        assert results.count(None) == 2
        assert len(stores[0].last_audit(100)) == 3
        assert stores[1].counts() == {"pending": 2, "seen": 4}
    finally:
        for s in stores:
            s.close()
