"""The store's API, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from att_sms.carrier.client import InboundMessage
from att_sms.sending import directory, policy
from att_sms.store import FollowUp, Store, StoreError, handle_for, message_key, open_store
from att_sms.store.inbound import OPT_NOTES, seq_of_handle
from att_sms.text.numbers import NumberRules

#: The fixtures engine, pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine, PgServer

ALICE = "tel:+12125551234"
BOB = "tel:+13125550199"


def sms(
    mid: str, text: str = "hello", sender: str = ALICE, date: str | None = None
) -> InboundMessage:
    return InboundMessage(mid, text, sender, "tel:+15550001", date)


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    opened = engine.open()
    yield opened
    opened.close()


# -- inbound -------------------------------------------------------------------------------


def test_record_fetched_returns_only_new_rows_and_keeps_the_first_copy(store: Store) -> None:
    first = store.record_fetched("reg", [sms("m1", "one"), sms("m2", "two")])
    assert [(r.message_id, r.message, r.registration_id) for r in first] == [
        ("m1", "one", "reg"),
        ("m2", "two", "reg"),
    ]
    assert first[0].seq < first[1].seq
    assert first[0].key == message_key("reg", sms("m1"))
    assert abs(first[0].fetched_at - store.now()) < 5
    again = store.record_fetched("reg", [sms("m2", "changed"), sms("m3", "three")])
    assert [r.message_id for r in again] == ["m3"]
    assert [r.message for r in store.pending()] == ["one", "two", "three"]
    # The same carrier id under another registration is another message.
    assert len(store.record_fetched("other", [sms("m1")])) == 1


def test_a_message_without_id_is_keyed_by_its_content(store: Store) -> None:
    rows = store.record_fetched("reg", [sms("", "hi", date="2026-01-01T10:00:00Z")])
    assert rows[0].message_id.startswith("sha256:")
    assert store.record_fetched("reg", [sms("  ", "hi", date="2026-01-01T10:00:00Z")]) == []
    later = store.record_fetched("reg", [sms("", "hi", date="2026-01-01T10:05:00Z")])
    assert len(later) == 1 and later[0].key != rows[0].key


@pytest.mark.parametrize("sender", [ALICE, "tel:2125551234", "2125551234", "+1 212 555 1234"])
def test_stop_and_start_apply_whatever_way_the_sender_is_written(store: Store, sender: str) -> None:
    [stop] = store.record_fetched("reg", [sms("s1", " stop\n", sender=sender)])
    assert stop.note == OPT_NOTES["out"]
    assert store.opted_out([ALICE, BOB]) == {ALICE}
    assert [tel for tel, _ in store.optouts()] == [ALICE]
    [start] = store.record_fetched("reg", [sms("s2", "START", sender=sender)])
    assert start.note == OPT_NOTES["in"]
    assert store.opted_out([ALICE]) == set()


def test_a_stop_delivered_again_does_not_undo_a_later_start(store: Store) -> None:
    store.record_fetched("reg", [sms("s1", "STOP"), sms("s2", "START")])
    assert store.opted_out([ALICE]) == set()
    assert store.record_fetched("reg", [sms("s1", "STOP")]) == []
    assert store.opted_out([ALICE]) == set()
    store.record_fetched("reg", [sms("s3", "STOP"), sms("s3", "STOP")])
    assert store.opted_out([ALICE]) == {ALICE}


def test_texts_that_are_not_exactly_a_keyword_or_senders_that_are_not_numbers(store: Store) -> None:
    rows = store.record_fetched(
        "reg",
        [sms("a", "stop please"), sms("b", "STOP", sender="12345"), sms("c", "STOP", "oncall")],
    )
    assert [r.note for r in rows] == [None, None, None]
    assert store.optouts() == []


def test_an_opt_out_is_undone_with_the_batch_that_failed(store: Store) -> None:
    class Broken:
        message_id = "b2"
        sender_address = BOB
        destination_address = None
        date_time = None

        @property
        def message(self) -> str:
            raise RuntimeError("unreadable")

    with pytest.raises(RuntimeError):
        store.record_fetched("reg", [sms("b1", "STOP"), Broken()])
    assert store.optouts() == [] and store.pending() == []


def test_unstorable_characters_are_replaced_the_same_way_on_every_engine(store: Store) -> None:
    [row] = store.record_fetched("reg", [sms("odd\x00", "a\ud800b\x00c")])
    assert row.message == "a\ufffdb\ufffdc"
    assert store.record_fetched("reg", [sms("odd\x00", "again")]) == []
    assert store.pending()[0].message == "a\ufffdb\ufffdc"


def test_pending_is_oldest_first_and_can_be_limited_to_a_registration(store: Store) -> None:
    store.record_fetched("a", [sms("1"), sms("2")])
    store.record_fetched("b", [sms("3")])
    store.record_fetched("a", [sms("4")])
    assert [r.message_id for r in store.pending()] == ["1", "2", "3", "4"]
    assert [r.message_id for r in store.pending("a")] == ["1", "2", "4"]
    assert store.pending("none") == []


def test_mark_posted_counts_only_what_was_pending(store: Store) -> None:
    rows = store.record_fetched("reg", [sms("1"), sms("2"), sms("3")])
    assert store.mark_posted([rows[0].key, rows[2].key, "reg\x1fnever"]) == 2
    assert store.mark_posted([rows[0].key]) == 0
    assert [r.message_id for r in store.pending()] == ["2"]
    assert store.counts() == {"pending": 1, "seen": 2}
    # A posted message fetched again is not posted again.
    assert store.record_fetched("reg", [sms("1")]) == []


def test_handles_lead_back_to_the_sender_before_and_after_the_post(store: Store) -> None:
    [row] = store.record_fetched("reg", [sms("1", sender=BOB)])
    assert row.handle == handle_for(row.seq) and seq_of_handle(row.handle) == row.seq
    for handle in (row.handle, "#" + row.handle, row.handle.upper(), f" {row.handle} "):
        origin = store.origin_of(handle)
        assert origin is not None
        assert (origin.sender_address, origin.destination_address) == (BOB, "tel:+15550001")
        assert origin.registration_id == "reg"
    store.mark_posted([row.key])
    assert store.origin_of(row.handle) is not None
    for bad in ("", "r", "x1", "r!", "#", handle_for(row.seq + 1000)):
        assert store.origin_of(bad) is None


def test_handle_numbering() -> None:
    assert [handle_for(n) for n in (0, 35, 36, 1295)] == ["r0", "rz", "r10", "rzz"]
    assert all(seq_of_handle(handle_for(n)) == n for n in (1, 77, 10**9))


def test_posted_rows_beyond_seen_limit_are_pruned_but_pending_ones_never(engine: Engine) -> None:
    store = engine.open(seen_limit=5)
    try:
        [old] = store.record_fetched("reg", [sms("old")])
        rows = store.record_fetched("reg", [sms(f"m{i}") for i in range(30)])
        store.mark_posted([r.key for r in rows])
        for _ in range(199):  # a prune runs every 200th mark
            store.mark_posted([])
        assert store.counts() == {"pending": 1, "seen": 5}
        assert store.origin_of(rows[0].handle) is None
        assert store.origin_of(rows[-1].handle) is not None
        assert store.origin_of(old.handle) is not None
    finally:
        store.close()


# -- directory, names, opt-outs --------------------------------------------------------------


def test_edit_directory_writes_what_changed_and_keeps_member_order(store: Store) -> None:
    rules = NumberRules("US")
    assert (
        store.edit_directory(lambda b: directory.add_contact(b, "zed", "212 555 1234", rules))
        == ALICE
    )
    store.edit_directory(lambda b: directory.add_contact(b, "amy", "+1 312 555 0199", rules))
    members = store.edit_directory(
        lambda b: directory.add_group(b, "oncall", ["zed", "+44 20 7946 0958", "amy"], rules)
    )
    assert members == ["zed", "tel:+442079460958", "amy"]
    book = store.directory()
    assert book == {
        "contacts": {"zed": ALICE, "amy": BOB},
        "groups": {"oncall": ["zed", "tel:+442079460958", "amy"]},
    }
    store.edit_directory(lambda b: b["groups"]["oncall"].reverse())
    assert store.directory()["groups"]["oncall"] == ["amy", "tel:+442079460958", "zed"]
    assert store.edit_directory(lambda b: directory.remove_contact(b, "amy")) == ["oncall"]
    store.edit_directory(lambda b: directory.remove_group(b, "oncall", None))
    assert store.directory() == {"contacts": {"zed": ALICE}, "groups": {}}


def test_a_change_that_raises_writes_nothing(store: Store) -> None:
    store.edit_directory(lambda b: b["contacts"].update(keep="tel:+12125550000"))

    def half_done(book: dict[str, Any]) -> None:
        book["contacts"]["new"] = ALICE
        del book["contacts"]["keep"]
        book["groups"]["g"] = ["new"]
        raise directory.DirectoryError("refused")

    with pytest.raises(directory.DirectoryError):
        store.edit_directory(half_done)
    assert store.directory() == {"contacts": {"keep": "tel:+12125550000"}, "groups": {}}


def test_an_empty_group_is_kept(store: Store) -> None:
    store.edit_directory(lambda b: b["groups"].update(empty=[]))
    assert store.directory()["groups"] == {"empty": []}


def test_names_of_numbers_and_of_senders(store: Store) -> None:
    store.edit_directory(lambda b: b["contacts"].update(zed=ALICE, amy=ALICE, bob=BOB))
    assert store.name_of(ALICE) == "amy"  # the first name of a shared number
    assert store.name_of("tel:+19999999999") is None
    for written in (ALICE, "tel:2125551234", "2125551234", "+1 (212) 555-1234"):
        assert store.name_of_sender(written) == "amy"
    assert store.name_of_sender("oncall") is None


def test_optouts_are_listed_by_number_with_their_time(store: Store) -> None:
    store.record_fetched("reg", [sms("1", "STOP", sender=BOB), sms("2", "quit", sender=ALICE)])
    listed = store.optouts()
    assert [tel for tel, _ in listed] == [ALICE, BOB]
    assert all(abs(since - store.now()) < 5 for _, since in listed)
    assert store.opted_out([BOB, BOB, "tel:+10000000000"]) == {BOB}
    # Opting out twice keeps the first time.
    store.record_fetched("reg", [sms("3", "STOP", sender=BOB)])
    assert store.optouts() == listed


# -- quotas ------------------------------------------------------------------------------------


def test_rate_limit_counts_sends_and_a_settled_zero_frees_it(store: Store) -> None:
    first = store.reserve_quota("alice", 3, rate_limit=2, daily_limit=0)
    store.reserve_quota("alice", 1, rate_limit=2, daily_limit=0)
    with pytest.raises(policy.QuotaError) as refused:
        store.reserve_quota("alice", 1, rate_limit=2, daily_limit=0)
    assert refused.value.limit == "rate" and refused.value.resets_at > store.now()
    store.reserve_quota("bob", 1, rate_limit=2, daily_limit=0)  # limits are per user
    store.settle_quota(first, 0)
    store.reserve_quota("alice", 1, rate_limit=2, daily_limit=0)


def test_daily_limit_counts_units_of_everyone(store: Store) -> None:
    held = store.reserve_quota("alice", 4, rate_limit=0, daily_limit=10)
    store.reserve_quota("bob", 4, rate_limit=0, daily_limit=10)
    with pytest.raises(policy.QuotaError) as refused:
        store.reserve_quota("carol", 3, rate_limit=0, daily_limit=10)
    assert refused.value.limit == "daily"
    store.settle_quota(held, 1)  # billed fewer units than reserved
    store.reserve_quota("carol", 3, rate_limit=0, daily_limit=10)
    with pytest.raises(policy.QuotaError):
        store.reserve_quota("carol", 3, rate_limit=0, daily_limit=10)


def test_quota_settled_inside_a_command_transaction(store: Store) -> None:
    held = store.reserve_quota("alice", 5, rate_limit=0, daily_limit=5)
    with store.transaction() as tx:
        store.settle_quota(held, 0, tx)
        store.record_audit(
            who="alice", recipients=[ALICE], parts=1, message_ids=[], outcome="failed: x", tx=tx
        )
    store.reserve_quota("alice", 5, rate_limit=0, daily_limit=5)
    assert store.last_audit(1)[0]["outcome"] == "failed: x"


def test_a_send_s_checks_and_reservation_in_one_transaction(store: Store) -> None:
    """The pipeline reads opt-outs and the last send and reserves in one transaction: the
    same answers as alone, and a refusal rolls the day's count back with the rest."""
    with store.transaction() as tx:
        tx.execute("INSERT INTO att_optouts (tel, since) VALUES (?, ?)", (BOB, 1.0))
    store.record_audit(
        who="w", recipients=[ALICE], parts=1, message_ids=["m1"], outcome="sent", dedup_key="k"
    )
    with store.transaction() as tx:
        assert store.opted_out([ALICE, BOB, BOB], tx) == {BOB}
        assert store.recent_send("k", 0.0, tx) == store.recent_send("k", 0.0)
        assert store.recent_send("other", 0.0, tx) is None
        held = store.reserve_quota("alice", 4, rate_limit=0, daily_limit=5, tx=tx)
    store.settle_quota(held, 4)
    with pytest.raises(policy.QuotaError), store.transaction() as tx:
        store.opted_out([ALICE], tx)
        store.reserve_quota("bob", 1, rate_limit=0, daily_limit=5, tx=tx)
        store.reserve_quota("carol", 1, rate_limit=0, daily_limit=5, tx=tx)  # 6 > 5: refused
    store.reserve_quota("dave", 1, rate_limit=0, daily_limit=5)  # bob's unit was rolled back
    with pytest.raises(policy.QuotaError):
        store.reserve_quota("erin", 1, rate_limit=0, daily_limit=5)


