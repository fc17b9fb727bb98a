"""Tests for att_sms.sending.policy: opt-out keywords, send quotas."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from att_sms.sending import policy as p
from att_sms.sending.policy import QuotaError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ts(text: str) -> float:
    """Epoch seconds of a UTC ``YYYY-MM-DD HH:MM:SS`` time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


NOON = ts("2026-04-19 12:00:00")


# -- opt-out keywords ----------------------------------------------------------


def test_word_sets() -> None:
    assert p.OPT_OUT_WORDS == {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
    assert p.OPT_IN_WORDS == {"START", "UNSTOP"}


@pytest.mark.parametrize("word", sorted(p.OPT_OUT_WORDS))
def test_opt_out_words(word: str) -> None:
    assert p.opt_keyword(word) == "out"
    assert p.opt_keyword(word.lower()) == "out"
    assert p.opt_keyword(word.title()) == "out"
    assert p.opt_keyword(f"  \n{word}\r\n\t ") == "out"


@pytest.mark.parametrize("word", sorted(p.OPT_IN_WORDS))
def test_opt_in_words(word: str) -> None:
    assert p.opt_keyword(word) == "in"
    assert p.opt_keyword(f"\n {word.lower()} \n") == "in"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "stop it",
        "please stop",
        "STOP.",
        "STOP!",
        "S TOP",
        "STOP\nSTOP",
        "STOPP",
        "stopall now",
        "starting",
        "\u017ftop",  # long s: upper() would make it STOP
        "\ufb06op",  # st ligature: upper() would make it STOP too
        "ST\u200bOP",
        "\x00STOP",
        "Stop\u0301",
        None,
        42,
    ],
)
def test_not_keywords(text: object) -> None:
    assert p.opt_keyword(text) is None


@FUZZ
@given(st.text(max_size=20))
def test_opt_keyword_only_for_exact_words(text: str) -> None:
    result = p.opt_keyword(text)
    word = text.strip().upper()
    if word.isascii() and word in p.OPT_OUT_WORDS:
        assert result == "out"
    elif word.isascii() and word in p.OPT_IN_WORDS:
        assert result == "in"
    else:
        assert result is None


# -- quotas --------------------------------------------------------------------


def test_no_limits() -> None:
    for i in range(50):
        state = {"users": {"alice": [NOON + j for j in range(i)]}, "days": {"2026-04-19": 4 * i}}
        p.check_quota(state, "alice", 4, NOON + i, 0, 0)


def test_rate_limit_counts_sends_per_user() -> None:
    state = {"users": {"alice": [NOON, NOON + 600]}, "days": {"2026-04-19": 4}}
    p.check_quota(state, "alice", 1, NOON + 700, 3, 0)
    state = {"users": {"alice": [NOON, NOON + 600, NOON + 700]}, "days": {"2026-04-19": 5}}
    p.check_quota(state, "bob", 1, NOON + 800, 3, 0)  # bob has his own count
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "alice", 1, NOON + 800, 3, 0)
    err = info.value
    assert err.limit == "rate"
    assert err.resets_at == NOON + 3600
    assert str(err) == (
        "rate limit reached: alice sent 3 messages in the last hour (limit 3 an hour); "
        "resets at 13:00 UTC (in 47 min)"
    )
    # one second before the oldest send leaves the window: still refused
    with pytest.raises(QuotaError, match=r"resets at 13:00 UTC \(in 1 min\)$"):
        p.check_quota(state, "alice", 1, NOON + 3599, 3, 0)
    # exactly when it leaves the window: allowed
    p.check_quota(state, "alice", 1, NOON + 3600, 3, 0)


def test_rate_limit_reset_is_oldest_of_the_counted_sends() -> None:
    state = {"users": {"alice": [NOON + 900, NOON + 100, NOON + 500, NOON - 4000]}, "days": {}}
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "alice", 1, NOON + 1000, 3, 0)
    assert info.value.resets_at == NOON + 100 + 3600
    # limit lowered below what was sent: wait until enough sends leave
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "alice", 1, NOON + 1000, 1, 0)
    assert info.value.resets_at == NOON + 900 + 3600
    assert str(info.value).startswith(
        "rate limit reached: alice sent 3 messages in the last hour (limit 1 an hour)"
    )


def test_rate_limit_message_singular() -> None:
    state = {"users": {"bob": [NOON]}, "days": {}}
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "bob", 1, NOON + 30, 1, 0)
    assert str(info.value) == (
        "rate limit reached: bob sent 1 message in the last hour (limit 1 an hour); "
        "resets at 13:00 UTC (in 60 min)"
    )


def test_reset_minute_is_rounded_up() -> None:
    state = {"users": {"bob": [NOON + 30]}, "days": {}}
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "bob", 1, NOON + 90, 1, 0)
    # resets at 13:00:30: shown as 13:01 so trying at the shown minute works
    assert str(info.value).endswith("resets at 13:01 UTC (in 59 min)")


def test_daily_limit_counts_parts_for_everyone() -> None:
    now = ts("2026-04-19 21:35:00")
    state = {"users": {"alice": [now], "bob": [now]}, "days": {"2026-04-19": 8}}
    p.check_quota(state, "carol", 2, now, 0, 10)
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "carol", 3, now, 0, 10)
    err = info.value
    assert err.limit == "daily"
    assert err.resets_at == ts("2026-04-20 00:00:00")
    assert str(err) == (
        "daily limit reached: 8 of 10 parts sent today, 3 more parts would exceed it; "
        "resets at 00:00 UTC (in 145 min)"
    )
    # the next UTC day starts from zero
    p.check_quota(state, "carol", 10, ts("2026-04-20 00:00:00"), 0, 10)


