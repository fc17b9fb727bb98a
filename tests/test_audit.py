"""Tests for att_sms.audit: the bounded send log and its one-line format."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from att_sms import audit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHEN = datetime(2026, 4, 19, 10, 0, 59, tzinfo=UTC).timestamp()
A = "tel:+12125551234"
B = "tel:+12125555678"


def entry(**changes: object) -> dict:
    base = {
        "who": "alice",
        "when": WHEN,
        "recipients": [A, B],
        "parts": 2,
        "message_ids": ["id1", "id2"],
        "outcome": "sent",
    }
    base.update(changes)
    return base


def add(log: list, **changes: object) -> None:
    e = entry(**changes)
    audit.record(
        log,
        who=e["who"],
        when=e["when"],
        recipients=e["recipients"],
        parts=e["parts"],
        message_ids=e["message_ids"],
        outcome=e["outcome"],
        **({"limit": changes["limit"]} if "limit" in changes else {}),
    )


def test_record_appends_plain_entry() -> None:
    log: list = []
    audit.record(
        log,
        who="alice",
        when=WHEN,
        recipients=(r for r in [A, B]),
        parts=2,
        message_ids=("id1", "id2"),
        outcome="sent",
    )
    assert log == [entry()]
    assert json.loads(json.dumps(log)) == log


def test_record_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        audit.record([], "alice", WHEN, [A], 1, [], "sent")  # type: ignore[misc]


def test_record_keeps_last_limit() -> None:
    log: list = []
    for i in range(7):
        audit.record(
            log,
            who=f"u{i}",
            when=WHEN + i,
            recipients=[A],
            parts=1,
            message_ids=[],
            outcome="sent",
            limit=3,
        )
    assert [e["who"] for e in log] == ["u4", "u5", "u6"]


def test_record_default_limit() -> None:
    assert audit.DEFAULT_LIMIT == 1000
    log = [entry(who=f"old{i}") for i in range(1000)]
    add(log, who="new")
    assert len(log) == 1000
    assert log[0]["who"] == "old1"
    assert log[-1]["who"] == "new"


def test_record_shrinks_an_oversized_log_in_place() -> None:
    log = [entry(who=f"old{i}") for i in range(10)]
    same = log
    audit.record(
        log, who="new", when=WHEN, recipients=[], parts=1, message_ids=[], outcome="x", limit=2
    )
    assert same is log
    assert [e["who"] for e in log] == ["old9", "new"]


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_record_refuses_bad_limit(limit: object) -> None:
    log: list = []
    with pytest.raises(ValueError, match=r"^limit must be an integer >= 1, not "):
        audit.record(
            log,
            who="a",
            when=WHEN,
            recipients=[],
            parts=1,
            message_ids=[],
            outcome="x",
            limit=limit,  # type: ignore[arg-type]
        )
    assert log == []


def test_last_newest_last_and_copies() -> None:
    log: list = []
    for i in range(5):
        add(log, who=f"u{i}")
    assert [e["who"] for e in audit.last(log, 2)] == ["u3", "u4"]
    assert [e["who"] for e in audit.last(log, 50)] == ["u0", "u1", "u2", "u3", "u4"]
    assert audit.last(log, 0) == []
    assert audit.last(log, -3) == []
    assert audit.last([], 5) == []
    got = audit.last(log, 1)
    got[0]["who"] = "changed"
    assert log[-1]["who"] == "u4"


def test_format_entry_example() -> None:
    assert audit.format_entry(entry()) == (
        "2026-04-19 10:00 UTC alice -> tel:+12125551234, tel:+12125555678 2 parts [id1, id2]: sent"
    )


def test_format_entry_singular_and_empty() -> None:
    line = audit.format_entry(entry(recipients=[A], parts=1, message_ids=[], outcome="refused: x"))
    assert line == "2026-04-19 10:00 UTC alice -> tel:+12125551234 1 part []: refused: x"
    line = audit.format_entry(entry(recipients=[], parts=0, message_ids=[], outcome="refused"))
    assert line == "2026-04-19 10:00 UTC alice -> (nobody) 0 parts []: refused"


def test_format_entry_is_one_line() -> None:
    line = audit.format_entry(
        entry(
            who="mallory\nadmin",
            outcome="uncertain: timed out\r\nafter 10 s\x1b[31m",
            message_ids=["a\nb"],
        )
    )
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == (
        "2026-04-19 10:00 UTC mallory admin -> tel:+12125551234, tel:+12125555678 2 parts "
        "[a b]: uncertain: timed out after 10 s [31m"
    )


def test_format_entry_shortens_long_lists_and_fields() -> None:
    recipients = [f"tel:+1212555{i:04d}" for i in range(13)]
    line = audit.format_entry(entry(recipients=recipients, outcome="x" * 1000))
    assert "tel:+12125550009, (+3 more) 2 parts" in line
    assert "tel:+12125550010" not in line
    assert line.endswith("x" * (audit.MAX_FIELD - 1) + "\u2026")


def test_format_entry_tolerates_odd_entries() -> None:
    assert audit.format_entry({}) == "????-??-?? ??:?? UTC ? -> (nobody) 0 parts []: "
    line = audit.format_entry(
        {"who": "", "when": "junk", "recipients": A, "parts": "x", "message_ids": None}
    )
    assert line == "????-??-?? ??:?? UTC ? -> tel:+12125551234 x parts []: "


def test_round_trip_through_json() -> None:
    log: list = []
    add(log, outcome="uncertain: carrier timed out")
    stored = json.loads(json.dumps(log))
    assert audit.format_entry(stored[0]) == audit.format_entry(log[0])


@FUZZ
@given(
    who=st.text(max_size=30),
    outcome=st.text(max_size=80),
    recipients=st.lists(st.text(max_size=20), max_size=15),
    ids=st.lists(st.text(max_size=20), max_size=15),
    parts=st.integers(0, 10),
    when=st.floats(min_value=0, max_value=4e9),
)
def test_format_entry_always_one_line(
    who: str, outcome: str, recipients: list[str], ids: list[str], parts: int, when: float
) -> None:
    log: list = []
    audit.record(
        log,
        who=who,
        when=when,
        recipients=recipients,
        parts=parts,
        message_ids=ids,
        outcome=outcome,
    )
    line = audit.format_entry(log[0])
    assert len(line.splitlines()) == 1
    assert line.startswith(datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC "))


@FUZZ
@given(st.integers(1, 20), st.integers(0, 60))
def test_log_is_bounded(limit: int, count: int) -> None:
    log: list = []
    for i in range(count):
        audit.record(
            log,
            who=str(i),
            when=WHEN,
            recipients=[],
            parts=1,
            message_ids=[],
            outcome="",
            limit=limit,
        )
    assert [e["who"] for e in log] == [str(i) for i in range(max(0, count - limit), count)]