def test_sends_outside_the_windows_do_not_count(store: Store) -> None:
    now = store.now()
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?)", ("alice", now - 3700, 0)
        )
        tx.execute(
            "INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?)", ("alice", now - 86500, 9)
        )
    store.reserve_quota("alice", 1, rate_limit=1, daily_limit=1)


def test_rate_limit_below_and_at_the_limit_decided_as_policy_decides(store: Store) -> None:
    """The store probes for the rate_limit-th newest send of the hour instead of reading
    them all: below the limit it admits, at the limit it refuses with policy's count and
    reset time (the rate_limit-th newest send + the window), old sends never counting."""
    now = store.now()
    inside = [now - 3000 + i for i in range(40)]  # 40 sends this hour
    with store.transaction() as tx:
        for at in [now - 3700, now - 5000, *inside]:
            tx.execute("INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?)", ("alice", at, 1))
        tx.execute("INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?)", ("bob", now, 1))
    store.reserve_quota("alice", 1, rate_limit=42, daily_limit=0)  # 40 (+ this one) < 42
    recent = sorted([*inside, store.now()])
    for limit in (41, 30, 1):
        with pytest.raises(policy.QuotaError) as refused:
            store.reserve_quota("alice", 1, rate_limit=limit, daily_limit=0)
        with pytest.raises(policy.QuotaError) as expected:
            policy.check_quota(
                {"users": {"alice": recent}, "days": {}}, "alice", 1, store.now(), limit, 0
            )
        assert refused.value.limit == "rate"
        assert refused.value.resets_at == pytest.approx(recent[len(recent) - limit] + 3600)
        assert refused.value.resets_at == pytest.approx(expected.value.resets_at)
        assert f"alice sent {limit} messages" in str(refused.value) or limit == 1
    store.reserve_quota("bob", 1, rate_limit=2, daily_limit=0)  # bob's one send is his own


