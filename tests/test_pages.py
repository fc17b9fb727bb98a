"""Escalating pages (``!sms page``) in errbot's test backend against the carrier sandbox:
escalation, acknowledgement by SMS and from chat, opt-outs and uncertain steps, restarts,
de-duplication; and the page tables of the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from att_sms.pages import escalation as esc
from att_sms.store import DuplicatePage, Store, open_store
from att_sms.text.formatting import neutralise
from botkit import Bot, sandbox_config

if TYPE_CHECKING:
    from pgserver import Engine

#: The fixture engine (the store on SQLite and on PostgreSQL) and what it needs.
pytest_plugins = ["pgserver"]

ALICE, BOB, CAROL = "tel:+12125550101", "tel:+12125550102", "tel:+12125550103"
SHOWN = {ALICE: "alice (+1 212-555-0101)", BOB: "bob (+1 212-555-0102)"}
SHOWN[CAROL] = "carol (+1 212-555-0103)"
OUTBOX = "/sms/v3/messaging/outbox"
USER = neutralise("gbin@localhost")  # the chat user, as posts show it (it cannot mention)


class PageBot(Bot):
    """A test bot whose posts (to the room a page was started in) stay off the reply
    queue, so that ``ask`` returns the command's own reply."""

    def record(self, msg: Any) -> bool:
        super().record(msg)
        return str(msg.to) != "Err"  # replies go to the bot's own identifier in this backend

    def page_posts(self, page_id: str = "P1") -> list[str]:
        """Posts about one page, in order (the command's reply is not one)."""
        return [
            body
            for to, body in self.posts
            if to != "Err" and (f"Page {page_id}:" in body or f"Page {page_id} " in body)
        ]


def start_bot(data: Path, sandbox, client_id: str, **overrides: Any) -> PageBot:
    """A bot on persistent storage with alice, bob, carol and the group oncall (in that order)."""
    bot = PageBot(data_dir=data, STORAGE="Shelf")
    config = sandbox_config(sandbox, client_id, FOLLOW_UP=False, ESCALATE_AFTER=1)
    config.update(overrides)
    assert bot.configure(config) == "Plugin configuration done."
    for name, tel in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        assert bot.ask(f"!sms contact add {name} {tel[4:]}").startswith(f"Contact {name}")
    assert "oncall" in bot.ask("!sms group add oncall carol alice bob")
    return bot


@pytest.fixture
def make_bot(env: None, tmp_path: Path, sandbox, client_id: str) -> Iterator[Any]:
    bots: list[PageBot] = []

    def make(**overrides: Any) -> PageBot:
        bots.append(start_bot(tmp_path / "data", sandbox, client_id, **overrides))
        return bots[-1]

    yield make
    for bot in bots:
        bot.stop()


def sent_to(sandbox) -> list[str]:
    """The recipient of each SMS the sandbox took, in order (pages text one at a time)."""
    return [address for s in sandbox.state()["sent"] for address in s["addresses"]]


# ------------------------------------------------------------------ escalation


def test_escalates_through_every_recipient_then_gives_up(make_bot, sandbox) -> None:
    bot = make_bot()
    answer = bot.ask("!sms page oncall db1 disk full")
    assert answer == f"Page P1: paged {SHOWN[CAROL]} (step 1/3)."  # the group's order
    bot.wait_for_posts("nobody acknowledged", timeout=10)
    assert bot.page_posts() == [
        f"Page P1: {SHOWN[CAROL]} did not acknowledge within 1 s; moving on.",
        f"Page P1: paged {SHOWN[ALICE]} (step 2/3).",
        f"Page P1: {SHOWN[ALICE]} did not acknowledge within 1 s; moving on.",
        f"Page P1: paged {SHOWN[BOB]} (step 3/3).",
        "Page P1: nobody acknowledged after 3 steps; the page is closed.",
    ]
    sms = sandbox.state()["sent"]
    assert [s["addresses"] for s in sms] == [[CAROL], [ALICE], [BOB]]
    assert {s["message"] for s in sms} == {"P1: db1 disk full (Reply ACK P1 to acknowledge)"}
    assert bot.ask("!sms pages") == "No open pages."
    assert "tel:+12125550103" in bot.ask("!sms log 3").splitlines()[0]  # each step is audited


def test_rounds_go_through_the_list_again(make_bot, sandbox) -> None:
    bot = make_bot(ESCALATE_ROUNDS=2)
    assert bot.ask("!sms page alice,bob,alice disk").endswith("(step 1/4, round 1/2).")
    bot.wait_for_posts("nobody acknowledged after 4 steps", timeout=10)
    assert sent_to(sandbox) == [ALICE, BOB, ALICE, BOB]  # alice twice in the list counts once


# ------------------------------------------------------------------ acknowledgement


