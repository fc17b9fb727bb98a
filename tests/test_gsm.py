"""Tests for att_sms.text.gsm: the GSM 03.38 alphabet, smart replacement, segment arithmetic."""

from __future__ import annotations

import string

import pytest
from att_sms.text import gsm
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None)

#: The GSM 03.38 default alphabet by code, written out independently of the module.
DEFAULT_BY_CODE = {
    0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x04: "è", 0x05: "é", 0x06: "ù", 0x07: "ì",
    0x08: "ò", 0x09: "Ç", 0x0A: "\n", 0x0B: "Ø", 0x0C: "ø", 0x0D: "\r", 0x0E: "Å", 0x0F: "å",
    0x10: "Δ", 0x11: "_", 0x12: "Φ", 0x13: "Γ", 0x14: "Λ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ",
    0x18: "Σ", 0x19: "Θ", 0x1A: "Ξ", 0x1C: "Æ", 0x1D: "æ", 0x1E: "ß", 0x1F: "É",
    0x24: "¤", 0x40: "¡", 0x5B: "Ä", 0x5C: "Ö", 0x5D: "Ñ", 0x5E: "Ü", 0x5F: "§",
    0x60: "¿", 0x7B: "ä", 0x7C: "ö", 0x7D: "ñ", 0x7E: "ü", 0x7F: "à",
}  # fmt: skip
EXTENSION_BY_CODE = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]",
    0x40: "|", 0x65: "€",
}  # fmt: skip


def default_alphabet() -> set[str]:
    chars = set(DEFAULT_BY_CODE.values())
    for code in range(0x20, 0x80):
        if code not in DEFAULT_BY_CODE:
            chars.add(chr(code))  # the rest of 0x20-0x7F matches ASCII
    return chars


def test_default_alphabet_is_exactly_gsm_03_38() -> None:
    assert len(gsm.GSM_BASIC) == 127  # 128 codes minus the escape 0x1B
    assert set(gsm.GSM_BASIC) == default_alphabet()


def test_extension_table() -> None:
    assert set(gsm.GSM_EXTENSION) == set(EXTENSION_BY_CODE.values())
    assert not gsm.GSM_EXTENSION & gsm.GSM_BASIC


@pytest.mark.parametrize("ch", sorted("{}[]~\\^|€\f"))
def test_extension_characters_count_two_septets(ch: str) -> None:
    assert gsm.encoding_of(ch) == "GSM-7"
    assert gsm.char_units(ch, "GSM-7") == 2
    assert gsm.text_units("a" + ch + "b") == 4


@pytest.mark.parametrize("ch", ["`", "\t", "ç", "á", "ê", "õ", "\u00a0", "’", "“", "–", "…", "😀"])
def test_characters_outside_gsm7(ch: str) -> None:
    assert gsm.encoding_of("plain " + ch) == "UCS-2"
    assert gsm.ucs2_forcers("plain " + ch) == [ch]
    with pytest.raises(ValueError, match="not a GSM-7 character"):
        gsm.char_units(ch, "GSM-7")


def test_ascii_printables_except_backtick_are_gsm7() -> None:
    printable = string.ascii_letters + string.digits + string.punctuation + " \n\r"
    assert gsm.ucs2_forcers(printable) == ["`"]


def test_forcers_distinct_in_order_of_appearance() -> None:
    text = "Deploy “done” 😀 — ok “again” 😀 ñ ü"
    assert gsm.ucs2_forcers(text) == ["“", "”", "😀", "—"]
    assert gsm.ucs2_forcers("all GSM: é à {€}") == []


def test_utf16_units() -> None:
    assert gsm.char_units("😀", "UCS-2") == 2
    assert gsm.char_units("日", "UCS-2") == 1
    assert gsm.char_units("{", "UCS-2") == 1  # no escape in UCS-2
    assert gsm.text_units("a😀b") == 4
    assert gsm.text_units("👩\u200d👩\u200d👧") == 8


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("x" * 159, "GSM-7", 159, 1),
        ("x" * 160, "GSM-7", 160, 1),
        ("x" * 161, "GSM-7", 161, 2),
        ("x" * 306, "GSM-7", 306, 2),
        ("x" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("€" * 81, "GSM-7", 162, 2),
        ("é" * 70, "GSM-7", 70, 1),
        ("ж" * 70, "UCS-2", 70, 1),
        ("ж" * 71, "UCS-2", 71, 2),
        ("ж" * 134, "UCS-2", 134, 2),
        ("ж" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),
        ("😀" * 36, "UCS-2", 72, 2),
        ("x" * 69 + "😀", "UCS-2", 71, 2),
        ("x" * 68 + "😀", "UCS-2", 70, 1),
    ],
)
def test_segment_counts(text: str, encoding: str, units: int, segments: int) -> None:
    assert gsm.encoding_of(text) == encoding
    assert gsm.text_units(text) == units
    assert gsm.segment_count(text) == segments


