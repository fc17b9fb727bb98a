"""Tests for att_sms.formatting: untrusted inbound text made inert."""

from __future__ import annotations

import re

import pytest
from att_sms.formatting import DEFAULT_MAX_LENGTH, format_inbound, neutralise
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WJ = "\u2060"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
DANGEROUS = ["@channel", "@here", "@everyone", "@all", "<!", "<@", "<#", "<http", "&lt;", "&gt;"]


def assert_inert(out: str) -> None:
    assert not CONTROL.search(out)
    assert not BIDI.search(out)
    assert not LINE_BREAKS.search(out)
    assert "<" not in out and ">" not in out
    lowered = out.lower()
    for bad in DANGEROUS:
        assert bad not in lowered, bad
    # Every @ is followed by the word joiner.
    assert out.count("@") == out.count("@" + WJ)


@pytest.mark.parametrize(
    "mention", ["@channel", "@here", "@everyone", "@all", "@Channel", "@HERE", "@alice"]
)
def test_at_mentions_cannot_notify(mention: str) -> None:
    out = neutralise(f"hey {mention} look")
    assert out == f"hey @{WJ}{mention[1:]} look"
    assert_inert(out)


@pytest.mark.parametrize(
    "sequence",
    [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<!here|here>",
        "<!subteam^S123ABC>",
        "<!subteam^S123|@oncall>",
        "<@U123ABC>",
        "<@U123|alice>",
        "<#C123ABC>",
        "<#C123|general>",
        "<http://evil.example|click me>",
        "<https://evil.example>",
        "<mailto:a@b.example|mail>",
        "<!date^1392734382^{date}|Feb 18>",
    ],
)
def test_slack_control_sequences_cannot_form(sequence: str) -> None:
    out = neutralise(f"x {sequence} y")
    assert_inert(out)
    assert "\uff1c" in out and "\uff1e" in out


def test_slack_sequence_shown_readably() -> None:
    assert neutralise("<!channel>") == "\uff1c!channel\uff1e"
    assert neutralise("<@U123>") == f"\uff1c@{WJ}U123\uff1e"
    assert neutralise("<http://x|label>") == "\uff1chttp://x\\|label\uff1e"


def test_html_entities_cannot_form_sequences() -> None:
    out = neutralise("&lt;!channel&gt; and &#60;!here&#62; but a & b stays")
    assert out == f"&{WJ}lt;!channel&{WJ}gt; and &{WJ}#60;!here&{WJ}#62; but a & b stays"
    assert_inert(out)


def test_html_tags_inert() -> None:
    out = neutralise("<script>alert(1)</script><b>bold</b>")
    assert "<" not in out and ">" not in out


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("*bold*", r"\*bold\*"),
        ("_italic_", r"\_italic\_"),
        ("`code`", r"\`code\`"),
        ("```block```", r"\`\`\`block\`\`\`"),
        ("~strike~", r"\~strike\~"),
        ("[click](http://evil.example)", r"\[click\](http://evil.example)"),
        ("a\\b", r"a\\b"),
        (r"\*not escaped\*", r"\\\*not escaped\\\*"),
        ("a|b", r"a\|b"),
        ("# Heading", r"\# Heading"),
        ("issue #12", "issue #12"),
        ("> quote", "\uff1e quote"),
        ("plain text, 100% fine (really)!", "plain text, 100% fine (really)!"),
    ],
)
def test_markup_escaped(raw: str, shown: str) -> None:
    assert neutralise(raw) == shown


# C0 and C1 controls that are neither TAB nor a line break (those are folded).
NON_BREAKING_CONTROLS = [
    *range(0x00, 0x09),
    *range(0x0E, 0x1C),
    0x1F,
    0x7F,
    *range(0x80, 0x85),
    *range(0x86, 0xA0),
]


@pytest.mark.parametrize("char", [chr(c) for c in NON_BREAKING_CONTROLS])
def test_control_characters_made_visible(char: str) -> None:
    out = neutralise(f"a{char}b")
    assert out == "a\ufffdb"


def test_tab_becomes_space() -> None:
    assert neutralise("a\tb") == "a b"


