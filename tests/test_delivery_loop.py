"""Closed loop on delivery: a page step the carrier cannot deliver (``DeliveryImpossible``)
moves on at once and the room is told, for pages from chat and from alerts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from alertkit import notification
from att_sms.pages.delivery_loop import undeliverable
from att_sms.pages.escalation import FAILED, SENT, begin_send, new_page, record_send
from test_alerts_http import AlertBot, send, sms_to, start_alert_bot, wait_for

DEAD = "tel:+12125559999"  # the sandbox reports DeliveryImpossible for numbers ending 9999
BOB = "tel:+12125550102"


def test_only_the_current_step_of_an_open_page_fails() -> None:
    page = begin_send(new_page(1, "#ops", "x", [DEAD, BOB], 0.0, created_by="u"), 1.0)
    sent = record_send(page, SENT, 2.0, message_ids=["m1"])
    failed = undeliverable(sent, "m1", 5.0)
    assert failed is not None and failed.send_state == FAILED and failed.step_started_at == 5.0
    assert failed.history[-1]["outcome"] == FAILED and failed.version == sent.version + 1
    assert undeliverable(sent, "other", 5.0) is None
    assert undeliverable(failed, "m1", 6.0) is None


@pytest.fixture
def bot(
    env: None, tmp_path: Path, sandbox: Any, client_id: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("ATT_WEBHOOK_TOKEN", "t0ken")
    routes = {"ops": {"page": "dead,bob", "room": "#ops"}}
    made, url = start_alert_bot(
        tmp_path / "data",
        sandbox,
        client_id,
        FOLLOW_UP=True,
        ESCALATE_AFTER=60,
        ALERT_ROUTES=routes,
    )
    assert made.ask(f"!sms contact add dead {DEAD[4:]}").startswith("Contact dead")
    made.url = url
    yield made
    made.stop()


def _moved_on_quickly(bot: AlertBot, sandbox: Any, started: float) -> None:
    assert wait_for(lambda: [a for a, _ in sms_to(sandbox)] == [DEAD, BOB], timeout=15)
    assert time.monotonic() - started < 15  # not ESCALATE_AFTER (60 s)
    told = [t for _, t in bot.posts if t.startswith("Page P1: the SMS to")]
    assert told and told[0].startswith(
        "Page P1: the SMS to dead (+1 212-555-9999) (step 1/2) could"
    )
    assert told[0].endswith("(the carrier says DeliveryImpossible); moving on now.")


def test_a_chat_page_moves_on_when_its_sms_cannot_be_delivered(bot: AlertBot, sandbox: Any) -> None:
    started = time.monotonic()
    assert bot.ask("!sms page dead,bob db1 down").startswith("Page P1: paged dead")
    _moved_on_quickly(bot, sandbox, started)


def test_an_alert_page_moves_on_when_its_sms_cannot_be_delivered(
    bot: AlertBot, sandbox: Any
) -> None:
    started = time.monotonic()
    assert send(bot.url, notification(), token="t0ken").status_code == 200
    _moved_on_quickly(bot, sandbox, started)
    assert [t for to, t in bot.posts if to == "#ops" and "could not be delivered" in t]