def test_concatenation_never_splits_a_pair() -> None:
    # 306 septets would be two full segments of 153, but the escape pair after
    # 152 septets moves to segment 2 whole, so one septet spills into a third.
    assert gsm.segment_count("x" * 152 + "€" + "x" * 151) == 2
    assert gsm.segment_count("x" * 152 + "€" + "x" * 152) == 3
    assert gsm.segment_count("x" * 151 + "€" + "x" * 153) == 2
    # Likewise a surrogate pair after 66 of 67 units moves whole.
    assert gsm.segment_count("ж" * 66 + "😀" + "ж" * 65) == 2
    assert gsm.segment_count("ж" * 66 + "😀" + "ж" * 66) == 3
    assert gsm.segment_count("ж" * 65 + "😀" + "ж" * 67) == 2


def test_segment_count_in_a_given_encoding() -> None:
    assert gsm.segment_count("x" * 100, "UCS-2") == 2
    assert gsm.single_segment_limit("GSM-7") == 160
    assert gsm.single_segment_limit("UCS-2") == 70
    with pytest.raises(ValueError):
        gsm.single_segment_limit("UTF-8")
    with pytest.raises(ValueError):
        gsm.char_units("x", "latin-1")


def test_smart_replacement_makes_pasted_text_gsm7() -> None:
    pasted = "It\u2019s \u201cdone\u201d \u2014 see \u2018notes\u2019\u2026 \u00abok\u00bb 5\u2032 6\u2033"
    assert gsm.smart_replace(pasted) == 'It\'s "done" - see \'notes\'... "ok" 5\' 6"'
    assert gsm.encoding_of(gsm.smart_replace(pasted)) == "GSM-7"


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("a\u2013b\u2012c\u2015d\u2212e\u2010f\u2011g", "a-b-c-d-e-f-g"),
        ("\u201a\u201b\u201e\u201f", "''\"\""),
        ("x\u00a0y\u2009z\u202fw\u3000v\tu", "x y z w v u"),
        ("soft\u00adhyphen zero\u200bwidth\ufeff", "softhyphen zerowidth"),
        ("line\u2028next\u2029para", "line\nnext\npara"),
        ("`code` \u00b4", "'code' '"),
        ("\u02c6 \u02dc", "^ ~"),
    ],
)
def test_smart_replacement_table(typed: str, sent: str) -> None:
    assert gsm.smart_replace(typed) == sent


def test_smart_replacement_never_touches_emoji_or_other_scripts() -> None:
    for text in [
        "It\u2019s \u201cdone\u201d 😀",
        "Привет \u2014 \u201cмир\u201d",
        "日本語\u3000テキスト\u2026",
        "ok\u200d👍",
        "caf\u00e7a \u2019",  # ç is not GSM-7 (only capital Ç is)
    ]:
        assert gsm.smart_replace(text) == text


def test_smart_replacement_leaves_gsm7_alone() -> None:
    text = "Plain {text} with €5 and é, Ç, ß\nnew line"
    assert gsm.smart_replace(text) == text


def test_smart_table_maps_outside_to_inside() -> None:
    for key, value in gsm.SMART_REPLACEMENTS.items():
        assert not gsm.is_gsm7(key), repr(key)
        assert gsm.is_gsm7(value), repr(value)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_smart_replace_is_all_or_nothing(text: str) -> None:
    out = gsm.smart_replace(text)
    if out != text:
        assert gsm.is_gsm7(out)
        assert not gsm.is_gsm7(text)
        assert set(gsm.ucs2_forcers(text)) <= set(gsm.SMART_REPLACEMENTS)
    else:
        assert gsm.is_gsm7(text) or not set(gsm.ucs2_forcers(text)) <= set(gsm.SMART_REPLACEMENTS)
    assert gsm.smart_replace(out) == out


@FUZZ
@given(st.text(max_size=600))
def test_fuzz_segments_bound_units(text: str) -> None:
    encoding = gsm.encoding_of(text)
    units = gsm.text_units(text)
    count = gsm.segment_count(text)
    single, concatenated = (160, 153) if encoding == "GSM-7" else (70, 67)
    if units <= single:
        assert count == 1
    else:
        # Whole characters per segment: at most one unit lost per segment.
        assert -(-units // concatenated) <= count <= -(-units // (concatenated - 1))
    assert (gsm.ucs2_forcers(text) == []) == (encoding == "GSM-7")
