"""The conversations table (issue 23): one thread per (room, number), race-free, on SQLite and
PostgreSQL; the links of sends and pages to their thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from att_sms.store import Store
from att_sms.store.conversations import BUSY, NEW, THREAD, active

#: The fixtures engine, pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine

ROOM, OTHER_ROOM = "C0ROOM001", "C0ROOM002"
ALICE, BOB = "tel:+12125551234", "tel:+13125550199"
DAY = 86400.0


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    opened = engine.open()
    yield opened
    opened.close()


def test_a_new_number_is_claimed_then_opened_and_later_posts_use_its_thread(store: Store) -> None:
    claim = store.claim_conversation(ROOM, ALICE, holder="bot-a", window=DAY)
    assert claim.kind == NEW and claim.thread_ts is None
    assert store.open_conversation(ROOM, ALICE, "100.000001", holder="bot-a", inbound_root=True)
    again = store.claim_conversation(ROOM, ALICE, holder="bot-a", window=DAY)
    assert (again.kind, again.thread_ts) == (THREAD, "100.000001")
    assert again.conversation is not None and again.conversation.replies == 1
    # Another room, another number: conversations of their own.
    assert store.claim_conversation(OTHER_ROOM, ALICE, holder="bot-a", window=DAY).kind == NEW
    assert store.claim_conversation(ROOM, BOB, holder="bot-a", window=DAY).kind == NEW


def test_a_claim_held_by_another_poster_is_busy_until_it_expires_or_is_released(
    store: Store,
) -> None:
    assert store.claim_conversation(ROOM, ALICE, holder="a", window=DAY, claim_for=0.5).kind == NEW
    assert store.claim_conversation(ROOM, ALICE, holder="b", window=DAY).kind == BUSY
    time.sleep(0.6)  # the holder died: its claim is taken over
    assert store.claim_conversation(ROOM, ALICE, holder="b", window=DAY).kind == NEW
    assert not store.open_conversation(ROOM, ALICE, "1.1", holder="a", inbound_root=True)
    store.release_claim(ROOM, ALICE, "b")  # b's post failed: anyone may claim again
    assert store.claim_conversation(ROOM, ALICE, holder="c", window=DAY).kind == NEW
    # c was killed mid-post and restarted (same holder id): it takes its claim back at once.
    assert store.claim_conversation(ROOM, ALICE, holder="c", window=DAY).kind == NEW
    assert store.claim_conversation(ROOM, ALICE, holder="d", window=DAY).kind == BUSY


def test_the_window_counts_from_the_last_message_either_way(store: Store) -> None:
    store.continue_conversation(ROOM, ALICE, "5.5")  # a send typed in a thread
    assert store.claim_conversation(ROOM, ALICE, holder="a", window=0.3).kind == THREAD
    time.sleep(0.2)
    store.note_inbound(ROOM, ALICE, "5.5", from_address="tel:+15550001")  # a reply, active again
    time.sleep(0.2)
    conv = store.conversation(ROOM, ALICE)
    assert conv is not None and conv.replies == 1 and conv.from_address == "tel:+15550001"
    assert active(conv, store.now(), 0.3)
    assert store.claim_conversation(ROOM, ALICE, holder="a", window=0.3).kind == THREAD
    time.sleep(0.4)  # quiet for longer than the window: a new conversation
    assert store.claim_conversation(ROOM, ALICE, holder="a", window=0.3).kind == NEW


def test_continuing_in_another_thread_moves_the_conversation_and_counts_replies_anew(
    store: Store,
) -> None:
    store.continue_conversation(ROOM, ALICE, "1.0", from_address="tel:+15550001")
    store.note_inbound(ROOM, ALICE, "1.0")
    store.continue_conversation(ROOM, ALICE, "1.0")
    assert store.conversation(ROOM, ALICE).replies == 1  # type: ignore[union-attr]
    store.continue_conversation(ROOM, ALICE, "2.0")
    moved = store.conversation(ROOM, ALICE)
    assert moved is not None
    assert (moved.thread_ts, moved.replies, moved.from_address) == ("2.0", 0, "tel:+15550001")
    store.note_inbound(ROOM, ALICE, "1.0")  # a late post into the old thread changes nothing
    assert store.conversation(ROOM, ALICE).replies == 0  # type: ignore[union-attr]


def test_numbers_of_a_thread_and_a_thread_slack_no_longer_has(store: Store) -> None:
    store.continue_conversation(ROOM, ALICE, "3.0")
    store.continue_conversation(ROOM, BOB, "3.0")
    store.continue_conversation(OTHER_ROOM, BOB, "3.0")
    store.link_threads(["send:m1", "page:P1"], ROOM, "3.0")
    assert [c.number for c in store.conversations_in_thread(ROOM, "3.0")] == [ALICE, BOB]
    assert store.linked_thread("send:m1") == (ROOM, "3.0")
    assert store.forget_thread(ROOM, "3.0") == 2
    assert store.conversations_in_thread(ROOM, "3.0") == []
    assert store.linked_thread("send:m1") is None and store.linked_thread("page:P1") is None
    assert store.conversation(OTHER_ROOM, BOB) is not None  # another room's thread stays
    assert store.claim_conversation(ROOM, ALICE, holder="a", window=DAY).kind == NEW


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


def test_posters_racing_on_a_new_number_open_one_thread(engine: Engine, store: Store) -> None:
    """Eight posters (two processes' worth of stores: replicas on PostgreSQL) see the first SMS
    of the same new number at once: one claims and posts the root, the others wait for it."""
    replica = engine.open()
    opened: list[str] = []
    lock = threading.Lock()

    def poster(n: int) -> str:
        mine = store if n % 2 else replica
        holder = f"poster-{n}"
        for _ in range(200):
            claim = mine.claim_conversation(ROOM, ALICE, holder=holder, window=DAY)
            if claim.kind == THREAD:
                return str(claim.thread_ts)
            if claim.kind == NEW:
                root = f"{n}.000001"  # the root this poster posted
                with lock:
                    opened.append(root)
                assert mine.open_conversation(ROOM, ALICE, root, holder=holder, inbound_root=True)
                return root
            time.sleep(0.01)  # BUSY: the winner is posting its root
        raise AssertionError("never got a thread")

    try:
        threads = _in_threads(8, poster)
    finally:
        replica.close()
    assert len(opened) == 1, opened
    assert set(threads) == set(opened)
    assert store.conversation_count() == 1


def test_conversations_quiet_for_a_month_are_pruned(store: Store) -> None:
    store.continue_conversation(ROOM, BOB, "9.0")
    with store.transaction() as tx:
        tx.execute("UPDATE att_conversations SET last_at = last_at - ?", (31 * DAY,))
    assert store.claim_conversation(ROOM, ALICE, holder="a", window=DAY).kind == NEW
    assert store.conversation(ROOM, BOB) is None
    assert store.conversation(ROOM, ALICE) is not None
