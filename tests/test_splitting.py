"""Tests for att_sms.text.splitting: SMS parts with (i/n) markers."""

from __future__ import annotations

import re

import pytest
from att_sms.text import gsm
from att_sms.text.gsm import is_gsm7, segment_count
from att_sms.text.splitting import (
    MessageError,
    MessagePlan,
    describe_cost,
    normalise_text,
    plan_message,
    show_characters,
    split_message,
)
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


def fits_one_part(text: str, limit: int) -> bool:
    """One segment in its own encoding, at most ``limit`` units (computed independently)."""
    if is_gsm7(text):
        return sum(2 if ch in "\f^{}\\[~]|€" else 1 for ch in text) <= min(limit, 160)
    return len(text.encode("utf-16-le")) // 2 <= min(limit, 70)


def check_split(text: str, parts: list[str], max_parts: int, limit: int) -> None:
    """Every property a successful split must have."""
    clean = normalise_text(text)
    assert 1 <= len(parts) <= max_parts
    assert all(fits_one_part(part, limit) for part in parts)
    if fits_one_part(clean, limit):
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
    marker = f"({len(parts)}/{len(parts)}) "
    words = clean.split()
    part_words = [w for b in found for w in b.split()]
    if all(fits_one_part(marker + w, limit) for w in words):
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
    # Changed with issue 13: a UCS-2 part holds 70 units; after a "(1/13) "
    # marker that is 31 emoji, so 400 emoji need 13 parts (4 before, when a
    # part was 160 code points).
    text = "🔥" * 400
    parts = split_message(text, max_parts=20)
    assert len(parts) == 13
    assert "".join(bodies(parts)) == text
    assert all(body == "🔥" * 31 for body in bodies(parts)[:-1])
    with pytest.raises(MessageError, match=r"needs 13 parts of 70 characters \(UCS-2 because"):
        split_message(text, max_parts=4)


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
        assert not fits_one_part(clean, limit)
        forced = r" \(UCS-2 because of .+\)" if not is_gsm7(clean) else ""
        room = min(limit, 70 if forced else 160)
        match = re.fullmatch(
            rf"message needs (\d+) parts of {room} characters{forced}; the limit is {max_parts}",
            message,
            re.DOTALL,
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


# -- encoding-aware parts (issue 13) -------------------------------------------


def test_gsm7_single_part_boundaries() -> None:
    assert split_message("x" * 159) == ["x" * 159]
    assert split_message("x" * 160) == ["x" * 160]
    assert len(split_message("x" * 161)) == 2


def test_extension_characters_count_two_in_a_part() -> None:
    assert split_message("{" * 80) == ["{" * 80]  # 160 septets
    parts = split_message("{" * 81)
    assert parts == ["(1/2) " + "{" * 77, "(2/2) " + "{" * 4]  # 6 + 154 septets
    assert all(fits_one_part(p, 160) for p in parts)


def test_ucs2_single_part_boundaries() -> None:
    assert split_message("ж" * 70) == ["ж" * 70]
    parts = split_message("ж" * 71)
    assert parts == ["(1/2) " + "ж" * 64, "(2/2) " + "ж" * 7]
    assert split_message("😀" * 35) == ["😀" * 35]  # 70 UTF-16 units
    assert split_message("😀" * 36) == ["(1/2) " + "😀" * 32, "(2/2) " + "😀" * 4]


def test_one_curly_quote_costs_a_second_part() -> None:
    text = "x" * 150 + " \u201cok\u201d"  # 155 characters
    assert split_message(text.replace("\u201c", '"').replace("\u201d", '"')) == [
        "x" * 150 + ' "ok"'
    ]
    # UCS-2 as a whole (155 > 70 units): the x run is a GSM-7 part of its own.
    assert split_message(text) == ["(1/2) " + "x" * 150, "(2/2) \u201cok\u201d"]


def test_each_part_has_its_own_encoding() -> None:
    parts = split_message(" ".join(["word"] * 30 + ["😀"]))
    assert [is_gsm7(p) for p in parts] == [True, False]
    assert parts == ["(1/2) " + " ".join(["word"] * 30), "(2/2) 😀"]  # 155 septets, 8 units
    assert all(fits_one_part(p, 160) for p in parts)


def test_too_many_ucs2_parts_names_the_forcers() -> None:
    text = ("\u201cdisk full\u201d on db1 \U0001f525 " * 20).strip()
    with pytest.raises(MessageError) as info:
        split_message(text)
    err = info.value
    assert str(err) == (
        f"message needs {err.needed} parts of 70 characters"
        " (UCS-2 because of '\u201c', '\u201d', '\U0001f525'); the limit is 4"
    )
    assert err.needed is not None and err.needed > 4
    assert err.forcers == ("\u201c", "\u201d", "\U0001f525")


def test_refusal_shows_invisible_forcers_by_code_and_caps_the_list() -> None:
    text = "x\u00a0y " * 100 + "абвгдежзик"
    with pytest.raises(MessageError, match=r"because of U\+00A0, 'а', 'б', 'в', 'г' and 6 more\)"):
        split_message(text)


# -- plan_message and describe_cost ----------------------------------------------

PASTED = "Deploy \u201cfinished\u201d \u2014 it\u2019s live\u2026 " + "details " * 15


def test_plan_replaces_smart_characters_and_costs_gsm7() -> None:
    plan = plan_message(PASTED, max_parts=4)
    assert plan.text == ('Deploy "finished" - it\'s live... ' + "details " * 15).strip()
    assert plan.replaced and plan.encoding == "GSM-7" and plan.forcers == ()
    assert plan.parts == (plan.text,) and plan.segments == 1
    assert plan.part_encodings == ("GSM-7",)
    assert describe_cost(plan, 1) is None


def test_plan_keep_sends_as_typed_in_ucs2() -> None:
    plan = plan_message(PASTED, max_parts=4, smart="keep")
    assert plan.text == normalise_text(PASTED) and not plan.replaced
    assert plan.encoding == "UCS-2"
    assert plan.forcers == ("\u201c", "\u201d", "\u2014", "\u2019", "\u2026")
    # Each part has its own encoding: the typographic characters fall in the
    # first part (UCS-2), the rest is a GSM-7 part (as one concatenated UCS-2
    # SMS the 154 characters would be 3 segments).
    assert plan.part_encodings == ("UCS-2", "GSM-7")
    assert plan.segments == len(plan.parts) == 2
    assert all(segment_count(part) == 1 for part in plan.parts)
    assert describe_cost(plan, 3) == (
        "2 parts, 2 segments x 3 recipients = 6 billed"
        " (UCS-2 because of '\u201c', '\u201d', '\u2014', '\u2019', '\u2026')"
    )


def test_plan_never_alters_emoji_text() -> None:
    text = "Deploy \u201cfinished\u201d \U0001f600"
    plan = plan_message(text, max_parts=4)
    assert plan.text == text and not plan.replaced
    assert plan.encoding == "UCS-2" and plan.forcers == ("\u201c", "\u201d", "\U0001f600")
    assert plan.segments == 1
    assert describe_cost(plan, 1) is None
    assert describe_cost(plan, 2) == (
        "1 part, 1 segment x 2 recipients = 2 billed"
        " (UCS-2 because of '\u201c', '\u201d', '\U0001f600')"
    )


def test_describe_cost_gsm7() -> None:
    plan = plan_message("word " * 50, max_parts=4)
    assert plan.encoding == "GSM-7" and plan.segments == 2
    assert describe_cost(plan, 1) == "2 parts, 2 segments x 1 recipient = 2 billed"
    assert describe_cost(plan, 0) is None
    with pytest.raises(ValueError):
        describe_cost(plan, -1)


def test_plan_refusal_names_forcers() -> None:
    with pytest.raises(
        MessageError,
        match=r"needs \d+ parts of 70 characters \(UCS-2 because of '\U0001f600'\); the limit is 1",
    ):
        plan_message("x" * 100 + " \U0001f600 " + "y" * 100, max_parts=1)


def test_plan_empty_after_replacement() -> None:
    with pytest.raises(MessageError, match=r"^message is empty$"):
        plan_message("\u200b\ufeff", max_parts=4)
    assert plan_message("\u200b\ufeff", max_parts=4, smart="keep").text == "\u200b\ufeff"


def test_plan_bad_smart_mode() -> None:
    with pytest.raises(ValueError, match="smart must be one of replace, keep"):
        plan_message("hi", max_parts=4, smart="yes")


def test_show_characters() -> None:
    assert show_characters(["\u201c", "\U0001f600"]) == "'\u201c', '\U0001f600'"
    assert show_characters(["\u00a0", "\u0301", "\u200b", "\t"]) == "U+00A0, U+0301, U+200B, U+0009"
    assert show_characters(list("abcdefg"), limit=2) == "'a', 'b' and 5 more"


@FUZZ
@given(
    text=wordy
    | anything
    | st.text(alphabet="ab {}€\u201c\u2019\u2014\u00a0\U0001f600 ", max_size=700),
    smart=st.sampled_from(["replace", "keep"]),
    recipients=st.integers(0, 5),
)
def test_fuzz_plan_parts_are_billed_segments(text: str, smart: str, recipients: int) -> None:
    try:
        plan = plan_message(text, max_parts=30, smart=smart)
    except MessageError as err:
        event("refused")
        assert err.needed is None or err.needed > 30
        return
    assert isinstance(plan, MessagePlan)
    assert plan.segments == len(plan.parts) == len(plan.part_encodings)
    for part, encoding in zip(plan.parts, plan.part_encodings, strict=True):
        assert segment_count(part) == 1
        assert fits_one_part(part, 160)
        assert (encoding == "GSM-7") == is_gsm7(part)
    assert (plan.encoding == "GSM-7") == (plan.forcers == ()) == is_gsm7(plan.text)
    if smart == "keep":
        assert plan.text == normalise_text(text)
    elif plan.replaced:
        assert plan.encoding == "GSM-7"
    check_split(plan.text, list(plan.parts), 30, 160)
    cost = describe_cost(plan, recipients)
    assert (cost is None) == (plan.segments * recipients <= 1)
    if cost:
        event("cost shown")
        assert f"= {plan.segments * recipients} billed" in cost
        assert ("UCS-2 because of" in cost) == (plan.encoding == "UCS-2")


_PLAN_ALPHABET = (
    "ab Z09@£\n\r\t.,!?-\u00e9\u00c7\u20ac[]\u2019\u201c\u2014\u00a0\U0001f600\u0416\x07"
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=_PLAN_ALPHABET, max_size=200)
    | st.text(alphabet="ab 0.@\n", max_size=200),
    limit=st.sampled_from([160, 100, 70, 20]),
    smart=st.sampled_from(["replace", "keep"]),
)
@example(text="a" * 30, limit=20, smart="replace")
@example(text="b" * 161, limit=160, smart="keep")
@example(text=" x\r\ny ", limit=160, smart="replace")
@example(text="\u2019" * 3, limit=160, smart="replace")
def test_plan_message_is_what_its_parts_make(text: str, limit: int, smart: str) -> None:
    """plan_message (with its fast path for one basic GSM-7 part) equals the plan built
    from the general functions: normalise, smart-replace, split, encode."""
    clean = normalise_text(text)
    final = normalise_text(gsm.smart_replace(clean)) if smart == "replace" else clean
    try:
        parts = tuple(split_message(final, max_parts=4, limit=limit))
    except MessageError as exc:
        with pytest.raises(MessageError) as refused:
            plan_message(text, max_parts=4, smart=smart, limit=limit)
        assert str(refused.value) == str(exc)
        return
    forcers = tuple(gsm.ucs2_forcers(final))
    assert plan_message(text, max_parts=4, smart=smart, limit=limit) == MessagePlan(
        text=final,
        parts=parts,
        encoding=gsm.UCS2 if forcers else gsm.GSM7,
        part_encodings=tuple(gsm.encoding_of(p) for p in parts),
        segments=len(parts),
        forcers=forcers,
        replaced=final != clean,
    )