def test_a_read_never_sees_another_thread_s_open_transaction(store: Store) -> None:
    """opted_out and recent_send read without BEGIN/COMMIT on SQLite (``Database.read``):
    they still wait for a transaction another thread has open on the shared connection,
    so a row it then rolls back is never seen."""
    opened, done = threading.Event(), threading.Event()

    def writer() -> None:
        try:
            with store.transaction() as tx:
                tx.execute("INSERT INTO att_optouts (tel, since) VALUES (?, ?)", (ALICE, 1.0))
                store.record_audit(
                    who="w", recipients=[ALICE], parts=1, message_ids=["m"], outcome="sent",
                    dedup_key="k", tx=tx,
                )  # fmt: skip
                opened.set()
                time.sleep(0.3)
                raise RuntimeError("rolled back")
        except RuntimeError:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert opened.wait(10)
    assert store.opted_out([ALICE]) == set()
    assert store.recent_send("k", 0.0) is None
    if store.database.dialect == "sqlite":  # one shared connection: the read waited for it
        assert done.is_set()
    thread.join()


def test_old_send_rows_are_pruned_every_hundredth_reservation(store: Store) -> None:
    from att_sms.store.quotas import PRUNE_EVERY, SENDS_KEPT

    now = store.now()
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO att_sends (who, at, units) VALUES (?, ?, ?)",
            ("old", now - SENDS_KEPT - 60, 1),
        )
    for _ in range(PRUNE_EVERY + 1):
        store.reserve_quota("alice", 1, rate_limit=0, daily_limit=0)
    with store.transaction() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM att_sends WHERE who = 'old'") == 0
        assert tx.scalar("SELECT COUNT(*) FROM att_sends WHERE who = 'alice'") == PRUNE_EVERY + 1