def test_irc_formatting_codes_neutralised() -> None:
    out = neutralise("\x02bold\x02 \x0304red\x03 \x1b[31mansi")
    assert_inert(out)
    assert "bold" in out and "ansi" in out


@pytest.mark.parametrize("char", [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]])
def test_bidi_controls_removed(char: str) -> None:
    assert neutralise(f"invoice{char}fdp.exe") == "invoicefdp.exe"


def test_bidi_marks_and_rtl_text_kept() -> None:
    text = "שלום \u200fעולם مرحبا"
    assert neutralise(text) == text


@pytest.mark.parametrize(
    "newline", ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x1c", "\x1e"]
)
def test_newlines_folded(newline: str) -> None:
    assert neutralise(f"line one{newline}line two") == "line one \u23ce line two"


def test_newlines_cannot_fake_chat_lines() -> None:
    out = neutralise("ok\n\n\n[10:00] <boss> @channel deploy now\n  \n")
    assert out == f"ok \u23ce \\[10:00\\] \uff1cboss\uff1e @{WJ}channel deploy now"
    assert_inert(out)


def test_blank_and_empty() -> None:
    assert neutralise("") == ""
    assert neutralise(" \n\t\r\n ") == ""


def test_unicode_and_emoji_kept() -> None:
    text = "Grüße 🔥 日本語 ñandú 👩\u200d👩\u200d👧"
    assert neutralise(text) == text


def test_long_text_truncated() -> None:
    out = neutralise("a" * 5000)
    assert out == "a" * DEFAULT_MAX_LENGTH + "\u2026 [4000 more characters]"


def test_truncation_limit_is_configurable() -> None:
    assert neutralise("abcdefghij", max_length=4) == "abcd\u2026 [6 more characters]"
    assert neutralise("abcd", max_length=4) == "abcd"
    assert neutralise("ab  cd", max_length=4) == "ab\u2026 [4 more characters]"
    with pytest.raises(ValueError):
        neutralise("x", max_length=0)


def test_truncation_never_splits_an_escape() -> None:
    out = neutralise("*" * 2000, max_length=5)
    assert out == "\\*" * 5 + "\u2026 [1995 more characters]"
    out = neutralise("@" * 2000, max_length=5)
    assert out == ("@" + WJ) * 5 + "\u2026 [1995 more characters]"


def test_format_inbound_example() -> None:
    line = format_inbound(
        "tel:+12125559876", "2026-04-19T10:00:00Z", "Reply text", name="Alice", handle="a1b2"
    )
    assert line == "SMS from +1 212-555-9876 (Alice) at 2026-04-19 10:00 UTC [#a1b2]: Reply text"


def test_format_inbound_minimal() -> None:
    assert format_inbound("tel:+12125559876", None, "hi") == "SMS from +1 212-555-9876: hi"


@pytest.mark.parametrize(
    ("when", "shown"),
    [
        ("2026-04-19T10:00:00Z", "2026-04-19 10:00 UTC"),
        ("2026-04-19t10:00:00z", "2026-04-19 10:00 UTC"),
        ("2026-04-19T12:30:00+02:00", "2026-04-19 10:30 UTC"),
        ("2026-04-19T05:00:59-05:00", "2026-04-19 10:00 UTC"),
        ("2026-04-19T23:30:00-01:00", "2026-04-20 00:30 UTC"),
        ("2026-04-19T10:00:00.123Z", "2026-04-19 10:00 UTC"),
        ("2026-04-19T10:00:00.123456789+00:00", "2026-04-19 10:00 UTC"),
        ("2026-04-19 10:00:00Z", "2026-04-19 10:00 UTC"),
        (" 2026-04-19T10:00:00Z ", "2026-04-19 10:00 UTC"),
        ("yesterday", "yesterday"),
        ("2026-04-19T10:00:00", "2026-04-19T10:00:00"),  # no offset: not RFC 3339
        ("2026-13-19T10:00:00Z", "2026-13-19T10:00:00Z"),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00"),
        ("<!channel>", "\uff1c!channel\uff1e"),
    ],
)
def test_format_inbound_time(when: str, shown: str) -> None:
    line = format_inbound("tel:+12125559876", when, "x")
    assert line == f"SMS from +1 212-555-9876 at {shown}: x"


