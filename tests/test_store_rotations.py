"""Rotations in the store, on SQLite and on a real PostgreSQL server: one namespace with
contacts and groups, audited changes, overrides, on-call resolution, handoff claims."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from att_sms.rotations.oncall import OnCallDesk
from att_sms.sending import directory, recipients
from att_sms.store import RotationRecord, RotationRefused, Store
from att_sms.text.numbers import NumberRules

pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine

ALICE, BOB = "tel:+12125550101", "tel:+12125550102"
CAROL = "tel:+12125550103"
RULES = NumberRules()


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    opened = engine.open()
    opened.edit_directory(lambda book: directory.add_contact(book, "alice", ALICE, RULES))
    opened.edit_directory(lambda book: directory.add_contact(book, "bob", BOB, RULES))
    opened.edit_directory(lambda book: directory.add_group(book, "ops", ["alice"], RULES))
    yield opened
    opened.close()


def record(store: Store, name: str = "primary", members=("alice", "bob"), **kw) -> RotationRecord:
    """A UTC rotation whose first handoff is half an hour from now: alice is on call."""
    start = datetime.fromtimestamp(store.now(), UTC).replace(tzinfo=None, second=0, microsecond=0)
    values = {
        "start": start - timedelta(minutes=30), "shift": timedelta(hours=1), "zone": "UTC",
        "room": "#ops", "created_by": "gbin", "created_at": 0.0,
    }  # fmt: skip
    values.update(kw)
    return RotationRecord(name, tuple(members), **values)


def test_a_rotation_is_saved_replaced_listed_and_audited(store: Store) -> None:
    assert store.save_rotation(record(store)) is False
    assert store.save_rotation(record(store, members=("bob", CAROL), created_by="kim")) is True
    (saved,) = store.rotations()
    assert (saved.name, saved.members, saved.zone, saved.room) == (
        "primary",
        ("bob", CAROL),
        "UTC",
        "#ops",
    )
    assert saved.created_by == "kim" and abs(saved.created_at - store.now()) < 5
    assert store.get_rotation("primary") == saved and store.get_rotation("nope") is None
    log = store.last_audit(2)
    assert [(e["who"], e["outcome"].split(":")[0]) for e in log] == [
        ("gbin", "rotation primary added"),
        ("kim", "rotation primary replaced"),
    ]
    assert log[1]["recipients"] == ["bob", CAROL] and log[1]["parts"] == 0


def test_names_are_shared_with_contacts_and_groups(store: Store) -> None:
    for taken, what in (("alice", "contact"), ("ops", "group")):
        with pytest.raises(RotationRefused, match=f"already a {what}"):
            store.save_rotation(record(store, name=taken))
    with pytest.raises(RotationRefused, match="unknown contact 'zed'"):
        store.save_rotation(record(store, members=("alice", "zed")))
    assert store.rotations() == []
    store.save_rotation(record(store))
    with pytest.raises(directory.DirectoryError, match="'primary' is already a rotation"):
        store.edit_directory(lambda book: directory.add_contact(book, "primary", CAROL, RULES))
    with pytest.raises(directory.DirectoryError, match="'primary' is already a rotation"):
        store.edit_directory(lambda book: directory.add_group(book, "primary", ["bob"], RULES))
    with pytest.raises(directory.DirectoryError, match="a group cannot contain a rotation"):
        store.edit_directory(lambda book: directory.add_group(book, "ops", ["primary"], RULES))


def test_a_contact_a_rotation_uses_cannot_be_removed(store: Store) -> None:
    store.save_rotation(record(store))
    store.save_rotation(record(store, name="secondary", members=("bob",)))
    with pytest.raises(directory.DirectoryError) as info:
        store.edit_directory(lambda book: directory.remove_contact(book, "bob"))
    assert str(info.value) == (
        "contact 'bob' is in rotation primary, secondary: change or remove the rotation first"
    )
    assert store.directory()["contacts"]["bob"] == BOB
    assert store.remove_rotation("secondary", "gbin") and store.remove_rotation("primary", "gbin")
    assert not store.remove_rotation("primary", "gbin")
    store.edit_directory(lambda book: directory.remove_contact(book, "bob"))
    assert store.last_audit(1)[0]["outcome"] == "rotation primary removed"


def test_a_rotation_resolves_to_whoever_is_on_call(store: Store) -> None:
    store.save_rotation(record(store, members=("alice", BOB)))
    book = store.directory()
    assert book["rotations"] == {"primary": ["alice", BOB]}
    assert book["oncall"] == {"primary": "alice"}
    assert recipients.resolve(book, ["primary", "bob"], RULES) == [
        recipients.Recipient(ALICE, "primary:alice"),
        recipients.Recipient(BOB, "bob"),
    ]
    kept = recipients.resolve(book, ["primary", "bob"], RULES, keep_rotations=True)
    assert [r.tel for r in kept] == ["rotation:primary", BOB]
    assert recipients.oncall_target(book, "rotation:primary", RULES).tel == ALICE
    now = store.now()
    store.add_override("primary", BOB, now - 1, now + 600, "kim")  # a number, not a contact
    assert recipients.oncall_target(store.directory(), "rotation:primary", RULES).tel == BOB
    store.add_override("primary", "alice", now - 1, now + 60, "lee")  # the newest wins
    assert store.directory()["oncall"] == {"primary": "alice"}
    ended = store.end_overrides("primary", "kim")
    assert [o.member for o in ended] == [BOB, "alice"]
    assert all(o.end <= store.now() for o in store.overrides("primary"))
    assert store.directory()["oncall"] == {"primary": "alice"}
    outcomes = [e["outcome"] for e in store.last_audit(3)]
    assert outcomes[0].startswith("override of rotation primary: tel:+12125550102 from")
    assert outcomes[2] == "override of rotation primary ended"
    store.remove_rotation("primary", "gbin")
    with pytest.raises(directory.DirectoryError, match="'primary' no longer exists"):
        recipients.oncall_target(store.directory(), "rotation:primary", RULES)
    assert "rotations" not in store.directory()


def test_an_override_needs_a_rotation_and_a_known_member(store: Store) -> None:
    now = store.now()
    with pytest.raises(RotationRefused, match="no rotation 'primary'"):
        store.add_override("primary", "alice", now, now + 60, "kim")
    store.save_rotation(record(store))
    with pytest.raises(RotationRefused, match="unknown contact 'zed'"):
        store.add_override("primary", "zed", now, now + 60, "kim")
    assert store.overrides("primary") == [] and store.end_overrides("primary", "kim") == []


def test_a_handoff_is_claimed_once_across_replicas(engine: Engine, store: Store) -> None:
    store.save_rotation(record(store))
    replica = engine.open()
    post = {"room": "#ops", "text": "primary: bob is on call"}
    try:
        assert store.claim_handoff("primary", 1_800_000_000.0, "a", **post)
        assert not replica.claim_handoff("primary", 1_800_000_000.0, "b", **post)
        assert replica.claim_handoff("primary", 1_800_003_600.0, "b", **post)
        queued = store.pending_page_posts()
        assert [(p.page_id, p.room, p.text) for p in queued] == [
            ("rotation:primary", "#ops", "primary: bob is on call")
        ] * 2  # one post per handoff, made with the pages' posts
        store.remove_rotation("primary", "gbin")  # markers go with the rotation
        assert store.claim_handoff("primary", 1_800_003_600.0, "a", **post)
    finally:
        replica.close()


def test_replicas_post_each_handoff_once_and_only_the_latest(engine: Engine, store: Store) -> None:
    """Two replicas' desks race for the handoffs after a long pause: one post, the current one."""
    replica = engine.open()
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp()
    clock = {"now": start - 60}
    for opened in (store, replica):
        opened.database.now = lambda: clock["now"]  # the store's clock, under the test's control
    try:
        store.save_rotation(
            record(store, start=datetime(2026, 12, 7, 9, 0), shift=timedelta(hours=1))
        )
        desks = [OnCallDesk(s, RULES, "UTC") for s in (store, replica)]
        assert [d.claim_handoffs("x") for d in desks] == [[], []]  # no handoff since saved
        clock["now"] = start + 3.5 * 3600  # down over three handoffs (10:00, 11:00, 12:00)
        results: list[list] = []
        threads = [
            threading.Thread(target=lambda d=d: results.append(d.claim_handoffs(str(id(d)))))
            for d in desks
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        claimed = [h for result in results for h in result]
        assert [(h.rotation, h.at, h.tel) for h in claimed] == [("primary", start + 3 * 3600, BOB)]
        assert [p.text for p in store.pending_page_posts()] == [
            "primary: bob is on call until Mon 7 Dec 13:00 UTC (was alice)"
        ]
        assert claimed[0].sms == "primary: you are on call until Mon 7 Dec 13:00 UTC"
        assert [d.claim_handoffs("x") for d in desks] == [[], []]
        clock["now"] += 3600
        assert len(desks[1].claim_handoffs("y")) == 1 and desks[0].claim_handoffs("x") == []
    finally:
        replica.close()