def test_settling_what_was_reserved_changes_no_count(store: Store) -> None:
    held = store.reserve_quota("alice", 3, rate_limit=0, daily_limit=5)
    store.settle_quota(held, 3)
    with pytest.raises(policy.QuotaError):
        store.reserve_quota("bob", 3, rate_limit=0, daily_limit=5)  # 3 + 3 > 5
    store.settle_quota(held, 2)
    store.reserve_quota("bob", 3, rate_limit=0, daily_limit=5)  # 2 + 3 <= 5
    nothing = store.reserve_quota("carol", 0, rate_limit=1, daily_limit=0)
    store.settle_quota(nothing, 0)  # a send that billed nothing counts for no limit
    store.reserve_quota("carol", 1, rate_limit=1, daily_limit=0)
    other = Store(store.database)  # another store object (a restart) settles by reading the row
    held = store.reserve_quota("dave", 2, rate_limit=0, daily_limit=0)
    other.settle_quota(held, 0)
    store.settle_quota(held, 0)  # already gone: nothing happens (the day is not counted down twice)
    store.reserve_quota("dave", 1, rate_limit=1, daily_limit=0)
    with store.transaction() as tx:
        assert tx.scalar("SELECT SUM(units) FROM att_quota_days") == 2 + 3 + 0 + 1 + 1


