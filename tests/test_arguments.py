"""Parsing `!sms send` arguments."""

from __future__ import annotations

import pytest
from att_sms.text.arguments import ArgumentError, single_word, split_recipients_and_text
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("args", "recipients", "text"),
    [
        ("+12125551234 hello", ["+12125551234"], "hello"),
        ('oncall "db-1 is down"', ["oncall"], "db-1 is down"),
        ('+1212,"(212) 555-1234" two words', ["+1212", "(212) 555-1234"], "two words"),
        ("a,b   spaced   text  ", ["a", "b"], "spaced   text"),
        ('x say "quoted" word', ["x"], 'say "quoted" word'),
        ("x line one\nline two", ["x"], "line one\nline two"),
    ],
)
def test_split(args: str, recipients: list[str], text: str) -> None:
    assert split_recipients_and_text(args) == (recipients, text)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ("", "usage"),
        ("   ", "usage"),
        ("+1212", "no message text"),
        ("a,,b hi", "empty recipient"),
        ('"(212) 555 hi', "unbalanced"),
        ('x ""', "no message text"),
    ],
)
def test_refusals(args: str, words: str) -> None:
    with pytest.raises(ArgumentError, match=words):
        split_recipients_and_text(args)


def test_single_word() -> None:
    assert single_word(" abc ", "id", "usage: x") == "abc"
    with pytest.raises(ArgumentError, match="usage: x"):
        single_word("a b", "id", "usage: x")


@given(st.text(max_size=300))
def test_never_raises_anything_else(args: str) -> None:
    try:
        recipients, text = split_recipients_and_text(args)
    except ArgumentError:
        return
    assert recipients and all(recipients) and text
