"""Alert groups in the store, through the endpoint's logic (``AlertIntake``), on SQLite and
on a real PostgreSQL server: one page per group whatever arrives twice, also from two
stores (two replicas) at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from alertkit import alert, body, notification
from att_sms.alerts.intake import AlertConfig, AlertIntake
from att_sms.alerts.routes import parse_alert_routes
from att_sms.pages import escalation as esc
from att_sms.store import Store

pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine

TOKEN = "s3cret-token"
ALICE, BOB = "tel:+12125550101", "tel:+12125550102"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config(**kw: Any) -> AlertConfig:
    values: dict[str, Any] = dict(
        routes=parse_alert_routes({"ops": {"page": f"{ALICE},{BOB}", "room": "#ops"}}),
        repage_after=3600.0, resolved_sms=True, escalate_after=300.0, escalate_rounds=1,
        fits=lambda page: len(page.text) < 200,
    )  # fmt: skip
    values.update(kw)
    return AlertConfig(**values)


def intake_for(store: Store | None, **kw: Any) -> AlertIntake:
    return AlertIntake(
        config=lambda: config(**kw), store=lambda: store,
        resolve=lambda _store, tokens: tokens, env={"ATT_WEBHOOK_TOKEN": TOKEN},
    )  # fmt: skip


def post(intake: AlertIntake, payload: dict[str, Any], route: str | None = None) -> tuple[int, str]:
    raw = body(payload)
    answer = intake.handle(AUTH, route, len(raw), lambda n: raw[:n])
    return answer.status, answer.text


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    opened = engine.open()
    yield opened
    opened.close()


def _posts(store: Store) -> list[str]:
    return [p.text for p in store.pending_page_posts()]


def test_first_firing_opens_one_page_and_repeats_page_nobody(store: Store) -> None:
    intake = intake_for(store)
    assert post(intake, notification()) == (
        200,
        'open: page P1 opened for group {}:{alertname="DiskFull"}',
    )
    (page,) = store.open_pages()
    assert (page.id, page.room, page.recipients) == ("P1", "#ops", [ALICE, BOB])
    assert page.text == "Disk full on db1 - 1 firing" and page.send_state == esc.PENDING
    assert len(_posts(store)) == 1 and "page P1 opened" in _posts(store)[0]
    for _ in range(3):  # repeat_interval, retries, the other HA peer
        status, text = post(intake, notification())
        assert status == 200 and text.startswith("ignore:")
    assert len(store.open_pages()) == 1 and len(_posts(store)) == 1
    status, text = post(intake, notification(alert(), alert(instance="db2")))
    assert text.startswith("changed:")
    assert _posts(store)[-1].endswith("now 2 firing (was 1).")
    assert post(intake, notification(alert(), alert(instance="db2")))[1].startswith("ignore:")
    assert len(store.open_pages()) == 1 and len(_posts(store)) == 2
    (group,) = store.alert_groups()
    assert (group.route, group.page_id, group.status) == ("ops", "P1", "firing")


def test_resolved_closes_the_page_tells_the_room_and_owes_the_paged_an_sms(store: Store) -> None:
    intake = intake_for(store)
    post(intake, notification())
    page = store.get_page("P1")
    sending = esc.begin_send(page, store.now())
    assert store.save_page(sending, expected_version=page.version)
    sent = esc.record_send(sending, esc.SENT, store.now(), message_ids=["m1"])
    assert store.save_page(sent, expected_version=sending.version)
    assert post(intake, notification(alert(status="resolved")))[1] == "resolve: page P1 resolved"
    closed = store.get_page("P1")
    assert closed.state == esc.CANCELLED and closed.cancelled_by == "Alertmanager (resolved)"
    assert (
        _posts(store)[-1]
        == "Alert Disk full on db1 (page P1) resolved; the page is closed, nobody else is paged."
    )
    owed = store.pending_owed_sms()
    assert [(o.tel, o.text) for o in owed] == [(ALICE, "P1 resolved: Disk full on db1")]  # not BOB
    assert post(intake, notification(alert(status="resolved")))[1].startswith("ignore:")
    assert len(store.pending_owed_sms()) == 1 and store.alert_groups() == []
    assert post(intake, notification())[1].startswith("open: page P2")  # fires again


def test_without_resolved_sms_nobody_is_texted(store: Store) -> None:
    intake = intake_for(store, resolved_sms=False)
    post(intake, notification())
    post(intake, notification(alert(status="resolved")))
    assert store.pending_owed_sms() == []


def test_an_acknowledged_group_still_firing_pages_again_after_repage_after(store: Store) -> None:
    intake = intake_for(store, repage_after=1.0)
    post(intake, notification())
    page = store.get_page("P1")
    acked = esc.acknowledge(page, ALICE, store.now() - 0.5)
    assert store.save_page(acked, expected_version=page.version)
    assert post(intake, notification())[1].startswith("ignore:")  # acked 0.5 s ago
    earlier = esc.acknowledge(page, ALICE, store.now() - 5)  # as if acknowledged 5 s ago
    assert store.save_page(earlier, expected_version=acked.version)
    assert post(intake, notification())[1].startswith("repage: page P2")
    assert "still firing" in _posts(store)[-1] and "after page P1 closed" in _posts(store)[-1]
    assert [p.id for p in store.open_pages()] == ["P2"]


def test_routes_and_groups_are_separate(store: Store) -> None:
    routes = {"ops": {"page": ALICE, "room": "#ops"}, "db": {"page": BOB, "room": "#db"}}
    intake = intake_for(store, routes=parse_alert_routes(routes))
    assert post(intake, notification())[0] == 200
    assert post(intake, notification(), route="db")[1].startswith("open: page P2")
    assert post(intake, notification(group_key="other"))[1].startswith("open: page P3")
    assert post(intake, notification(), route="nope") == (
        404, "unknown route 'nope' (ALERT_ROUTES has: db, ops)",
    )  # fmt: skip
    assert store.get_page("P2").room == "#db"


def test_an_unusable_store_answers_503_and_nothing_is_half_written(engine: Engine) -> None:
    store = engine.open()
    intake = intake_for(store)
    store.close()
    status, text = post(intake, notification())
    assert status == 503 and "store is unavailable" in text
    reopened = engine.open()
    try:
        assert reopened.open_pages() == [] and reopened.alert_groups() == []
    finally:
        reopened.close()


def test_same_notification_at_once_from_two_stores_opens_one_page(engine: Engine) -> None:
    """Two replicas (two stores on one database), eight senders each, the same group."""
    stores = [engine.open(), engine.open()]
    try:
        intakes = [intake_for(s) for s in stores]
        barrier = threading.Barrier(16)
        answers: list[tuple[int, str]] = []

        def send(n: int) -> None:
            barrier.wait()
            answers.append(post(intakes[n % 2], notification()))

        threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(status for status, _ in answers) == [200] * 16
        assert sum(text.startswith("open:") for _, text in answers) == 1
        assert [p.id for p in stores[1].open_pages()] == ["P1"]
    finally:
        for s in stores:
            s.close()
