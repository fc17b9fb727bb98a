"""The health answer, readiness and the room alerts: plain logic, times passed in."""

from __future__ import annotations

import pytest
from att_sms.ops.health import (
    CarrierCheck,
    HealthSnapshot,
    RegistrationHealth,
    StoreHealth,
    TokenState,
    count_sends,
    format_health,
    readiness,
    stuck_bound,
)
from att_sms.ops.poll_alerts import PollAlerts
from att_sms.text.common import format_duration

NOW = 1_776_592_800.0


def healthy() -> HealthSnapshot:
    return HealthSnapshot(
        store=StoreHealth("sqlite", 1_234_567),
        carrier=CarrierCheck(True, 0.023),
        token=TokenState(True, 52 * 60 + 10),
        registrations=(
            RegistrationHealth("reg-a", NOW - 3600, last_success=NOW - 12, room="#oncall"),
        ),
        follow_ups_open=1,
        escalations_open=0,
        sends_last_hour={"sent": 4, "refused": 1},
    )


def test_healthy_answer_is_one_ok_line() -> None:
    text = format_health(healthy(), NOW)
    assert "PROBLEMS" not in text and "\n" not in text
    assert text == (
        "OK: carrier reachable (23 ms), token valid 52 min, registration reg-a (#oncall) "
        "polled 12 s ago, 0 messages waiting to be posted, 1 follow-up open, "
        "0 escalations open, sends last hour: 4 sent, 1 refused, store sqlite 1.2 MB"
    )


def test_problems_lead_the_answer() -> None:
    snapshot = HealthSnapshot(
        store=StoreHealth("postgresql", None, usable=False, error="connection refused\nat 5432"),
        carrier=CarrierCheck(False, error="carrier unavailable: connection refused"),
        token=TokenState(False, error="the carrier refused the client credentials"),
        registrations=(
            RegistrationHealth("reg-a", NOW - 3600, last_success=NOW - 5),
            RegistrationHealth(
                "reg-b",
                NOW - 3600,
                last_success=NOW - 14 * 60,
                consecutive_failures=5,
                backoff=240,
                last_error="HTTP 503 " + "x" * 300,
            ),
            RegistrationHealth("reg-c", NOW - 3600, last_success=NOW - 20 * 60),
        ),
        waiting_posts=12,
        oldest_waiting=NOW - 9 * 60,
        sends_last_hour={"sent": 3, "uncertain": 2},
    )
    problems, ok = format_health(snapshot, NOW, stuck_after=600).split("\n")
    assert problems.startswith(
        "PROBLEMS: no valid token: the carrier refused the client credentials; "
        "carrier unreachable: carrier unavailable: connection refused; "
        "store postgresql unusable: connection refused at 5432; registration reg-b"
    )
    assert (
        "registration reg-b: no successful poll for 14 min (5 failures, retrying every 4 min; "
        "last error: HTTP 503 xxx"
    ) in problems
    assert "x" * 200 not in problems  # long errors are cut
    assert "registration reg-c: no poll for 20 min (is the poller stuck?)" in problems
    assert "12 messages waiting to be posted, oldest 9 min" in problems
    assert "2 sends uncertain in the last hour (see !sms log)" in problems
    assert "store postgresql unusable: connection refused at 5432" in problems
    assert ok.startswith("OK: registration reg-a polled 5 s ago")
    assert "sends last hour: 3 sent" in ok and "escalations" not in ok


def test_unknowns_are_said_plainly() -> None:
    snapshot = HealthSnapshot(
        store=StoreHealth("memory"),
        registrations=(RegistrationHealth("reg-a", NOW - 10),),
    )
    assert format_health(snapshot, NOW) == (
        "OK: carrier not checked, no token fetched yet, registration reg-a not polled yet, "
        "0 messages waiting to be posted, 0 follow-ups open, sends last hour: none, "
        "store memory size unknown"
    )


def test_never_polled_successfully_is_a_problem_once_it_failed() -> None:
    reg = RegistrationHealth("reg-a", NOW - 300, consecutive_failures=2, last_error="HTTP 401")
    text = format_health(HealthSnapshot(StoreHealth("sqlite", 10), registrations=(reg,)), NOW)
    assert text.startswith(
        "PROBLEMS: registration reg-a: no successful poll since watching began 5 min ago "
        "(2 failures; last error: HTTP 401)"
    )


def test_what_blocks_sending_comes_first() -> None:
    """Credentials, then reachability, then the store; a slow carrier after them."""
    snapshot = HealthSnapshot(
        StoreHealth("sqlite", None, usable=False, error="disk I/O error"),
        carrier=CarrierCheck(True, 3.4),
        token=TokenState(False, error="AuthenticationError: HTTP 401 from carrier"),
        registrations=(RegistrationHealth("reg-a", NOW - 300, consecutive_failures=2),),
        sends_last_hour={"uncertain": 1},
    )
    problems = format_health(snapshot, NOW).split("\n")[0].removeprefix("PROBLEMS: ")
    order = [
        "no valid token: AuthenticationError: HTTP 401",
        "store sqlite unusable: disk I/O error",
        "carrier slow (3 s round trip)",
        "registration reg-a: no successful poll",
        "1 send uncertain in the last hour (see !sms log)",
    ]
    assert problems.startswith(order[0])
    assert [problems.index(part) for part in order] == sorted(problems.index(p) for p in order)