def test_ack_by_sms_stops_the_page(make_bot, sandbox) -> None:
    bot = make_bot(ESCALATE_AFTER=3)
    assert bot.ask("!sms page alice,bob db2 down").startswith("Page P1: paged alice")
    sandbox.inject_inbound("reg-ops", BOB, "ok")  # not paged yet: cannot acknowledge
    sandbox.inject_inbound("reg-ops", ALICE, "okay, looking")  # not an ack word
    sandbox.inject_inbound("reg-ops", ALICE, "ack P7")  # names a page that did not text alice
    sandbox.inject_inbound("reg-ops", ALICE, "OK! on it")
    assert bot.ask("!sms inbox").startswith("Inbox: 4 messages arrived")
    (acked,) = bot.wait_for_posts("acknowledged by", timeout=5)
    assert acked[0] == "gbin@localhost"  # the room the page was started in
    assert acked[1].startswith(f"Page P1 acknowledged by {SHOWN[ALICE]} after ")
    assert acked[1].endswith(" s: OK! on it")
    inbound = [body for to, body in bot.posts if to == "#ops"]
    assert len(inbound) == 4
    assert "(acknowledges page P1)" in inbound[3]
    assert "no open page P7 texted this number" in inbound[2]
    assert not any("acknowledges" in body for body in inbound[:3])
    time.sleep(3.5)  # the page would have moved on to bob by now
    # Bob is never paged; alice gets the page, then (ACK_CONFIRM) the answers to her replies.
    assert sent_to(sandbox) == [ALICE, ALICE, ALICE]
    assert [s["message"] for s in sandbox.state()["sent"]][1:] == [
        "Nothing acknowledged: P7 was not sent to this number; your open page is P1."
        " Reply ACK P<n> to acknowledge an open page.",
        "Acknowledged P1: db2 down",
    ]
    assert bot.ask("!sms pages") == "No open pages."
    assert bot.page_posts() == [acked[1]]


def test_ack_names_the_page_and_reaches_only_pages_that_texted(make_bot, sandbox) -> None:
    bot = make_bot(ESCALATE_AFTER=30)
    bot.ask("!sms page alice first incident")
    bot.ask("!sms page alice second incident")
    sandbox.inject_inbound("reg-ops", ALICE, "ack p1")  # names the older page
    bot.ask("!sms inbox")
    bot.wait_for_posts("Page P1 acknowledged", timeout=5)
    assert bot.ask("!sms pages").startswith("P2 (step 1/1")
    sandbox.inject_inbound("reg-ops", ALICE, "y")  # the newest open page
    bot.ask("!sms inbox")
    bot.wait_for_posts("Page P2 acknowledged", timeout=5)
    assert bot.ask("!sms pages") == "No open pages."


def test_ack_cancel_and_list_from_chat(make_bot, sandbox) -> None:
    bot = make_bot(ESCALATE_AFTER=30)
    bot.ask("!sms page alice,bob db1 disk full")
    bot.ask("!sms page carol db2 <@here> down")
    listing = bot.ask("!sms pages").splitlines()
    assert len(listing) == 2
    assert listing[0].startswith("P1 (step 1/2, open ")
    assert f"paged {SHOWN[ALICE]} " in listing[0] and "next step in " in listing[0]
    assert listing[0].endswith("Text: db1 disk full")
    assert listing[1].startswith("P2 (step 1/1, open ") and "closes in " in listing[1]
    assert "<@here>" not in listing[1]  # neutralised like every outside text
    assert bot.ask("!sms ack P1").startswith(f"Page P1 acknowledged by {USER} after ")
    assert bot.ask("!sms ack p1").startswith("Nothing to do: Page P1 acknowledged by ")
    assert bot.ask("!sms cancel #2") == f"Page P2 cancelled by {USER}."
    assert bot.ask("!sms ack P2").startswith("Nothing to do: Page P2 cancelled")
    assert bot.ask("!sms pages") == "No open pages."
    assert bot.ask("!sms ack P9") == "No page P9."
    assert bot.ask("!sms cancel").startswith("usage: !sms cancel <page>")
    time.sleep(1.2)
    assert sent_to(sandbox) == [ALICE, CAROL]
    assert bot.page_posts("P1") == [] and bot.page_posts("P2") == []  # replies only


def test_ack_while_a_step_is_being_sent_records_that_send(make_bot, sandbox) -> None:
    bot = make_bot()
    bot.ask("!sms page alice,bob,carol db1")
    sandbox.add_fault(OUTBOX, method="POST", delay=2.0, when="after")  # bob's step is slow
    deadline = time.monotonic() + 5
    while "sending now" not in bot.ask("!sms pages") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bot.ask("!sms ack P1").startswith(f"Page P1 acknowledged by {USER} after ")
    bot.wait_for_posts(f"paged {SHOWN[BOB]}", timeout=5)
    time.sleep(1.5)
    assert bot.page_posts()[-1] == f"Page P1: paged {SHOWN[BOB]} (step 2/3)."
    assert sent_to(sandbox) == [ALICE, BOB]  # carol is never paged
    assert bot.ask("!sms pages") == "No open pages."


