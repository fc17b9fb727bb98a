"""Upgrade without loss: a data directory written by the previous release (plugin state in
errbot's Shelf storage, inbound messages in the separate ledger file) is imported into the
store once, on the first start of this release."""

from __future__ import annotations

import shelve
import sqlite3
import time
from pathlib import Path

from botkit import Bot, sandbox_config

#: The previous release's ledger schema (plugins/att_sms/inbox.py of release 1).
OLD_LEDGER = """
CREATE TABLE pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
    registration_id TEXT NOT NULL, message_id TEXT NOT NULL, sender_address TEXT NOT NULL,
    message TEXT NOT NULL, destination_address TEXT, date_time TEXT, fetched_at REAL NOT NULL
);
CREATE TABLE seen (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, posted_at REAL NOT NULL,
    handle TEXT, sender_address TEXT
);
"""


def write_previous_release(data: Path) -> None:
    """What release 1 left in a bot's data directory."""
    data.mkdir(parents=True)
    now = time.time()
    with shelve.DbfilenameShelf(str(data / "AttSms.db"), protocol=2) as old:
        old["directory"] = {
            "contacts": {"alice": "tel:+12125550101", "bob": "tel:+12125550102"},
            "groups": {"oncall": ["alice", "bob", "tel:+12125550103"]},
        }
        old["optouts"] = {"tel:+12125550199": now - 3600}
        old["quota"] = {"users": {"gbin@localhost": [now - 60]}, "days": {}}
        old["audit"] = [
            {"who": "gbin@localhost", "when": now - 60, "recipients": ["tel:+12125550101"],
             "parts": 1, "message_ids": ["SMSold1"], "outcome": "sent"},
        ]  # fmt: skip
        old["followups"] = []
    ledger = data / "att_sms" / "inbox.sqlite3"
    ledger.parent.mkdir()
    with sqlite3.connect(ledger) as db:
        db.executescript(OLD_LEDGER)
        db.execute(
            "INSERT INTO seen (key, posted_at, handle, sender_address) VALUES (?, ?, ?, ?)",
            ("reg-ops\x1fold-posted", now - 100, "r7", "tel:+12125550177"),
        )
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('pending', 7)")
        db.execute(
            "INSERT INTO pending (key, registration_id, message_id, sender_address, message,"
            " fetched_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("reg-ops\x1fold-pending", "reg-ops", "old-pending", "tel:+12125550188",
             "stored by the previous release", now - 50),
        )  # fmt: skip


def test_previous_release_state_is_imported_once(
    env: None, tmp_path: Path, sandbox, client_id: str
) -> None:
    data = tmp_path / "data"
    write_previous_release(data)
    bot = Bot(data_dir=data, STORAGE="Shelf")
    try:
        config = sandbox_config(sandbox, client_id, FOLLOW_UP=False)
        assert bot.configure(config) == "Plugin configuration done."
        assert "alice +1 212-555-0101" in bot.ask("!sms contacts")
        assert "oncall: alice, bob, tel:+12125550103" in bot.ask("!sms groups")
        assert "+1 212-555-0199" in bot.ask("!sms optouts")
        assert "SMSold1" in bot.ask("!sms log 5")
        # the pending message of the old ledger is posted; its old handle answers its sender
        assert bot.wait_for_posts("stored by the previous release", timeout=10)
        assert bot.ask("!sms reply r7 we are on it").startswith("Sent to tel:+12125550177")
        assert bot.ask("!sms send 212-555-0199 hi").startswith(
            "Not sent: every recipient opted out"
        )
        bot.ask("!sms contact remove bob")
        assert "deactivated" in bot.ask("!plugin deactivate AttSms").lower()
        assert "activated" in bot.ask("!plugin activate AttSms").lower()
        # a second activation imports nothing again: bob stays removed
        assert "bob" not in bot.ask("!sms contacts")
    finally:
        bot.stop()
    assert len(bot.posts_containing("stored by the previous release")) == 1