def test_a_replica_s_sends_count_against_the_same_limits(engine: Engine, store: Store) -> None:
    other = engine.open()
    try:
        store.reserve_quota("alice", 1, rate_limit=1, daily_limit=0)
        with pytest.raises(policy.QuotaError):
            other.reserve_quota("alice", 1, rate_limit=1, daily_limit=0)
        other.record_fetched("reg", [sms("x", "STOP", sender=BOB)])
        assert store.opted_out([BOB]) == {BOB}
    finally:
        other.close()


# -- audit -------------------------------------------------------------------------------------


def test_audit_entries_come_back_oldest_first(store: Store) -> None:
    for n in range(5):
        store.record_audit(
            who=f"u{n}",
            recipients=[ALICE, BOB],
            parts=n + 1,
            message_ids=[f"id{n}"],
            outcome="sent",
        )
    last = store.last_audit(3)
    assert [e["who"] for e in last] == ["u2", "u3", "u4"]
    assert last[0] == {
        "who": "u2", "when": last[0]["when"], "recipients": [ALICE, BOB], "parts": 3,
        "message_ids": ["id2"], "outcome": "sent",
    }  # fmt: skip
    assert abs(last[0]["when"] - store.now()) < 5
    assert store.last_audit(0) == [] and len(store.last_audit(100)) == 5