# ------------------------------------------------------------------ steps that fail


def test_opted_out_recipient_fails_its_step_and_the_page_moves_on(make_bot, sandbox) -> None:
    bot = make_bot()
    sandbox.inject_inbound("reg-ops", BOB, "STOP")
    bot.ask("!sms inbox")
    assert bot.ask("!sms page alice,bob,carol db1").startswith("Page P1: paged alice")
    bot.wait_for_posts("nobody acknowledged", timeout=10)
    assert bot.page_posts() == [
        f"Page P1: {SHOWN[ALICE]} did not acknowledge within 1 s; moving on.",
        f"Page P1: could not page {SHOWN[BOB]} (step 2/3): opted out (texted STOP); moving on.",
        f"Page P1: paged {SHOWN[CAROL]} (step 3/3).",
        "Page P1: nobody acknowledged after 3 steps (1 could not be sent); the page is closed.",
    ]
    assert sent_to(sandbox) == [ALICE, CAROL]
    assert bot.ask("!sms page bob db1").startswith("Not paged: every recipient opted out")


def test_uncertain_step_is_not_repeated(make_bot, sandbox) -> None:
    bot = make_bot()
    sandbox.add_fault(OUTBOX, method="POST", status=500, when="after")
    answer = bot.ask("!sms page alice,bob db1")
    assert answer.startswith(f"Page P1: the SMS to {SHOWN[ALICE]} (step 1/2) may or may not")
    assert answer.endswith("it is not sent again. Moving on in 1 s unless acknowledged.")
    bot.wait_for_posts("nobody acknowledged", timeout=10)
    assert bot.page_posts()[:2] == [
        f"Page P1: {SHOWN[ALICE]} did not acknowledge within 1 s; moving on.",
        f"Page P1: paged {SHOWN[BOB]} (step 2/2).",
    ]
    assert sent_to(sandbox) == [ALICE, BOB]  # the sandbox took alice's once; never resent
    assert "uncertain" in bot.ask("!sms log 2").splitlines()[0]


def test_refused_room_post_is_kept_and_the_step_not_resent(make_bot, sandbox) -> None:
    bot = make_bot()
    refusals = iter([True])  # the chat refuses the first post about moving on, once
    bot.fail_sends = lambda body: "moving on" in body and next(refusals, False)
    bot.ask("!sms page alice,bob db1")
    bot.wait_for_posts("nobody acknowledged", timeout=12)
    assert bot.page_posts() == [
        f"Page P1: {SHOWN[ALICE]} did not acknowledge within 1 s; moving on.",
        f"Page P1: paged {SHOWN[BOB]} (step 2/2).",
        "Page P1: nobody acknowledged after 2 steps; the page is closed.",
    ]
    assert sent_to(sandbox) == [ALICE, BOB]


# ------------------------------------------------------------------ restarts


def test_restart_between_steps_neither_repeats_nor_skips(
    env: None, tmp_path: Path, sandbox, client_id: str
) -> None:
    data = tmp_path / "data"
    first = start_bot(data, sandbox, client_id, ESCALATE_AFTER=3)
    try:
        assert first.ask("!sms page alice,bob db1").startswith("Page P1: paged alice")
    finally:
        first.stop()
    second = PageBot(data_dir=data, STORAGE="Shelf")  # the configuration comes back too
    try:
        second.wait_for_posts("nobody acknowledged", timeout=12)
        assert second.page_posts() == [
            f"Page P1: {SHOWN[ALICE]} did not acknowledge within 3 s; moving on.",
            f"Page P1: paged {SHOWN[BOB]} (step 2/2).",
            "Page P1: nobody acknowledged after 2 steps; the page is closed.",
        ]
    finally:
        second.stop()
    assert sent_to(sandbox) == [ALICE, BOB]


def test_restart_after_a_step_was_cut_short_does_not_resend_it(
    env: None, tmp_path: Path, sandbox, client_id: str
) -> None:
    data = tmp_path / "data"
    first = start_bot(data, sandbox, client_id, ESCALATE_AFTER=3)
    try:
        first.ask("!sms page alice,bob,carol db1")
    finally:
        first.stop()
    # The bot died after saving step 2 as being sent, before the SMS went out (or after).
    store = open_store(data)
    try:
        page = store.get_page("P1")
        cut = esc.begin_send(esc.advance(page, esc.wait_over_at(page)), store.now())
        assert store.save_page(cut, expected_version=page.version)
    finally:
        store.close()
    second = PageBot(data_dir=data, STORAGE="Shelf")
    try:
        second.wait_for_posts(f"paged {SHOWN[CAROL]}", timeout=12)
        assert second.page_posts() == [
            f"Page P1: the bot stopped while paging {SHOWN[BOB]} (step 2/3); that SMS may or"
            " may not have gone out and is not sent again.",
            f"Page P1: {SHOWN[BOB]} did not acknowledge within 3 s; moving on.",
            f"Page P1: paged {SHOWN[CAROL]} (step 3/3).",
        ]
        assert sent_to(sandbox) == [ALICE, CAROL]
    finally:
        second.stop()