def test_format_inbound_blank_parts_left_out() -> None:
    line = format_inbound("tel:+12125559876", " ", "x", name="  ", handle="#")
    assert line == "SMS from +1 212-555-9876: x"


def test_format_inbound_handle_hash_not_doubled() -> None:
    assert format_inbound("tel:+12125559876", None, "x", handle="#a1b2").endswith("[#a1b2]: x")


def test_format_inbound_untrusted_parts_neutralised() -> None:
    line = format_inbound(
        "<!channel>\n@here",
        "@everyone\r\n",
        "*hi* @channel\nfake line",
        name="<@U123>\u202e",
        handle="<!here>",
    )
    assert_inert(line)
    assert line.startswith("SMS from ")


def test_format_inbound_non_tel_sender() -> None:
    assert format_inbound("12345", None, "x") == "SMS from 12345: x"
    assert format_inbound("tel:12345", None, "x") == "SMS from 12345: x"
    assert format_inbound("", None, "x") == "SMS from unknown sender: x"
    assert format_inbound("tel:+44 20 7946 0958", None, "x") == "SMS from +44 20 7946 0958: x"


def test_format_inbound_empty_text() -> None:
    line = format_inbound("tel:+12125559876", None, " \n")
    assert line == "SMS from +1 212-555-9876: (empty message)"


def test_format_inbound_long_parts_bounded() -> None:
    big = 10_000
    line = format_inbound("9" * big, "x" * big, "y" * big, name="n" * big, handle="h" * big)
    assert len(line) < 1400


hostile = st.text(max_size=300) | st.lists(
    st.sampled_from(
        [
            "@channel",
            "@here",
            "@everyone",
            "@all",
            "<!channel>",
            "<!here>",
            "<!",
            "<@U1>",
            "<#C1>",
            "<http://x|y>",
            "<",
            ">",
            "!",
            "@",
            "&lt;",
            "&",
            "lt;",
            "\n",
            "\r",
            "\t",
            "\x00",
            "\x1b",
            "\x85",
            "\u202e",
            "\u2066",
            "\u2028",
            "*",
            "_",
            "`",
            "~",
            "[",
            "]",
            "(",
            ")",
            "\\",
            "#",
            "|",
            " ",
            "a",
            "🔥",
            "\u0301",
            "\u200d",
            WJ,
        ]
    ),
    max_size=80,
).map("".join)


@FUZZ
@given(text=hostile)
@example(text="@" * 10_000)
@example(text="<!channel>" * 1_000)
@example(text="\x00\n\u202e" * 3_400)
@example(text="@\nchannel")
@example(text="<\n!channel>")
@example(text="@\u202echannel")
@example(text="<\u202e!here>")
@example(text="&\nlt;")
def test_fuzz_neutralise(text: str) -> None:
    out = neutralise(text)
    assert_inert(out)
    assert len(out) <= 2 * DEFAULT_MAX_LENGTH + 40
    # Nothing visible is lost except what is documented.
    if len(text) <= DEFAULT_MAX_LENGTH:
        kept = out
        for word in re.findall(r"[0-9A-Za-z]+", text):
            assert word in kept.replace(WJ, "")


@FUZZ
@given(text=hostile, limit=st.integers(1, 300))
def test_fuzz_neutralise_limit(text: str, limit: int) -> None:
    out = neutralise(text, max_length=limit)
    assert_inert(out)
    assert len(out) <= 2 * limit + 40


@FUZZ
@given(
    sender=hostile | st.sampled_from(["tel:+12125559876", "tel:+442079460958", "tel:12345"]),
    when=st.none() | hostile | st.datetimes().map(lambda d: d.isoformat() + "Z"),
    text=hostile,
    name=st.none() | hostile,
    handle=st.none() | hostile,
)
@example(sender="@" * 9999, when="@" * 9999, text="@" * 9999, name="@" * 9999, handle="@" * 9999)
def test_fuzz_format_inbound(
    sender: str, when: str | None, text: str, name: str | None, handle: str | None
) -> None:
    line = format_inbound(sender, when, text, name=name, handle=handle)
    assert_inert(line)
    assert line.startswith("SMS from ")
    assert len(line) <= 2 * DEFAULT_MAX_LENGTH + 40 + 500
