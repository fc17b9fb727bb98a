"""Tests for att_sms.splitting: SMS parts with (i/n) markers."""

from __future__ import annotations

import re

import pytest
from att_sms.splitting import MessageError, normalise_text, split_message
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKER = re.compile(r"\((\d+)/(\d+)\) ")


def bodies(parts: list[str]) -> list[str]:
    """Parts without their markers, checking the markers on the way."""
    if len(parts) == 1 and not MARKER.match(parts[0]):
        return parts
    out = []
    for number, part in enumerate(parts, 1):
        match = MARKER.match(part)
        assert match, part
        assert (int(match[1]), int(match[2])) == (number, len(parts))
        out.append(part[match.end() :])
    return out


def check_split(text: str, parts: list[str], max_parts: int, limit: int) -> None:
    """Every property a successful split must have."""
    clean = normalise_text(text)
    assert 1 <= len(parts) <= max_parts
    assert all(len(part) <= limit for part in parts)
    if len(clean) <= limit:
        assert parts == [clean]
        return
    assert len(parts) >= 2
    found = bodies(parts)
    # Each body is a non-empty, stripped slice of the clean text; only
    # whitespace lies between consecutive bodies, and nothing is lost.
    pos = 0
    for body in found:
        assert body and body == body.strip()
        at = clean.index(body, pos)
        assert clean[pos:at].strip() == ""
        pos = at + len(body)
    assert pos == len(clean)
    # Word for word: words are kept whole unless longer than a part.
    assert "".join(clean.split()) == "".join("".join(b.split()) for b in found)
    room = limit - len(f"({len(parts)}/{len(parts)}) ")
    words = clean.split()
    part_words = [w for b in found for w in b.split()]
    if all(len(w) <= room for w in words):
        assert part_words == words


def test_short_text_is_one_part_unchanged() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("x" * 160) == ["x" * 160]


def test_surrounding_whitespace_is_stripped_only() -> None:
    assert split_message("  \n hello   world \t\n") == ["hello   world"]
    assert split_message("line one\nline two") == ["line one\nline two"]


def test_emoji_and_unicode_kept() -> None:
    text = "Server down 🔥🚨 — Grüße, ñandú, 日本語, שלום, مرحبا"
    assert split_message(text) == [text]


@pytest.mark.parametrize("blank", ["", " ", "\n\t ", "\x00\x01", "\r\n", "\u3000"])
def test_empty_refused(blank: str) -> None:
    with pytest.raises(MessageError, match=r"^message is empty$"):
        split_message(blank)


def test_message_error_is_value_error() -> None:
    assert issubclass(MessageError, ValueError)


def test_control_characters_become_spaces() -> None:
    assert split_message("a\x00b\x07c\x1bd\x7fe\x85f") == ["a b c d e f"]
    assert split_message("tab\tstays\nnewline stays") == ["tab\tstays\nnewline stays"]


def test_crlf_and_cr_become_newline() -> None:
    assert split_message("one\r\ntwo\rthree") == ["one\ntwo\nthree"]


def test_two_parts_at_word_boundary() -> None:
    words = [f"w{i:03d}" for i in range(60)]  # 60 * 5 - 1 = 299 characters
    parts = split_message(" ".join(words))
    assert len(parts) == 2
    assert parts[0].startswith("(1/2) ") and parts[1].startswith("(2/2) ")
    assert all(len(p) <= 160 for p in parts)
    assert " ".join(bodies(parts)).split() == words
    # Greedy: the first part is as full as whole words allow.
    assert len(parts[0]) + len(" w000") > 160


def test_marker_counts_toward_limit() -> None:
    text = "a" * 100 + " " + "b" * 100
    assert split_message(text) == ["(1/2) " + "a" * 100, "(2/2) " + "b" * 100]
    text = "a" * 154 + " " + "b" * 10  # 154 + marker 6 = 160 exactly
    assert split_message(text) == ["(1/2) " + "a" * 154, "(2/2) " + "b" * 10]
    text = "a" * 155 + " " + "b" * 10  # too long for one part with marker
    parts = split_message(text)
    assert parts == ["(1/2) " + "a" * 154, "(2/2) a " + "b" * 10]


def test_long_word_hard_split() -> None:
    parts = split_message("x" * 400)
    assert parts == ["(1/3) " + "x" * 154, "(2/3) " + "x" * 154, "(3/3) " + "x" * 92]


def test_hard_split_rest_shares_a_part() -> None:
    parts = split_message("x" * 200 + " tail words")
    assert parts == ["(1/2) " + "x" * 154, "(2/2) " + "x" * 46 + " tail words"]


def test_too_many_parts_refused_with_count() -> None:
    text = "word " * 200  # 999 characters after strip
    with pytest.raises(MessageError) as info:
        split_message(text)
    assert str(info.value) == "message needs 7 parts of 160 characters; the limit is 4"


def test_max_parts_one() -> None:
    assert split_message("short", max_parts=1) == ["short"]
    with pytest.raises(MessageError, match="needs 2 parts of 160 characters; the limit is 1"):
        split_message("y" * 161, max_parts=1)