# ------------------------------------------------------------------ de-duplication and help


def test_same_page_twice_is_refused_unless_again(make_bot, sandbox) -> None:
    bot = make_bot(ESCALATE_AFTER=30)
    assert bot.ask("!sms page alice,bob db1 disk full").startswith("Page P1: paged alice")
    assert bot.ask("!sms page bob,alice db1 disk full") == (
        f"Not paged again: {USER} paged the same text to the same recipients 0 s ago"
        " (page P1, open). Use !sms page --again ... to page anyway."
    )
    assert "refused: duplicate of page P1" in bot.ask("!sms log 1")
    assert bot.ask("!sms page --again alice,bob db1 disk full").startswith("Page P2: paged alice")
    assert bot.ask("!sms page alice,bob db1 disk is full").startswith("Page P3: paged alice")
    assert sent_to(sandbox) == [ALICE, ALICE, ALICE]
    assert bot.ask("!sms page").startswith("Not paged: usage: !sms page ")


def test_long_page_reply_says_what_it_costs(make_bot, sandbox) -> None:
    bot = make_bot(ESCALATE_AFTER=30, SMART_CHARACTERS="keep")
    answer = bot.ask("!sms page alice “db1” is full " + "x" * 60)
    assert answer.startswith("Page P1: paged alice")
    assert "Each SMS of this page: 2 parts, 2 segments x 1 recipient = 2 billed" in answer
    assert "UCS-2 because of '“', '”'" in answer


def test_help_shows_the_page_commands(make_bot) -> None:
    answer = make_bot().ask("!help AttSms")
    for command in ("sms page", "sms ack", "sms cancel", "sms pages", "--again", "<page>"):
        assert command in answer


# ------------------------------------------------------------------ the page tables


def _page(number: int, now: float) -> esc.Page:
    return esc.new_page(number, "#ops", "db1", [ALICE, BOB], now, created_by="@ann")


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    opened = engine.open()
    yield opened
    opened.close()


def test_store_numbers_pages_and_refuses_duplicates(store: Store) -> None:
    first = store.create_page(_page, dedup_key="k", dedup_window=60)
    assert first.id == "P1" and store.get_page("P1") == first  # the row is the whole page
    with pytest.raises(DuplicatePage) as refused:
        store.create_page(_page, dedup_key="k", dedup_window=60)
    assert refused.value.earlier == first
    assert store.create_page(_page, dedup_key="k", dedup_window=0).id == "P2"
    assert store.create_page(_page, dedup_key="other", dedup_window=60).id == "P3"
    assert [p.id for p in store.open_pages()] == ["P1", "P2", "P3"]
    assert store.get_page("P9") is None


def test_one_of_two_replicas_writing_the_same_version_wins(engine: Engine, store: Store) -> None:
    other = engine.open()  # another replica's connection to the same database
    try:
        page = store.create_page(_page)
        now = store.now()
        sending = esc.begin_send(other.get_page("P1"), now)
        acked = esc.acknowledge(page, "@bob", now)
        assert other.save_page(sending, expected_version=page.version, posts=["a"])
        assert not store.save_page(acked, expected_version=page.version, posts=["b"])
        assert store.get_page("P1") == sending
        (post,) = store.pending_page_posts()  # only the winner's post was queued
        assert (post.text, post.room, post.page_id) == ("a", "#ops", "P1")
        assert other.claim_page_post(post, now + 60)
        assert not store.claim_page_post(post, now + 60)  # the other poster lost it
        store.retry_page_post(post.id, now + 5, 1)
        store.finish_page_post(post.id)
        assert store.page_post_count() == 0
    finally:
        other.close()


def test_threads_racing_for_a_transition_run_it_once(store: Store) -> None:
    page = store.create_page(_page)
    sending = esc.begin_send(page, store.now())
    wins: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda: wins.append(store.save_page(sending, expected_version=page.version))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_acknowledging_message_is_remembered(store: Store) -> None:
    page = esc.begin_send(store.create_page(_page), store.now())
    assert store.save_page(page, expected_version=0)
    acked = esc.acknowledge(page, ALICE, store.now())
    assert store.save_page(acked, expected_version=page.version, ack_key="msg-1")
    assert store.page_acked_by_message("msg-1") == acked
    assert store.page_acked_by_message("msg-2") is None
    assert store.open_pages() == []