def test_daily_limit_message_singular() -> None:
    state = {"users": {}, "days": {"2026-04-19": 1}}
    with pytest.raises(
        QuotaError,
        match=r"^daily limit reached: 1 of 1 part sent today, 1 more "
        r"part would exceed it; resets at 00:00 UTC \(in 720 min\)$",
    ):
        p.check_quota(state, "bob", 1, NOON, 0, 1)


def test_message_bigger_than_daily_limit() -> None:
    with pytest.raises(QuotaError) as info:
        p.check_quota({"users": {}, "days": {}}, "alice", 6, NOON, 0, 5)
    assert str(info.value) == (
        "daily limit of 5 parts: this message needs 6 parts, more than a whole day allows "
        "(even after the reset at 00:00 UTC, in 720 min)"
    )
    assert info.value.limit == "daily"


def test_both_limits_report_the_later_reset() -> None:
    state = {"users": {"alice": [NOON]}, "days": {"2026-04-19": 10}}
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "alice", 1, NOON + 60, 1, 10)
    assert info.value.limit == "daily"
    state = {"users": {"alice": [ts("2026-04-19 23:30:00")]}, "days": {"2026-04-19": 10}}
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "alice", 1, ts("2026-04-19 23:40:00"), 1, 10)
    assert info.value.limit == "rate"
    assert info.value.resets_at == ts("2026-04-20 00:30:00")


def test_quota_error_is_value_error() -> None:
    err = QuotaError("x", resets_at=1.0, limit="rate")
    assert isinstance(err, ValueError)
    assert err.resets_at == 1.0


def test_check_quota_does_not_mutate() -> None:
    state = {"users": {"alice": [NOON - 7200, NOON]}, "days": {"2026-04-01": 3}}
    before = copy.deepcopy(state)
    p.check_quota(state, "alice", 1, NOON + 1, 5, 100)
    p.check_quota({}, "alice", 1, NOON + 1, 5, 100)
    assert state == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1, 1), r"^parts must be an integer >= 1, not 0$"),
        ((1, -1, 1), r"^rate_limit must be an integer >= 0, not -1$"),
        ((1, 1, -5), r"^daily_limit must be an integer >= 0, not -5$"),
        ((1.5, 1, 1), r"^parts must be an integer >= 1, not 1.5$"),
        ((True, 1, 1), r"^parts must be an integer >= 1, not True$"),
    ],
)
def test_check_quota_refuses_bad_arguments(args: tuple, message: str) -> None:
    parts, rate, daily = args
    with pytest.raises(ValueError, match=message):
        p.check_quota({"users": {}, "days": {}}, "alice", parts, NOON, rate, daily)


# -- quota properties ----------------------------------------------------------

times = st.lists(st.integers(min_value=0, max_value=4 * 3600), min_size=0, max_size=30).map(sorted)


@FUZZ
@given(times, st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=4 * 3600))
def test_rate_window_property(sends: list[int], limit: int, offset: int) -> None:
    """Refused iff ``limit`` sends fall in (now - 3600, now]; the reset time is exact."""
    base = NOON
    state = {"users": {"alice": [base + t for t in sends]}, "days": {}}
    now = base + max(sends + [0]) + offset % 600
    recent = [base + t for t in sends if base + t > now - 3600]
    if len(recent) < limit:
        p.check_quota(state, "alice", 1, now, limit, 0)
        return
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "alice", 1, now, limit, 0)
    resets_at = info.value.resets_at
    assert now < resets_at <= now + 3600
    # still refused just before the reset, allowed at it
    with pytest.raises(QuotaError):
        p.check_quota(state, "alice", 1, resets_at - 0.5, limit, 0)
    p.check_quota(state, "alice", 1, resets_at, limit, 0)
    minutes = int(str(info.value).rsplit("(in ", 1)[1].split(" min")[0])
    assert now + minutes * 60 >= resets_at > now + (minutes - 1) * 60


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=3 * 86400), st.integers(1, 5)), max_size=30
    ).map(sorted),
    st.integers(min_value=1, max_value=40),
    st.integers(1, 5),
    st.integers(min_value=0, max_value=86400),
)
def test_daily_window_property(
    sends: list[tuple[int, int]], limit: int, parts: int, offset: int
) -> None:
    """Refused iff today's (UTC) parts + ``parts`` exceed the limit; resets at midnight."""
    start = ts("2026-04-19 00:00:00")
    days: dict[str, int] = {}
    for t, n in sends:
        day_key = datetime.fromtimestamp(start + t, UTC).strftime("%Y-%m-%d")
        days[day_key] = days.get(day_key, 0) + n
    state = {"users": {"u": [start + t for t, _ in sends]}, "days": days}
    now = start + (sends[-1][0] if sends else 0) + offset
    day = datetime.fromtimestamp(now, UTC).date()
    today = sum(n for t, n in sends if datetime.fromtimestamp(start + t, UTC).date() == day)
    if today + parts <= limit:
        p.check_quota(state, "u", parts, now, 0, limit)
        return
    with pytest.raises(QuotaError) as info:
        p.check_quota(state, "u", parts, now, 0, limit)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + 86400
    assert info.value.resets_at == midnight
    assert "00:00 UTC" in str(info.value)
    if parts <= limit:
        p.check_quota(state, "u", parts, midnight, 0, limit)
