"""The inbound ledger: stored before posting, posted once, bounded seen ids, survives reopen."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from att_sms.inbox import InboxLedger, message_key


@dataclass(frozen=True)
class Msg:
    message_id: str
    message: str = "hi"
    sender_address: str = "tel:+12125559876"
    destination_address: str | None = None
    date_time: str | None = "2026-04-19T10:00:00Z"


def test_record_pending_post(tmp_path: Path) -> None:
    ledger = InboxLedger(tmp_path / "l.sqlite3")
    added = ledger.record_fetched("r", [Msg("a"), Msg("b"), Msg("a")])
    assert [m.message_id for m in added] == ["a", "b"]
    assert [m.message_id for m in ledger.pending()] == ["a", "b"]
    assert ledger.mark_posted([added[0].key]) == 1
    assert [m.message_id for m in ledger.pending("r")] == ["b"]
    assert ledger.record_fetched("r", [Msg("a")]) == []  # re-delivered: seen
    assert ledger.counts() == {"pending": 1, "seen": 1}


def test_same_id_on_two_registrations_is_two_messages(tmp_path: Path) -> None:
    ledger = InboxLedger(tmp_path / "l.sqlite3")
    assert len(ledger.record_fetched("r1", [Msg("a")])) == 1
    assert len(ledger.record_fetched("r2", [Msg("a")])) == 1


def test_messages_without_id_dedupe_by_content(tmp_path: Path) -> None:
    ledger = InboxLedger(tmp_path / "l.sqlite3")
    assert len(ledger.record_fetched("r", [Msg(""), Msg("", message="other")])) == 2
    assert message_key("r", Msg("")) == message_key("r", Msg(""))


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    first = InboxLedger(path)
    first.record_fetched("r", [Msg("a"), Msg("b")])
    first.mark_posted([message_key("r", Msg("a"))])
    # no close(): as if the process died
    second = InboxLedger(path)
    assert [m.message_id for m in second.pending()] == ["b"]
    assert second.was_seen("r", Msg("a"))


def test_seen_set_is_bounded(tmp_path: Path) -> None:
    ledger = InboxLedger(tmp_path / "l.sqlite3", seen_limit=50)
    for i in range(200):
        added = ledger.record_fetched("r", [Msg(str(i))])
        ledger.mark_posted([m.key for m in added])
    assert ledger.counts() == {"pending": 0, "seen": 50}
    assert ledger.was_seen("r", Msg("199")) and not ledger.was_seen("r", Msg("0"))


def test_concurrent_writers(tmp_path: Path) -> None:
    ledger = InboxLedger(tmp_path / "l.sqlite3")

    def work(prefix: str) -> None:
        for i in range(100):
            added = ledger.record_fetched("r", [Msg(f"{prefix}{i}"), Msg("shared")])
            ledger.mark_posted([m.key for m in added])

    threads = [threading.Thread(target=work, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.counts() == {"pending": 0, "seen": 401}


def test_handles_lead_back_to_the_sender(tmp_path: Path) -> None:
    from att_sms.inbox import handle_for

    ledger = InboxLedger(tmp_path / "l.sqlite3")
    (stored,) = ledger.record_fetched("r", [Msg("a", sender_address="tel:+12125550111")])
    handle = handle_for(stored.seq)
    assert handle.startswith("r")
    assert ledger.sender_for_handle(handle) == "tel:+12125550111"  # still pending
    ledger.mark_posted([stored.key])
    assert ledger.sender_for_handle("#" + handle.upper()) == "tel:+12125550111"
    assert ledger.sender_for_handle("r-nope") is None
    assert [handle_for(n) for n in (0, 35, 36)] == ["r0", "rz", "r10"]