def test_recent_send_finds_what_may_have_gone_out_within_the_window(store: Store) -> None:
    start = store.now()
    for outcome, ids in (("sent", ["a"]), ("failed: carrier down", []), ("refused: duplicate", [])):
        store.record_audit(
            who="u", recipients=[ALICE], parts=1, message_ids=ids, outcome=outcome, dedup_key="k"
        )
    store.record_audit(
        who="u", recipients=[BOB], parts=1, message_ids=["b"], outcome="partial", dedup_key="k2"
    )
    found = store.recent_send("k", start - 1)
    assert found is not None and found["message_ids"] == ["a"]
    assert store.recent_send("k", store.now() + 1) is None
    assert store.recent_send("nope", start - 1) is None
    store.record_audit(
        who="u", recipients=[ALICE], parts=1, message_ids=["c"], outcome="sent", dedup_key="k"
    )
    assert store.recent_send("k", start - 1)["message_ids"] == ["c"]


# -- follow-ups --------------------------------------------------------------------------------


def test_follow_ups_due_rescheduled_and_finished_once(store: Store) -> None:
    store.add_follow_ups(
        [
            FollowUp("m2", "#room", [BOB], 100.0, 20.0),
            FollowUp("m1", "@al", [ALICE, BOB], 100.0, 10.0),
        ]
    )
    store.add_follow_ups([FollowUp("m1", "elsewhere", [], 0.0, 0.0)])  # already followed
    assert store.follow_up_count() == 2
    due = store.due_follow_ups(15.0)
    assert due == [FollowUp("m1", "@al", [ALICE, BOB], 100.0, 10.0, 0, [])]
    assert [t.message_id for t in store.due_follow_ups(30.0)] == ["m1", "m2"]
    assert [t.message_id for t in store.due_follow_ups(30.0, limit=1)] == ["m1"]
    task = due[0]
    task.next_at, task.attempts, task.last = 50.0, 1, [[ALICE, "DeliveredToNetwork"]]
    store.reschedule_follow_up(task)
    assert [t.message_id for t in store.due_follow_ups(30.0)] == ["m2"]
    assert store.due_follow_ups(60.0)[1] == task
    assert store.finish_follow_up("m1") is True
    assert store.finish_follow_up("m1") is False
    assert store.follow_up_count() == 1


# -- meta, store information ---------------------------------------------------------------------


def test_meta_values(store: Store) -> None:
    assert store.get_meta("schema_version") == "1"
    assert store.get_meta("missing") is None
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2"


def test_describe_and_size(engine: Engine, store: Store) -> None:
    store.record_fetched("reg", [sms(str(n)) for n in range(50)])
    assert store.size_bytes() > 0
    text = store.describe()
    assert text.startswith("SQLite" if engine.name == "sqlite" else "PostgreSQL")
    if engine.password:
        assert engine.password not in text


def test_reopening_keeps_everything(engine: Engine) -> None:
    first = engine.open()
    first.record_fetched("reg", [sms("1")])
    first.edit_directory(lambda b: b["contacts"].update(amy=ALICE))
    first.close()
    again = engine.open()
    try:
        assert [r.message_id for r in again.pending()] == ["1"]
        assert again.name_of(ALICE) == "amy"
    finally:
        again.close()


# -- concurrency ---------------------------------------------------------------------------------


