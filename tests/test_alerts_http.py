"""``POST /att_sms/alerts`` over real HTTP through errbot's own Webserver plugin, in the test
backend, against the carrier sandbox: authentication, every bad input, grouping, repeats,
resolve, re-fire, REPAGE_AFTER and concurrent notifications."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from alertkit import alert, body, notification
from botkit import Bot, sandbox_config

ALICE, BOB = "tel:+12125550101", "tel:+12125550102"
TOKEN = "alert-token-7d2e91"
ROUTES = {"ops": {"page": "alice,bob", "room": "#ops"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AlertBot(Bot):
    """Room posts stay off the reply queue so that ``ask`` returns the command's reply."""

    def record(self, msg: Any) -> bool:
        super().record(msg)
        return str(msg.to) != "Err"

    def room(self, room: str = "#ops") -> list[str]:
        return [text for to, text in self.posts if to == room]


def start_alert_bot(
    data: Path, sandbox: Any, client_id: str, **overrides: Any
) -> tuple[AlertBot, str]:
    bot = AlertBot(data_dir=data, STORAGE="Shelf")
    config = sandbox_config(
        sandbox, client_id, FOLLOW_UP=False, ESCALATE_AFTER=2, ALERT_ROUTES=ROUTES
    )
    config.update(overrides)
    assert bot.configure(config) == "Plugin configuration done."
    for name, tel in (("alice", ALICE), ("bob", BOB)):
        assert bot.ask(f"!sms contact add {name} {tel[4:]}").startswith(f"Contact {name}")
    port = free_port()
    answer = bot.ask(f"!plugin config Webserver {{'HOST': '127.0.0.1', 'PORT': {port}}}")
    assert answer == "Plugin configuration done.", answer
    url = f"http://127.0.0.1:{port}/att_sms/alerts"
    deadline = time.monotonic() + 10
    while True:  # the Webserver starts in its own thread
        try:
            requests.post(url, timeout=2)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "errbot's Webserver did not start"
            time.sleep(0.05)
    return bot, url


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ATT_WEBHOOK_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def make_bot(env: None, tmp_path: Path, sandbox: Any, client_id: str) -> Iterator[Any]:
    bots: list[AlertBot] = []

    def make(**overrides: Any) -> tuple[AlertBot, str]:
        bot, url = start_alert_bot(tmp_path / "data", sandbox, client_id, **overrides)
        bots.append(bot)
        return bot, url

    yield make
    for bot in bots:
        bot.stop()


def send(url: str, payload: Any, token: str | None = TOKEN, **kw: Any) -> requests.Response:
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = payload if isinstance(payload, bytes) else body(payload)
    return requests.post(url, data=data, headers=headers, timeout=10, **kw)


def sms_to(sandbox: Any) -> list[tuple[str, str]]:
    return [(a, s["message"]) for s in sandbox.state()["sent"] for a in s["addresses"]]