def test_exactly_max_parts() -> None:
    text = "z" * (154 * 4)
    parts = split_message(text)
    assert len(parts) == 4 and all(len(p) == 160 for p in parts)
    with pytest.raises(MessageError, match="needs 5 parts"):
        split_message(text + "z")


def test_marker_width_grows_with_count() -> None:
    # 10 or more parts make the markers wider: "(10/10) " is 8 characters.
    text = "q" * 1600
    parts = split_message(text, max_parts=20)
    assert parts[0].startswith("(1/11) ")
    assert parts[-1].startswith("(11/11) ")
    assert all(len(p) <= 160 for p in parts)
    assert "".join(bodies(parts)) == text


def test_marker_width_iteration_reaches_fixed_point() -> None:
    # 9 parts with "(i/9) " markers (6 chars) hold 9*154 = 1386; one more
    # character needs 10 parts, whose markers are wider still.
    assert len(split_message("r" * 1386, max_parts=20)) == 9
    parts = split_message("r" * 1387, max_parts=20)
    assert len(parts) == 10
    assert parts[9].startswith("(10/10) ")
    assert all(len(p) <= 160 for p in parts)


def test_small_limit() -> None:
    parts = split_message("abc def ghi", limit=10, max_parts=5)
    assert parts == ["(1/3) abc", "(2/3) def", "(3/3) ghi"]
    check_split("abc def ghi", parts, 5, 10)


def test_limit_too_small_for_any_marker() -> None:
    with pytest.raises(MessageError, match="too long for parts of 6 characters"):
        split_message("abcdefgh", limit=6, max_parts=100)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        split_message("hi", max_parts=0)
    with pytest.raises(ValueError):
        split_message("hi", limit=0)


def test_emoji_never_cut() -> None:
    text = "🔥" * 400
    parts = split_message(text, max_parts=4)
    assert "".join(bodies(parts)) == text


def test_hard_split_avoids_combining_marks() -> None:
    text = "e\u0301" * 100  # 200 code points, one visible letter per pair
    parts = split_message(text, max_parts=4)
    for body in bodies(parts):
        assert body[0] == "e"
    assert "".join(bodies(parts)) == text


def test_rtl_text() -> None:
    text = " ".join(["שלום", "עולם", "مرحبا", "بالعالم"] * 20)
    parts = split_message(text, max_parts=10)
    check_split(text, parts, 10, 160)


def test_ten_thousand_characters_refused() -> None:
    text = ("lorem ipsum dolor sit amet " * 400)[:10_000]
    refusal = r"^message needs \d+ parts of 160 characters; the limit is 4$"
    with pytest.raises(MessageError, match=refusal):
        split_message(text)
    parts = split_message(text, max_parts=100)
    check_split(text, parts, 100, 160)


words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Zs", "Zl", "Zp", "Cc"]),
    min_size=1,
    max_size=30,
)
separators = st.sampled_from([" ", "  ", "\n", "\t", "\r\n", " \n ", "\u3000"])
wordy = st.lists(st.tuples(words, separators), max_size=120).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)
anything = st.text(max_size=800)


@FUZZ
@given(
    text=wordy | anything,
    max_parts=st.integers(1, 12),
    limit=st.integers(8, 200),
)
@example(text="x" * 10_000, max_parts=100, limit=160)
@example(text="\U0001f600 " * 5_000, max_parts=4, limit=160)
@example(text="\x00" * 10_000, max_parts=4, limit=160)
@example(text="\u202e\u05d0\u05d1 " * 2_500, max_parts=100, limit=160)
def test_fuzz_split_or_refuse(text: str, max_parts: int, limit: int) -> None:
    try:
        parts = split_message(text, max_parts=max_parts, limit=limit)
    except MessageError as err:
        message = str(err)
        clean = normalise_text(text)
        if not clean:
            event("empty")
            assert message == "message is empty"
            return
        assert len(clean) > limit
        match = re.fullmatch(
            rf"message needs (\d+) parts of {limit} characters; the limit is {max_parts}", message
        )
        if match:
            event("too many parts")
            needed = int(match[1])
            assert needed > max_parts
            # The count is right: with room for that many, it splits so.
            parts = split_message(text, max_parts=needed, limit=limit)
            assert len(parts) == needed
            check_split(text, parts, needed, limit)
        else:
            event("limit too small for markers")
            assert message == (
                f"message is too long for parts of {limit} characters; the limit is {max_parts}"
            )
        return
    event("one part" if len(parts) == 1 else "several parts")
    check_split(text, parts, max_parts, limit)
    assert not any(c in part for part in parts for c in "\r\x00\x07\x1b\x7f\x85")


@FUZZ
@given(
    text=st.lists(st.tuples(words, separators), min_size=10, max_size=150).map(
        lambda pairs: "".join(w + s for w, s in pairs)
    )
    | st.text(min_size=200, max_size=3000),
    limit=st.integers(20, 160),
)
def test_fuzz_always_splits_with_room(text: str, limit: int) -> None:
    clean = normalise_text(text)
    if not clean:
        with pytest.raises(MessageError, match=r"^message is empty$"):
            split_message(text, max_parts=10_000, limit=limit)
        return
    parts = split_message(text, max_parts=10_000, limit=limit)
    event("one part" if len(parts) == 1 else "several parts")
    check_split(text, parts, 10_000, limit)