def _in_threads(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    gate = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            gate.wait()
            results[n] = work(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


def test_threads_recording_the_same_messages_store_each_once(engine: Engine, store: Store) -> None:
    replica = engine.open()
    batch = [sms(f"m{i}") for i in range(40)]
    try:
        added = _in_threads(6, lambda n: (store if n % 2 else replica).record_fetched("reg", batch))
    finally:
        replica.close()
    assert sorted(r.message_id for rows in added for r in rows) == sorted(
        m.message_id for m in batch
    )
    assert store.counts() == {"pending": 40, "seen": 0}


def test_concurrent_reservations_never_exceed_the_limit(engine: Engine, store: Store) -> None:
    replica = engine.open()

    def reserve(n: int) -> bool:
        try:
            (store if n % 2 else replica).reserve_quota("alice", 1, rate_limit=3, daily_limit=0)
        except policy.QuotaError:
            return False
        return True

    try:
        assert sum(_in_threads(8, reserve)) == 3
    finally:
        replica.close()


def test_stores_opened_at_once_create_the_tables_once(engine: Engine) -> None:
    stores = _in_threads(4, lambda n: engine.open())
    try:
        stores[0].record_fetched("reg", [sms("1")])
        assert all(s.counts()["pending"] == 1 for s in stores)
    finally:
        for s in stores:
            s.close()


def test_a_new_sqlite_file_opened_by_several_at_once(tmp_path: Any) -> None:
    """The bot and its fetch child may create the file together (it used to be "locked")."""
    for round_ in range(20):
        place = tmp_path / str(round_)
        stores = _in_threads(4, lambda n, place=place: open_store(place))
        for s in stores:
            s.close()


CHILD = textwrap.dedent(
    """
    import sys
    from att_sms.carrier.client import InboundMessage
    from att_sms.store import open_store
    store = open_store(sys.argv[1], database_url=sys.argv[2])
    for n in range(150):
        ids = [f"child{n}", f"both{n}"]
        store.record_fetched("reg", [InboundMessage(i, "x", "tel:+12125551234", None, None) for i in ids])
    store.close()
    print("done")
    """
)


def test_a_second_process_writes_to_the_same_store(engine: Engine, store: Store) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(engine.data_dir), engine.database_url],
        env=engine.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    mine = 0
    for n in range(150):
        mine += len(store.record_fetched("reg", [sms(f"parent{n}"), sms(f"both{n}")]))
        if n % 10 == 0:
            store.mark_posted([r.key for r in store.pending()][:5])
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "done"
    counts = store.counts()
    assert counts["pending"] + counts["seen"] == 450
    keys = [r.key for r in store.pending()]
    assert len(keys) == len(set(keys)) and mine >= 150


# -- opening -------------------------------------------------------------------------------------


def test_other_urls_are_refused(tmp_path: Any) -> None:
    with pytest.raises(StoreError, match="postgresql://"):
        open_store(tmp_path, database_url="mysql://db/att")


def test_a_password_in_the_url_is_refused_without_showing_it(tmp_path: Any) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as refused:
        open_store(tmp_path, database_url="postgresql://att:hunter2secret@127.0.0.1:1/att")
    assert "ATT_DATABASE_PASSWORD" in str(refused.value)
    assert "hunter2secret" not in str(refused.value)


def test_an_unreachable_server_is_a_store_error(tmp_path: Any) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match="cannot connect"):
        open_store(tmp_path, database_url="postgresql://att@127.0.0.1:1/att?connect_timeout=2")


def test_the_password_comes_from_the_environment(
    tmp_path: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: PgServer = request.getfixturevalue("pg_server")
    url: str = request.getfixturevalue("pg_url")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("ATT_DATABASE_PASSWORD", "wrong-password")
    with pytest.raises(StoreError) as refused:
        open_store(tmp_path, database_url=url)
    assert "wrong-password" not in str(refused.value)
    monkeypatch.setenv("ATT_DATABASE_PASSWORD", server.password)
    open_store(tmp_path, database_url=url).close()
    monkeypatch.delenv("ATT_DATABASE_PASSWORD")
    monkeypatch.setenv("PGPASSWORD", server.password)
    store = open_store(tmp_path, database_url=url)
    try:
        assert store.database.dialect == "postgresql"
        assert abs(store.now() - time.time()) < 5  # the server's clock, on this same machine
    finally:
        store.close()


def test_connections_the_server_dropped_are_replaced(
    tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    server: PgServer = request.getfixturevalue("pg_server")
    url: str = request.getfixturevalue("pg_url")
    store = open_store(tmp_path, database_url=url, password=server.password)
    try:
        _in_threads(3, lambda n: store.record_fetched("reg", [sms(f"m{n}")]))  # fills the pool
        with server.admin() as admin:
            dropped = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'errbot-att-sms' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        assert dropped >= 1
        assert store.counts() == {"pending": 3, "seen": 0}
        assert len(store.record_fetched("reg", [sms("after")])) == 1
    finally:
        store.close()