def wait_for(predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


# ------------------------------------------------------------------ refusals


def test_without_a_token_in_the_environment_nothing_is_accepted(
    make_bot: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATT_WEBHOOK_TOKEN", raising=False)
    bot, url = make_bot()
    answer = send(url, notification(), token="anything")
    assert answer.status_code == 503 and "ATT_WEBHOOK_TOKEN is not set" in answer.text
    assert bot.ask("!sms pages") == "No open pages." and sandbox.state()["sent"] == []


def test_every_bad_request_is_refused_with_one_line_and_pages_nobody(
    make_bot: Any, sandbox: Any, token: str
) -> None:
    bot, url = make_bot(ALERT_ROUTES={**ROUTES, "ghost": {"page": "nobody", "room": "#ops"}})
    cases = [
        (send(url, notification(), token=None), 401, "Bearer token"),
        (send(url, notification(), token="wrong"), 401, "Bearer token"),
        (send(url, notification(), token=token + "x"), 401, "Bearer token"),
        (
            send(url, notification(), headers={"Authorization": f"Basic {token}"}, token=None),
            401,
            "Bearer",
        ),
        (send(url, b"x" * (1024 * 1024 + 1)), 413, "over 1048576 bytes"),
        (send(url, b"{not json"), 400, "body is not JSON"),
        (send(url, {**notification(), "version": "2"}), 400, '"version" must be "4"'),
        (send(url, {**notification(), "alerts": "none"}), 400, '"alerts" must be a list'),
        (send(url, notification(receiver="dbteam")), 404, "unknown route 'dbteam'"),
        (send(url, notification(), params={"route": "nope"}), 404, "unknown route 'nope'"),
        (send(url, notification(), params={"route": "ghost"}), 422, "route 'ghost': cannot page"),
    ]
    for answer, status, reason in cases:
        assert (answer.status_code, reason in answer.text) == (status, True), answer.text
        assert answer.text.count("\n") == 1  # one line
    assert cases[0][0].headers["WWW-Authenticate"].startswith("Bearer")
    assert bot.ask("!sms pages") == "No open pages."
    assert bot.ask("!sms alerts") == "No firing alert groups."
    time.sleep(1.2)
    assert sandbox.state()["sent"] == [] and bot.room() == []


# ------------------------------------------------------------------ one page per group


def test_a_group_pages_once_and_its_repeats_page_nobody(
    make_bot: Any, sandbox: Any, token: str
) -> None:
    bot, url = make_bot(ESCALATE_AFTER=30)
    started = time.monotonic()
    answer = send(url, notification(alert(), alert(instance="db2"), truncated=1))
    assert answer.status_code == 200 and answer.text.startswith("open: page P1 opened")
    assert time.monotonic() - started < 1.0
    first = wait_for(lambda: sms_to(sandbox), timeout=5)
    assert first == [
        (ALICE, "P1: Disk full on db1 - 2 firing (+1 more) (Reply ACK P1 to acknowledge)")
    ]
    opened = wait_for(lambda: bot.room(), timeout=5)
    assert (
        "page P1 opened, paging alice,bob" in opened[0]
        and r"hxxp://alertmanager\[.\]example\[.\]com:9093" in opened[0]  # Markdown shows [.]
    )
    for _ in range(4):  # repeat_interval, retries, both HA peers
        again = send(url, notification(alert(), alert(instance="db2"), truncated=1))
        assert again.status_code == 200 and again.text.startswith("ignore:")
    changed = send(url, notification(alert()))
    assert changed.status_code == 200 and changed.text.startswith("changed:")
    assert wait_for(lambda: [t for t in bot.room() if "now 1 firing (was 2)" in t])
    assert send(url, notification(alert())).text.startswith("ignore:")
    time.sleep(1.5)
    assert len(sms_to(sandbox)) == 1 and len(bot.room()) == 3  # opened, paged alice, changed
    assert bot.ask("!sms pages").startswith("P1 (step 1/2")
    listed = bot.ask("!sms alerts")
    assert (
        listed.startswith("Disk full on db1 (route ops, 1 firing, since")
        and "page P1 open" in listed
    )


def test_same_notification_from_many_senders_at_once_opens_one_page(
    make_bot: Any, sandbox: Any, token: str
) -> None:
    bot, url = make_bot(ESCALATE_AFTER=30)
    barrier = threading.Barrier(10)
    answers: list[requests.Response] = []

    def post() -> None:
        barrier.wait()
        answers.append(send(url, notification()))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 10
    assert sum(a.text.startswith("open:") for a in answers) == 1
    wait_for(lambda: sms_to(sandbox))
    time.sleep(1.2)
    assert len(sms_to(sandbox)) == 1


# ------------------------------------------------------------------ resolve, re-fire, re-page


def test_resolved_stops_the_escalation_tells_the_room_and_texts_who_was_paged(
    make_bot: Any, sandbox: Any, token: str
) -> None:
    bot, url = make_bot(ESCALATE_AFTER=2)
    assert send(url, notification()).status_code == 200
    wait_for(lambda: sms_to(sandbox))
    resolved = send(url, notification(alert(status="resolved")))
    assert resolved.status_code == 200 and resolved.text == "resolve: page P1 resolved\n"
    assert wait_for(lambda: [t for t in bot.room() if "resolved" in t]) == [
        "Alert Disk full on db1 (page P1) resolved; the page is closed, nobody else is paged."
    ]
    wait_for(lambda: len(sms_to(sandbox)) == 2)
    time.sleep(3)  # past ESCALATE_AFTER: bob is never paged
    assert sms_to(sandbox) == [
        (ALICE, "P1: Disk full on db1 - 1 firing (Reply ACK P1 to acknowledge)"),
        (ALICE, "P1 resolved: Disk full on db1"),
    ]
    assert bot.ask("!sms pages") == "No open pages."
    assert bot.ask("!sms alerts") == "No firing alert groups."
    assert send(url, notification(alert(status="resolved"))).text.startswith("ignore:")
    refired = send(url, notification())
    assert refired.text.startswith("open: page P2 opened")
    wait_for(lambda: len(sms_to(sandbox)) == 3)
    assert sms_to(sandbox)[-1][1].startswith("P2: Disk full on db1")


def test_resolved_sms_off_texts_nobody(make_bot: Any, sandbox: Any, token: str) -> None:
    bot, url = make_bot(RESOLVED_SMS=False, ESCALATE_AFTER=30)
    send(url, notification())
    wait_for(lambda: sms_to(sandbox))
    send(url, notification(alert(status="resolved")))
    assert wait_for(lambda: [t for t in bot.room() if "resolved" in t])
    time.sleep(1.5)
    assert len(sms_to(sandbox)) == 1


def test_an_acknowledged_group_pages_again_only_after_repage_after(
    make_bot: Any, sandbox: Any, token: str
) -> None:
    bot, url = make_bot(ESCALATE_AFTER=30, REPAGE_AFTER=3)
    send(url, notification())
    wait_for(lambda: sms_to(sandbox))
    sandbox.inject_inbound("reg-ops", ALICE, "ack")
    bot.ask("!sms inbox")
    assert wait_for(lambda: [t for t in bot.room() if "acknowledged by alice" in t])
    assert send(url, notification()).text.startswith("ignore:")  # acknowledged, still firing
    time.sleep(3.2)
    again = send(url, notification())
    assert again.text.startswith("repage: page P2 opened")
    wait_for(lambda: [m for _, m in sms_to(sandbox) if m.startswith("P2:")])
    texts = [m for _, m in sms_to(sandbox)]
    assert [t[:3] for t in texts] == ["P1:", "Ack", "P2:"]  # the page, the ack's answer, P2
    assert texts[1] == "Acknowledged P1: Disk full on db1 - 1 firing"
    assert wait_for(
        lambda: [t for t in bot.room() if "still firing" in t and "after page P1 closed" in t]
    )


# ------------------------------------------------------------------ answers to acknowledgements


def test_acks_by_sms_are_answered_once_each(make_bot: Any, sandbox: Any, token: str) -> None:
    bot, url = make_bot(ESCALATE_AFTER=1)
    send(url, notification())
    wait_for(lambda: len(sms_to(sandbox)) == 2, timeout=8)  # alice, then bob
    sandbox.inject_inbound("reg-ops", BOB, "ack P1")
    sandbox.inject_inbound("reg-ops", ALICE, "OK")
    sandbox.inject_inbound("reg-ops", ALICE, "ack P9")
    sandbox.inject_inbound("reg-ops", ALICE, "ack P8")  # a second miss within the hour
    bot.ask("!sms inbox")
    assert wait_for(lambda: len(sms_to(sandbox)) == 5, timeout=8)
    time.sleep(1.5)
    answers = sms_to(sandbox)[2:]
    assert answers[0] == (BOB, "Acknowledged P1: Disk full on db1 - 1 firing")
    assert answers[1][0] == ALICE and answers[1][1].startswith(
        "P1 was already acknowledged by bob "
    )
    assert answers[1][1].endswith(" s ago")
    assert answers[2] == (
        ALICE,
        "Nothing acknowledged: P9 was not sent to this number. Reply ACK P<n> to acknowledge an open page.",
    )
    assert len(sms_to(sandbox)) == 5
    assert bot.ask("!sms ack P1").startswith("Nothing to do: Page P1 acknowledged by bob")


def test_ack_confirm_off_answers_nothing(make_bot: Any, sandbox: Any, token: str) -> None:
    bot, url = make_bot(ESCALATE_AFTER=30, ACK_CONFIRM=False)
    send(url, notification())
    wait_for(lambda: sms_to(sandbox))
    sandbox.inject_inbound("reg-ops", ALICE, "ack")
    sandbox.inject_inbound("reg-ops", ALICE, "ack P4")
    bot.ask("!sms inbox")
    assert wait_for(lambda: [t for t in bot.room() if "acknowledged by alice" in t])
    time.sleep(1.5)
    assert len(sms_to(sandbox)) == 1


def test_a_resolved_alert_can_be_cancelled_and_listed_from_chat(
    make_bot: Any, sandbox: Any, token: str
) -> None:
    bot, url = make_bot(ESCALATE_AFTER=30)
    send(url, notification())
    wait_for(lambda: sms_to(sandbox))
    assert bot.ask("!sms cancel P1").startswith("Page P1 cancelled by")
    listed = bot.ask("!sms alerts")
    assert "page P1 cancelled" in listed
    assert send(url, notification()).text.startswith("ignore:")  # cancelled: not paged again yet


# ------------------------------------------------------------------ Grafana, as documented


def test_the_documented_grafana_contact_point_pages(
    make_bot: Any, sandbox: Any, token: str, tmp_path: Path
) -> None:
    import yaml

    bot, url = make_bot(ESCALATE_AFTER=30)
    example = (
        Path(__file__).resolve().parent.parent / "docs" / "examples" / "grafana-contact-point.yml"
    )
    (receiver,) = yaml.safe_load(example.read_text())["contactPoints"][0]["receivers"]
    settings = receiver["settings"]
    assert receiver["type"] == "webhook" and receiver["disableResolveMessage"] is False
    target = settings["url"].replace("http://127.0.0.1:3141/att_sms/alerts", url)
    credentials = settings["authorization_credentials"]
    token_file = credentials.removeprefix("$__file{").removesuffix("}")
    assert token_file == "/etc/grafana/att-webhook-token"  # Grafana reads the token from it
    payload = notification(
        receiver="att-sms-oncall", orgId=1, state="alerting", title="[FIRING:1] DiskFull",
        message="**Firing**", groupKey='{}/{__grafana_autogenerated__="true"}:{alertname="DiskFull"}',
    )  # fmt: skip
    payload["version"] = "1"
    payload["alerts"][0].update(values={"A": 97.2}, dashboardURL="", panelURL="", silenceURL="")
    headers = {"Authorization": f"{settings['authorization_scheme']} {token}"}
    answer = requests.request(
        settings["httpMethod"], target, data=body(payload), headers=headers, timeout=10
    )
    assert answer.status_code == 200 and answer.text.startswith("open: page P1 opened")
    assert wait_for(lambda: sms_to(sandbox))[0][1].startswith("P1: Disk full on db1 - 1 firing")
    payload["status"], payload["alerts"][0]["status"] = "resolved", "resolved"
    resolved = requests.request(
        settings["httpMethod"], target, data=body(payload), headers=headers, timeout=10
    )
    assert resolved.text == "resolve: page P1 resolved\n"
