"""Tests for att_sms.sending.audit: the one-line format of an audit log entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from att_sms.sending import audit
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
    original = entry(outcome="uncertain: carrier timed out")
    stored = json.loads(json.dumps(original))
    assert audit.format_entry(stored) == audit.format_entry(original)


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
    line = audit.format_entry(
        entry(
            who=who,
            when=when,
            recipients=recipients,
            parts=parts,
            message_ids=ids,
            outcome=outcome,
        )
    )
    assert len(line.splitlines()) == 1
    assert line.startswith(datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC "))
