"""Tests for att_sms.text.numbers: parsing, validation, normalisation, display."""

from __future__ import annotations

import re

import pytest
from att_sms.text import numbers
from att_sms.text.numbers import (
    NumberError,
    NumberRules,
    canonical_sender,
    display_number,
    region_of,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# E.164 numbers have at most 15 digits; a few small plans (Niue +683 7012,
# Tokelau +690 3101) are valid with only 7, so the floor is 7, not 8.
E164_URI = re.compile(r"tel:\+[0-9]{7,15}")

ACCEPTED = [
    # (default region, input, expected)
    ("US", "tel:+12125551234", "tel:+12125551234"),
    ("US", "tel:+1-212-555-1234", "tel:+12125551234"),
    ("US", "tel:+1.212.555.1234", "tel:+12125551234"),
    ("US", "tel:+1(212)555-1234", "tel:+12125551234"),
    ("US", "TEL:+12125551234", "tel:+12125551234"),
    ("US", "tel:2125551234", "tel:+12125551234"),
    ("US", "tel:12125551234", "tel:+12125551234"),
    ("US", "+12125551234", "tel:+12125551234"),
    ("US", "+1 212 555 1234", "tel:+12125551234"),
    ("US", "(212) 555-1234", "tel:+12125551234"),
    ("US", "212.555.1234", "tel:+12125551234"),
    ("US", "212-555-1234", "tel:+12125551234"),
    ("US", "1 (212) 555-1234", "tel:+12125551234"),
    ("US", "  \t212 555 1234\n ", "tel:+12125551234"),
    ("US", "\u00a0+1 212 555 1234\u00a0", "tel:+12125551234"),
    ("US", "+1 800 234 5678", "tel:+18002345678"),  # toll-free is fine
    ("US", "+1 416 555 0123", "tel:+14165550123"),  # Canada, no allow-list
    ("US", "0044 20 7946 0958", "tel:+442079460958"),
    ("US", "011 44 20 7946 0958", "tel:+442079460958"),
    ("US", "+44 7400 123456", "tel:+447400123456"),
    ("US", "+800 1234 5678", "tel:+80012345678"),  # non-geographic
    ("US", "+683 7012", "tel:+6837012"),  # Niue: 7 digits in all
    ("GB", "020 7946 0958", "tel:+442079460958"),
    ("GB", "07400 123456", "tel:+447400123456"),
    ("GB", "07400-123-456", "tel:+447400123456"),
    ("GB", "+44 (0)20 7946 0958", "tel:+442079460958"),
    ("GB", "tel:02079460958", "tel:+442079460958"),
    ("GB", "00 1 212 555 1234", "tel:+12125551234"),
    ("DE", "030 123456", "tel:+4930123456"),
    ("DE", "030/123456", "tel:+4930123456"),
    ("DE", "0151 23456789", "tel:+4915123456789"),
    ("DE", "+49 1512 3456789", "tel:+4915123456789"),
    ("DE", "0049 30 123456", "tel:+4930123456"),
    ("FR", "01 23 45 67 89", "tel:+33123456789"),
    ("FR", "06.12.34.56.78", "tel:+33612345678"),
    ("FR", "+33 6 12 34 56 78", "tel:+33612345678"),
    ("FR", "0033 6 12 34 56 78", "tel:+33612345678"),
]

REFUSED = [
    # (default region, input, reason)
    ("US", "", "empty number"),
    ("US", "   \n\t ", "empty number"),
    ("US", "tel:", "empty number"),
    ("US", "tel:  ", "empty number"),
    ("US", "hello", "not a phone number"),
    ("US", "+", "not a phone number"),
    ("US", "()-.", "not a phone number"),
    ("US", "1-800-FLOWERS", "not a phone number"),
    ("US", "call 212-555-1234 now", "not a phone number"),
    ("US", "212-555-1234 x12", "not a phone number"),
    ("US", "+1 212 555 1234+", "not a phone number"),
    ("US", "++12125551234", "not a phone number"),
    ("US", "\uff12\uff11\uff12\uff15\uff15\uff15\uff11\uff12\uff13\uff14", "not a phone number"),
    ("US", "212\x00555\x001234", "not a phone number"),
    ("US", "tel:+1-212-555-1234;ext=12", "tel: URI parameters are not supported"),
    ("US", "tel:5551234;phone-context=+1212", "tel: URI parameters are not supported"),
    ("US", "1", "too short"),
    ("US", "123", "too short"),
    ("US", "00", "too short"),
    ("US", "+1 212 555 123456789", "too long"),
    ("US", "1" * 41, "too long"),
    ("US", "this is a whole sentence and not a number at all", "not a phone number"),
    ("US", "+999 1234 5678", "unknown country code"),
    ("US", "212 555 123", "too short"),
    ("DE", "0201 00000000000", "too long"),  # valid for phonenumbers, but 16 digits
    ("US", "+1 112 555 1234", "not a valid number"),
    ("US", "+1 900 234 5678", "premium-rate number"),
    ("US", "+1 900 555 0100", "premium-rate number"),
    ("GB", "09012 345678", "premium-rate number"),
    ("DE", "0900 1 234567", "premium-rate number"),
    ("DE", "0180 1 2345", "shared-cost number"),
    ("FR", "08 91 12 34 56", "premium-rate number"),
    ("FR", "08 84 01 23 45", "shared-cost number"),
    ("FR", "00 12", "too short"),
]


@pytest.mark.parametrize(("region", "raw", "expected"), ACCEPTED)
def test_accepted(region: str, raw: str, expected: str) -> None:
    assert NumberRules(default_region=region).normalise(raw) == expected


@pytest.mark.parametrize(("region", "raw", "reason"), REFUSED)
def test_refused(region: str, raw: str, reason: str) -> None:
    with pytest.raises(NumberError) as info:
        NumberRules(default_region=region).normalise(raw)
    err = info.value
    assert err.raw == raw
    assert err.reason == reason
    assert str(err).endswith(f" is not allowed: {reason}")
    assert "\n" not in str(err)


def test_error_message_names_input_and_reason() -> None:
    with pytest.raises(NumberError) as info:
        NumberRules().normalise("+1 900 234 5678")
    assert str(info.value) == "'+1 900 234 5678' is not allowed: premium-rate number"
    assert isinstance(info.value, ValueError)


def test_error_message_is_one_short_line_for_hostile_input() -> None:
    raw = "+1\n212\r\x1b[31m" + "9" * 5000 + "\u202e"
    with pytest.raises(NumberError) as info:
        NumberRules().normalise(raw)
    text = str(info.value)
    assert info.value.raw == raw
    assert text.isprintable()
    assert len(text) < 150


def test_non_string_input_is_a_number_error() -> None:
    with pytest.raises(NumberError):
        NumberRules().normalise(12125551234)  # type: ignore[arg-type]


def test_allow_list() -> None:
    rules = NumberRules(default_region="GB", allowed_regions=frozenset({"GB", "DE"}))
    assert rules.normalise("020 7946 0958") == "tel:+442079460958"
    assert rules.normalise("+49 30 123456") == "tel:+4930123456"
    with pytest.raises(NumberError) as info:
        rules.normalise("+33 6 12 34 56 78")
    assert info.value.reason == "region FR is not allowed (allowed: DE, GB)"
    assert str(info.value) == (
        "'+33 6 12 34 56 78' is not allowed: region FR is not allowed (allowed: DE, GB)"
    )


def test_allow_list_tells_us_from_canada() -> None:
    rules = NumberRules(allowed_regions=frozenset({"US"}))
    assert rules.normalise("212 555 1234") == "tel:+12125551234"
    with pytest.raises(NumberError, match="region CA is not allowed"):
        rules.normalise("416 555 0123")


def test_allow_list_refuses_non_geographic() -> None:
    rules = NumberRules(allowed_regions=frozenset({"US"}))
    with pytest.raises(NumberError, match="region no region is not allowed"):
        rules.normalise("+800 1234 5678")


def test_allow_list_still_refuses_premium() -> None:
    rules = NumberRules(allowed_regions=frozenset({"US"}))
    with pytest.raises(NumberError, match="premium-rate"):
        rules.normalise("+1 900 234 5678")


def test_region_codes_are_case_insensitive() -> None:
    rules = NumberRules(default_region="gb", allowed_regions=frozenset({"gb"}))
    assert rules.default_region == "GB"
    assert rules.allowed_regions == frozenset({"GB"})
    assert rules.normalise("020 7946 0958") == "tel:+442079460958"


@pytest.mark.parametrize("bad", ["XX", "ZZ", "001", "", "USA", "uk"])
def test_unknown_default_region(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        NumberRules(default_region=bad)


def test_unknown_allowed_region() -> None:
    with pytest.raises(ValueError, match="'XX'"):
        NumberRules(allowed_regions=frozenset({"US", "XX"}))


def test_empty_or_string_allow_list() -> None:
    with pytest.raises(ValueError, match="empty"):
        NumberRules(allowed_regions=frozenset())
    with pytest.raises(ValueError, match="not a string"):
        NumberRules(allowed_regions="US")  # type: ignore[arg-type]


def test_number_error_is_not_raised_for_config_errors() -> None:
    with pytest.raises(ValueError) as info:
        NumberRules(default_region="XX")
    assert not isinstance(info.value, NumberError)


@pytest.mark.parametrize(
    ("tel", "shown"),
    [
        ("tel:+12125551234", "+1 212-555-1234"),
        ("+12125551234", "+1 212-555-1234"),
        ("tel:+442079460958", "+44 20 7946 0958"),
        ("tel:+4930123456", "+49 30 123456"),
        ("tel:+33612345678", "+33 6 12 34 56 78"),
        ("tel:12345", "tel:12345"),
        ("short code 12345", "short code 12345"),
        ("tel:+", "tel:+"),
        ("", ""),
        ("tel:+1212555123456789", "tel:+1212555123456789"),
    ],
)
def test_display_number(tel: str, shown: str) -> None:
    assert display_number(tel) == shown


@pytest.mark.parametrize(
    ("tel", "region"),
    [
        ("tel:+12125551234", "US"),
        ("tel:+14165550123", "CA"),
        ("tel:+442079460958", "GB"),
        ("tel:+4930123456", "DE"),
        ("tel:+33612345678", "FR"),
        ("tel:+80012345678", None),
        ("tel:2125551234", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_region_of(tel: str, region: str | None) -> None:
    assert region_of(tel) == region


def _check_success(rules: NumberRules, raw: str, result: str) -> None:
    assert E164_URI.fullmatch(result), result
    assert rules.normalise(result) == result
    assert rules.normalise(result[4:]) == result
    assert rules.normalise(display_number(result)) == result
    if rules.allowed_regions is not None:
        assert region_of(result) in rules.allowed_regions


phone_like = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["", "+", "tel:", "tel:+", "00", "011", " ", "+1 ", "+44 ", "0"]),
    st.text(alphabet="0123456789 -.()/", max_size=20),
)
any_text = st.text(max_size=60) | st.text(
    alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Nd", "Po", "Ps", "Pe"]),
    max_size=40,
)
regions = st.sampled_from(["US", "GB", "DE", "FR"])
allow = st.none() | st.sets(st.sampled_from(["US", "CA", "GB", "DE", "FR"]), min_size=1).map(
    frozenset
)


@FUZZ
@given(region=regions, allowed=allow, raw=phone_like | any_text)
@example(region="US", allowed=None, raw="9" * 10_000)
@example(region="US", allowed=None, raw="\x00" * 10_000)
@example(region="US", allowed=None, raw="tel:+" + "\u202e" * 10_000)
@example(region="US", allowed=None, raw="\ud800")
@example(region="US", allowed=None, raw="+1 212 555 1234")
def test_fuzz_only_number_errors_and_valid_results(
    region: str, allowed: frozenset[str] | None, raw: str
) -> None:
    rules = NumberRules(default_region=region, allowed_regions=allowed)
    try:
        result = rules.normalise(raw)
    except NumberError as err:
        assert err.raw == raw
        assert "\n" not in str(err)
        assert len(str(err)) <= 64 + len(" is not allowed: ") + len(err.reason)
        return
    _check_success(rules, raw, result)


@FUZZ
@given(raw=st.text(max_size=10_000, min_size=1000))
def test_fuzz_long_text(raw: str) -> None:
    rules = NumberRules()
    try:
        result = rules.normalise(raw)
    except NumberError:
        return
    _check_success(rules, raw, result)  # only blanks around a real number


@FUZZ
@given(region=regions, digits=st.text(alphabet="0123456789", min_size=6, max_size=15))
def test_fuzz_digit_strings(region: str, digits: str) -> None:
    rules = NumberRules(default_region=region)
    for raw in (digits, "+" + digits, "tel:+" + digits, "00" + digits):
        try:
            result = rules.normalise(raw)
        except NumberError:
            continue
        _check_success(rules, raw, result)


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_display_and_region_never_raise(text: str) -> None:
    shown = display_number(text)
    assert isinstance(shown, str)
    region = region_of(text)
    assert region is None or re.fullmatch("[A-Z]{2}", region)


@pytest.mark.parametrize(
    "raw",
    [
        "tel:+12125551234",
        "tel:2125551234",
        "2125551234",
        "12125551234",
        "+1 212 555 1234",
        "tel:+1-212-555-1234",
        "TEL:+12125551234",
        " tel: 212 555 1234 ",
        "(212) 555-1234",
        "0012125551234",
        "011 1 212 555 1234",
    ],
)
def test_canonical_sender_spellings_of_one_number(raw: str) -> None:
    assert canonical_sender(raw) == "tel:+12125551234"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345", "12345"),  # short code
        (" 12345 ", "12345"),
        ("tel:12345", "tel:12345"),
        ("oncall", "oncall"),  # alphanumeric sender id
        (" OnCall ", "OnCall"),
        ("Bank-Alert", "Bank-Alert"),
        ("", ""),
        ("tel:", "tel:"),
        ("+", "+"),
        ("+1", "+1"),
        ("tel:+12125551234;ext=7", "tel:+12125551234;ext=7"),
        ("212555123", "212555123"),  # too short for the US
        ("442079460958", "442079460958"),  # no +: not a US number, not guessed abroad
        ("1" * 50, "1" * 50),
    ],
)
def test_canonical_sender_leaves_non_numbers_alone(raw: str, expected: str) -> None:
    assert canonical_sender(raw) == expected


def test_canonical_sender_regions_and_number_types() -> None:
    assert canonical_sender("+44 20 7946 0958") == "tel:+442079460958"
    assert canonical_sender("020 7946 0958", "GB") == "tel:+442079460958"
    assert canonical_sender("07400 123456", "gb") == "tel:+447400123456"
    assert canonical_sender("2125551234", "GB") == "2125551234"
    # Not refused like a destination would be: it only names who wrote.
    assert canonical_sender("+1 900 234 5678") == "tel:+19002345678"
    assert canonical_sender("+1 555 555 0100") == "tel:+15555550100"  # possible, not valid
    with pytest.raises(ValueError):
        canonical_sender("2125551234", "XX")


def test_canonical_sender_agrees_with_normalise() -> None:
    rules = NumberRules()
    for raw in ("tel:2125551234", "+1 (212) 555-1234", "+44 7400 123456", "0044 20 7946 0958"):
        assert canonical_sender(raw) == rules.normalise(raw)


@FUZZ
@given(raw=st.text(max_size=60) | st.text(alphabet="+0123456789 -()tel:", max_size=25))
def test_fuzz_canonical_sender(raw: str) -> None:
    out = canonical_sender(raw)
    assert out == raw.strip() or E164_URI.fullmatch(out), (raw, out)
    assert canonical_sender(out) == out


def test_remembered_numbers_follow_the_rules_that_accepted_them() -> None:
    """normalise remembers accepted numbers per rules: another instance's rules (allowed
    regions, default region) still decide for themselves, and a refusal is not kept."""
    canadian = "+1 416 555 0123"
    assert NumberRules().normalise(canadian) == "tel:+14165550123"
    assert NumberRules().normalise(canadian) == "tel:+14165550123"  # remembered
    with pytest.raises(NumberError, match="region CA is not allowed"):
        NumberRules(allowed_regions={"US"}).normalise(canadian)
    assert NumberRules("GB").normalise("020 7946 0958") == "tel:+442079460958"
    with pytest.raises(NumberError):
        NumberRules("US").normalise("020 7946 0958")
    with pytest.raises(NumberError, match="too short"):
        NumberRules().normalise("12")
    with pytest.raises(NumberError, match="too short"):
        NumberRules().normalise("12")  # parsed again, same reason


def test_remembered_numbers_are_bounded() -> None:
    rules = NumberRules()
    for i in range(numbers.KNOWN_NUMBERS + 10):
        assert rules.normalise(f"+1212555{i % 10000:04d} ") == f"tel:+1212555{i % 10000:04d}"
    assert 0 < len(numbers._KNOWN) <= numbers.KNOWN_NUMBERS
