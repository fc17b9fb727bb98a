"""The plain alert modules: payload checks, routes, page text, decisions."""

from __future__ import annotations

import json

import pytest
from alertkit import alert, body, notification
from att_sms.alerts.decide import CHANGED, IGNORE, OPEN_PAGE, REPAGE, RESOLVE, GroupState, decide
from att_sms.alerts.payload import PayloadError, parse_notification
from att_sms.alerts.routes import RouteError, parse_alert_routes, select_route
from att_sms.alerts.text import defang, opened_line, page_text, summary_of
from att_sms.setting_values import SettingsError
from att_sms.settings import parse_settings


def test_an_alertmanager_notification_is_parsed_into_its_parts() -> None:
    n = parse_notification(body(notification(alert(), alert(instance="db2"), truncated=2)))
    assert n.group_key == '{}:{alertname="DiskFull"}'
    assert n.status == "firing" and n.receiver == "ops" and n.truncated_alerts == 2
    assert n.firing_fingerprints == ("fp-DiskFull-db1", "fp-DiskFull-db2")
    assert n.alerts[0].labels == {"alertname": "DiskFull"}


def test_a_grafana_notification_with_its_extra_fields_is_accepted() -> None:
    payload = notification(orgId=1, state="alerting", title="[FIRING:1] DiskFull", message="m")
    payload["version"] = "1"
    payload["alerts"][0].update(values={"B": 97.5}, dashboardURL="", panelURL="", silenceURL="")
    n = parse_notification(body(payload))
    assert n.title == "[FIRING:1] DiskFull" and len(n.firing) == 1


BAD = [
    (b"not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[]", "body must be a JSON object, not a list"),
    (body({**notification(), "version": "3"}), '"version" must be "4"'),
    (body({**notification(), "groupKey": ""}), '"groupKey" must be a non-empty string'),
    (body({**notification(), "status": "on fire"}), '"status" must be "firing" or "resolved"'),
    (body({**notification(), "alerts": {}}), '"alerts" must be a list, not an object'),
    (body({**notification(), "alerts": [1]}), '"alerts"[0] must be an object'),
    (body({**notification(), "truncatedAlerts": -1}), '"truncatedAlerts" must be'),
    (body({**notification(), "commonLabels": {"a": 1}}), '"commonLabels"."a" must be a string'),
    (body(notification(alert(status="resolved"), status="firing")), "no alert in"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_bad_bodies_are_refused_with_a_one_line_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(raw)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_routes_are_checked_and_selected() -> None:
    routes = parse_alert_routes({"ops": {"page": "alice, oncall", "room": "#ops"}})
    assert routes["ops"].targets == ["alice", "oncall"]
    assert select_route(routes, None, "ops") is routes["ops"]
    assert select_route(routes, "db", "ops") is None  # the query parameter wins
    assert select_route({"default": routes["ops"]}, None, "") is routes["ops"]
    for bad in ({"ops": {"page": "", "room": "#ops"}}, {"ops": {"page": "a"}}, {"b a": {}}, []):
        with pytest.raises(RouteError):
            parse_alert_routes(bad)


def test_page_text_has_summary_count_and_truncation_and_fits() -> None:
    n = parse_notification(body(notification(alert(), alert(instance="db2"), truncated=3)))
    assert page_text(n, lambda t: True) == "Disk full on db1 - 2 firing (+3 more)"
    long = parse_notification(body(notification(summary="x" * 500)))
    text = page_text(long, lambda t: len(t) <= 60)
    assert len(text) <= 60 and text.endswith("... - 1 firing") and text.startswith("xxxx")


def test_summary_falls_back_to_the_alertname() -> None:
    n = parse_notification(body(notification(summary=None, commonLabels={})))
    assert summary_of(n) == "DiskFull"


def test_room_lines_show_urls_defanged_and_names_inert() -> None:
    assert defang("https://grafana.example.com/d/x") == "hxxps://grafana[.]example[.]com/d/x"
    n = parse_notification(body(notification(summary="@here <!channel> db1")))
    line = opened_line("P7", "ops", n, "alice")
    assert "page P7 opened" in line and "@here" not in line and "<!channel>" not in line
    assert "alertmanager.example.com" not in line and "hxxp://" in line


def _state(**kw: object) -> GroupState:
    base = dict(route="ops", group_key="g", page_id="P1", status="firing",
                fingerprints=("fp-DiskFull-db1",), page_open=True, page_ended_at=None)  # fmt: skip
    base.update(kw)
    return GroupState(**base)  # type: ignore[arg-type]


def test_decisions() -> None:
    firing = parse_notification(body(notification()))
    two = parse_notification(body(notification(alert(), alert(instance="db2"))))
    resolved = parse_notification(body(notification(alert(status="resolved"))))
    assert decide(None, firing, 100, 50).kind == OPEN_PAGE
    assert decide(_state(), firing, 100, 50).kind == IGNORE
    assert decide(_state(), two, 100, 50).kind == CHANGED
    assert decide(_state(), resolved, 100, 50).kind == RESOLVE
    assert decide(None, resolved, 100, 50).kind == IGNORE
    assert decide(_state(status="resolved"), resolved, 100, 50).kind == IGNORE
    assert decide(_state(status="resolved", page_open=False), firing, 100, 50).kind == OPEN_PAGE
    acked = _state(page_open=False, page_ended_at=60.0)
    assert decide(acked, firing, 100, 50).kind == IGNORE  # acknowledged 40 s ago
    assert decide(acked, two, 100, 50).kind == CHANGED
    assert decide(acked, firing, 110, 50).kind == REPAGE  # REPAGE_AFTER passed
    assert json.dumps(decide(acked, firing, 110, 50).why)


BASE = {"API_BASE_URL": "http://127.0.0.1:8080", "CLIENT_ID": "c"}
ENV = {"ATT_CLIENT_SECRET": "s"}


def test_alert_settings_defaults_and_checks() -> None:
    settings = parse_settings(BASE, ENV)
    assert (settings.alert_routes, settings.resolved_sms) == ({}, True)
    assert (settings.repage_after, settings.ack_confirm) == (14400.0, True)
    routes = {"ops": {"page": "alice", "room": "#ops"}}
    configured = parse_settings({**BASE, "ALERT_ROUTES": routes, "REPAGE_AFTER": 60}, ENV)
    assert configured.alert_routes["ops"].room == "#ops" and configured.repage_after == 60
    from_env = parse_settings(BASE, {**ENV, "ATT_ALERT_ROUTES": json.dumps(routes)})
    assert from_env.alert_routes == configured.alert_routes
    for bad in ({"ALERT_ROUTES": {"ops": "alice"}}, {"REPAGE_AFTER": 0}, {"ACK_CONFIRM": "maybe"}):
        with pytest.raises(SettingsError) as caught:
            parse_settings({**BASE, **bad}, ENV)
        assert caught.value.key == next(iter(bad))


def test_the_webhook_token_is_refused_in_the_config() -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings({**BASE, "WEBHOOK_TOKEN": "t"}, ENV)
    assert "set ATT_WEBHOOK_TOKEN in the bot's environment" in str(caught.value)