def test_slow_carrier_is_a_problem() -> None:
    snapshot = HealthSnapshot(StoreHealth("sqlite", 10), carrier=CarrierCheck(True, 3.4))
    assert format_health(snapshot, NOW).startswith("PROBLEMS: carrier slow (3 s round trip)")


def test_readiness() -> None:
    assert readiness(healthy(), NOW, 60) == (True, "ready")
    stuck = HealthSnapshot(
        StoreHealth("sqlite", 10),
        registrations=(
            RegistrationHealth("reg-a", NOW - 3600, last_success=NOW - 30),
            RegistrationHealth("reg-b", NOW - 3600, last_success=NOW - 14 * 60),
            RegistrationHealth("reg-c", NOW - 11 * 60),
        ),
    )
    ready, why = readiness(stuck, NOW, 600)
    assert not ready
    assert why == (
        "registration reg-b: no successful poll for 14 min (limit 10 min); "
        "registration reg-c: no successful poll for 11 min (limit 10 min)"
    )
    assert readiness(stuck, NOW, 3600) == (True, "ready")
    broken = HealthSnapshot(StoreHealth("postgresql", usable=False, error="server closed"))
    assert readiness(broken, NOW, 600) == (False, "store postgresql unusable: server closed")


def test_stuck_bound_covers_the_longest_backoff() -> None:
    assert stuck_bound(30, 300) == 390
    assert stuck_bound(600, 300) == 2400


def test_poll_alerts_say_down_once_and_recovered_once() -> None:
    alerts = PollAlerts(alert_after=600)
    start = NOW
    assert alerts.check("reg-b", start, start + 599) is None
    down = alerts.check("reg-b", start, start + 610, error="HTTP 503")
    assert down is not None and down.kind == "down" and down.registration == "reg-b"
    assert down.text.startswith(
        "SMS replies to registration reg-b are not coming in: polling the carrier has failed "
        "for 10 min. Last error: HTTP 503."
    )
    assert alerts.check("reg-b", start, start + 1200) is None
    assert alerts.alerted() == {"reg-b"}
    up = alerts.check("reg-b", None, start + 1500)
    assert up is not None and up.kind == "recovered"
    assert up.text == (
        "SMS replies to registration reg-b are coming in again "
        "(polling the carrier failed for 25 min)."
    )
    assert alerts.check("reg-b", None, start + 1600) is None
    assert alerts.alerted() == frozenset()
    # A new run of failures may alert again, once.
    assert alerts.check("reg-b", start + 2000, start + 2700).kind == "down"
    assert alerts.check("reg-b", start + 2000, start + 2800) is None


def test_short_failures_say_nothing() -> None:
    alerts = PollAlerts(alert_after=600)
    assert alerts.check("reg-a", NOW, NOW + 300) is None
    assert alerts.check("reg-a", None, NOW + 330) is None  # no "recovered" without "down"


def test_check_all_and_forgetting() -> None:
    alerts = PollAlerts(alert_after=60)
    found = alerts.check_all({"reg-a": NOW, "reg-b": None}, NOW + 61, {"reg-a": "timeout"})
    assert [(a.registration, a.kind) for a in found] == [("reg-a", "down")]
    assert "Last error: timeout." in found[0].text
    assert alerts.check_all({"reg-b": None}, NOW + 62) == []  # reg-a was unconfigured
    assert alerts.alerted() == frozenset()
    with pytest.raises(ValueError):
        PollAlerts(alert_after=float("nan"))


def test_count_sends_reads_the_audit_log() -> None:
    entries = [
        {"when": NOW - 4000, "outcome": "sent"},
        {"when": NOW - 100, "outcome": "sent"},
        {"when": NOW - 50, "outcome": "uncertain: carrier timed out"},
        {"when": NOW - 10, "outcome": "refused: HTTP 400"},
        {"when": "garbage", "outcome": "sent"},
        {"outcome": "sent"},
        {"when": NOW - 5, "outcome": "contact alice added: tel:+12125550101"},
        {"when": NOW - 5, "outcome": "rotation primary removed"},
    ]
    assert count_sends(entries, NOW) == {"sent": 1, "uncertain": 1, "refused": 1}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0234, "23 ms"),
        (45, "45 s"),
        (14 * 60 + 59, "14 min"),
        (2 * 3600, "2 h"),
        (2 * 3600 + 5 * 60, "2 h 5 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
        (-1, "?"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
