"""Upgrade without loss: import, once, what the previous release kept elsewhere.

Release 1 kept contacts, groups, opt-outs, quotas, the audit log and follow-ups in errbot's
plugin storage (keys ``directory``, ``optouts``, ``quota``, ``audit``, ``followups``) and
inbound messages in a separate SQLite ledger (``<data_dir>/att_sms/inbox.sqlite3``). The
import runs in one transaction and is remembered in the store, so it happens once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import Database, Store, Tx
from .inbound import seq_of_handle

log = logging.getLogger(__name__)

IMPORTED_KEY = "legacy_imported"


def legacy_ledger_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "att_sms" / "inbox.sqlite3"


def import_legacy(
    store: Store, plugin_storage: Mapping[str, Any], ledger_path: Path
) -> dict[str, int] | None:
    """Import release-1 state into ``store`` once; counts per kind, or None if done before."""
    if store.get_meta(IMPORTED_KEY):
        return None
    counts: dict[str, int] = {}
    with store.transaction(durable=True) as tx:
        tx.lock("att_sms.legacy_import")  # two replicas starting together import once
        if store_has_meta(tx):
            return None
        counts.update(_import_storage(tx, plugin_storage))
        counts.update(_import_ledger(tx, ledger_path, store.database))
        store.set_meta(IMPORTED_KEY, json.dumps(counts), tx)
    if any(counts.values()):
        log.info("AttSms imported the previous release's state: %s", counts)
    return counts


def store_has_meta(tx: Tx) -> bool:
    return tx.one("SELECT 1 FROM att_meta WHERE key = ?", (IMPORTED_KEY,)) is not None


def _get(storage: Mapping[str, Any], key: str, default: Any) -> Any:
    try:
        value = storage[key]
    except Exception:  # absent, or a corrupt shelf entry: neither may stop the upgrade
        return default
    return value if isinstance(value, type(default)) else default


def _each(kind: str, items: Iterable[Any], insert: Callable[[Any], None]) -> int:
    """Insert every item; one malformed entry is logged and skipped, not fatal."""
    done = 0
    for item in items:
        try:
            insert(item)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            log.warning(
                "AttSms skipped a malformed %s entry of the previous release: %s", kind, exc
            )
            continue
        done += 1
    return done


def _import_storage(tx: Tx, storage: Mapping[str, Any]) -> dict[str, int]:
    book = _get(storage, "directory", {})
    quota = _get(storage, "quota", {})
    return {
        "contacts": _each("contact", (book.get("contacts") or {}).items(), _contact(tx)),
        "groups": _each("group", (book.get("groups") or {}).items(), _group(tx)),
        "optouts": _each("opt-out", _get(storage, "optouts", {}).items(), _optout(tx)),
        "sends": _each("quota", _quota_rows(quota), _send(tx)),
        "audit": _each("audit", _get(storage, "audit", []), _audit(tx)),
        "followups": _each("follow-up", _get(storage, "followups", []), _followup(tx)),
    }


def _contact(tx: Tx) -> Callable[[tuple[str, str]], None]:
    def insert(item: tuple[str, str]) -> None:
        name, tel = item
        tx.execute(
            "INSERT INTO att_contacts (name, tel) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (str(name), str(tel)),
        )

    return insert


def _group(tx: Tx) -> Callable[[tuple[str, list[str]]], None]:
    def insert(item: tuple[str, list[str]]) -> None:
        name, members = item
        tx.execute("INSERT INTO att_groups (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))
        for position, member in enumerate(members):
            tx.execute(
                "INSERT INTO att_group_members (group_name, position, member) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (name, position, str(member)),
            )

    return insert


def _optout(tx: Tx) -> Callable[[tuple[str, float]], None]:
    def insert(item: tuple[str, float]) -> None:
        tel, since = item
        tx.execute(
            "INSERT INTO att_optouts (tel, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (str(tel), float(since)),
        )

    return insert


def _quota_rows(quota: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """Each user's recent sends (counting for the rate limit) and each day's parts."""
    for user, times in (quota.get("users") or {}).items():
        for at in times:
            yield ("send", user, at)
    for day, units in (quota.get("days") or {}).items():
        yield ("day", day, units)


def _send(tx: Tx) -> Callable[[tuple[str, Any, Any]], None]:
    def insert(item: tuple[str, Any, Any]) -> None:
        kind, who, value = item
        if kind == "send":
            row = (str(who), float(value), 0)
        else:  # a day's parts, counted at the start of that UTC day
            start = datetime.strptime(who, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
            row = ("(imported)", start + 1, int(value))
            tx.execute(
                "INSERT INTO att_quota_days (day, units) VALUES (?, ?)"
                " ON CONFLICT (day) DO UPDATE SET units = att_quota_days.units + excluded.units",
                (who, int(value)),
            )
        tx.execute("INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?)", row)

    return insert


def _audit(tx: Tx) -> Callable[[Mapping[str, Any]], None]:
    def insert(entry: Mapping[str, Any]) -> None:
        tx.execute(
            "INSERT INTO att_audit (who, at, recipients, parts, message_ids, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                str(entry.get("who", "?")),
                float(entry.get("when", 0)),
                json.dumps([str(r) for r in entry.get("recipients", [])]),
                int(entry.get("parts", 1)),
                json.dumps([str(m) for m in entry.get("message_ids", [])]),
                str(entry.get("outcome", "")),
            ),
        )

    return insert


def _followup(tx: Tx) -> Callable[[Mapping[str, Any]], None]:
    def insert(task: Mapping[str, Any]) -> None:
        tx.execute(
            "INSERT INTO att_followups (message_id, target, addresses, started, next_at, attempts,"
            " last) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                str(task["message_id"]), str(task["target"]),
                json.dumps(list(task.get("addresses", []))), float(task["started"]),
                float(task["next_at"]), int(task.get("attempts", 0)),
                json.dumps(list(task.get("last", []))),
            ),
        )  # fmt: skip

    return insert


def _import_ledger(tx: Tx, path: Path, database: Database) -> dict[str, int]:
    """The old ledger's pending and posted messages, each keeping its reply handle."""
    none = {"inbound_pending": 0, "inbound_posted": 0}
    if not path.exists():
        return none
    try:
        old = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            seen = old.execute("SELECT key, posted_at, handle, sender_address FROM seen").fetchall()
            pending = old.execute(
                "SELECT seq, key, registration_id, message_id, sender_address, message,"
                " destination_address, date_time, fetched_at FROM pending ORDER BY seq"
            ).fetchall()
        finally:
            old.close()
    except sqlite3.Error as exc:
        log.warning("AttSms could not read the previous inbound ledger %s: %s", path, exc)
        return none
    # Rows that keep their number (pending seqs, posted handles) go first, so that a posted
    # row without a handle, numbered afresh, can never take a number an old handle means.
    for row in pending:
        tx.execute(
            "INSERT INTO att_inbound (seq, key, registration_id, message_id, sender_address,"
            " message, destination_address, date_time, fetched_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            row,
        )
    numbered = [(seq_of_handle(r[2] or ""), r) for r in seen]
    for seq, row in [(s, r) for s, r in numbered if s is not None]:
        _insert_posted(tx, seq, row)
    database.after_explicit_ids(tx, "att_inbound", "seq")
    for _, row in [(s, r) for s, r in numbered if s is None]:
        _insert_posted(tx, None, row)
    return {"inbound_pending": len(pending), "inbound_posted": len(seen)}


def _insert_posted(tx: Tx, seq: int | None, row: tuple[Any, ...]) -> None:
    key, posted_at, _handle, sender = row
    registration, _, message_id = key.partition("\x1f")
    columns = "key, registration_id, message_id, sender_address, message, fetched_at, posted_at"
    values: tuple[Any, ...] = (
        key,
        registration,
        message_id,
        sender or "",
        "",
        float(posted_at),
        float(posted_at),
    )
    if seq is not None:
        columns, values = "seq, " + columns, (seq, *values)
    marks = ", ".join("?" * len(values))
    tx.execute(
        f"INSERT INTO att_inbound ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING", values
    )
