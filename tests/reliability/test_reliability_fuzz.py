"""Fuzzing through the plugin in TestBot: hostile command arguments and hostile inbound SMS.

Every answer must be one clear line; a send is either refused ("Not sent...", nothing at the
carrier) or correctly split (every part at most 160 characters, ``(i/n) `` markers when there
are several, all parts named in the reply). Every inbound post must be inert: no
``@channel``/``@here``/``<!``, no control characters, one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import reliakit
from botkit import sandbox_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliakit import TEST_CLIENT_ID, TEST_CLIENT_SECRET, RecBot, one_clear_line, unhandled_errors

from carrier_sandbox import Sandbox

EXAMPLES = 50


def ask_once(bot: RecBot, command: str) -> str:
    """The bot's answer, which must be exactly one chat message (errbot splits long ones)."""
    answer = bot.ask(command, timeout=30)
    extra = bot.drain(0.03)
    assert extra == [], f"one answer came as {1 + len(extra)} messages: {answer[:80]!r}..."
    return answer


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
STATUS_STARTS = ("Message ", "No message ", "Status not available", "give exactly one message id")
INBOX_STARTS = ("Inbox:", "No route for registration", "usage:")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

VALID = ["+12125551234", "2125550199", '"(212) 555-0142"', "tel:+442079460018", "+1 212 555 0100"]
RECIPIENTS = st.one_of(
    st.sampled_from(
        [
            "+12125551234",
            "2125551234",
            '"(212) 555-0199"',
            "tel:+442079460018",
            "+19005550100",  # premium rate
            "+1212555123",  # too short
            "12",
            "",
            ",",
            '"',
            "@channel",
            "+1\u202e2125551234",
            "\uff0b12125551234",  # fullwidth plus
            "٠١٢٣٤٥٦٧٨٩",  # arabic-indic digits
        ]
    ),
    st.text(max_size=20),
)
TEXTS = st.one_of(
    st.text(max_size=400),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=161, max_size=640),
    st.lists(
        st.sampled_from(["db-1", "down", "🔥", "שלום", "مرحبا", "\u202e", "ok", "x" * 40]),
        min_size=20,
        max_size=90,
    ).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=600),
    st.sampled_from(
        [
            "db-1 is down 🔥🔥🔥",
            "שלום עולם — the database is down",
            "مرحبا \u202e evil \u202c text",
            "line one\nline two\r\nline three",
            "\x00\x07\x1b[31mred\x1b[0m",
            "x" * 10_000,
            "word " * 2_000,
            "👩‍👩‍👧‍👦" * 50,
            " ".join(["a" * 170] * 2),
            '"quoted text"',
        ]
    ),
)
ARGS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", " ", "a b", "../../etc", "%2F", "SMS123", "x" * 300, "\u202e", "\x00"]),
)
INBOUND = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            [
                "@channel", "@here", "@everyone", "<!channel>", "<!here|here>", "<@U123>",
                "<#C123>", "<http://evil|click>", "*bold*", "_it_", "`code`", "```", "# head",
                "> quote", "&lt;!channel&gt;", "\x07", "\x1b[2J", "\r\n", "\u2028", "\u202e",
                "\x85", "\t", "[link](http://x)", "||spoiler||", "~strike~", "\\", "🔥", "שלום",
            ]
        ),
        min_size=1,
        max_size=12,
    ).map(" ".join),
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecBot, Sandbox]]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ATT_API_BASE_URL", "ATT_CLIENT_ID", "ATT_INBOX_ROUTES", "ATT_POLL_INTERVAL"):
            mp.delenv(name, raising=False)
        mp.setenv("ATT_CLIENT_SECRET", TEST_CLIENT_SECRET)
        box = Sandbox(
            client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET, registrations=("reg-ops",)
        ).start()
        bot = RecBot(data_dir=Path(tmp_path_factory.mktemp("fuzz")) / "data")
        try:
            config = sandbox_config(box, TEST_CLIENT_ID, FOLLOW_UP=False)
            assert bot.configure(config) == "Plugin configuration done."
            yield bot, box
        finally:
            bot.stop()
            box.stop()


def _count(name: str) -> None:
    counts = reliakit.FIGURES.setdefault("fuzz", {})
    counts[name] = counts.get(name, 0) + 1


@FUZZ
@given(
    recipients=st.one_of(
        st.lists(st.sampled_from(VALID), min_size=1, max_size=3),
        st.lists(st.sampled_from(VALID), min_size=1, max_size=2),
        st.lists(RECIPIENTS, min_size=1, max_size=3),
    ),
    text=TEXTS,
)
def test_fuzz_send(fuzz: tuple[RecBot, Sandbox], recipients: list[str], text: str) -> None:
    bot, box = fuzz
    _count("send_examples")
    before = len(box.state()["sent"])
    mark = reliakit.CAPTURE.mark()
    answer = ask_once(bot, f"!sms send {','.join(recipients)} {text}")
    parts = box.state()["sent"][before:]
    assert one_clear_line(answer), repr(answer)
    assert unhandled_errors(mark) == []
    if answer.startswith("Sent to"):
        _count("send_accepted")
        if len(parts) > 1:
            _count("send_split")
        assert parts, answer
        assert all(len(p["message"]) <= 160 for p in parts)
        if len(parts) > 1:
            assert [p["message"].split(" ", 1)[0] for p in parts] == [
                f"({i}/{len(parts)})" for i in range(1, len(parts) + 1)
            ]
        assert all(p["messageId"] in answer for p in parts)
    else:
        _count("send_refused")
        reasons = reliakit.FIGURES["fuzz"].setdefault("send_refusals", {})
        reason = re.sub(r"'.*|\d.*", "", answer)[:48].strip()
        reasons[reason] = reasons.get(reason, 0) + 1
        assert answer.startswith("Not sent"), answer
        assert parts == [], f"refused ({answer}) but the carrier got {parts}"


@FUZZ
@given(args=ARGS)
def test_fuzz_status(fuzz: tuple[RecBot, Sandbox], args: str) -> None:
    bot, box = fuzz
    _count("status_examples")
    mark = reliakit.CAPTURE.mark()
    answer = ask_once(bot, f"!sms status {args}")
    assert one_clear_line(answer), repr(answer)
    assert answer.startswith(STATUS_STARTS), answer
    assert unhandled_errors(mark) == []


@FUZZ
@given(args=ARGS)
def test_fuzz_inbox_arguments(fuzz: tuple[RecBot, Sandbox], args: str) -> None:
    bot, box = fuzz
    _count("inbox_args_examples")
    mark = reliakit.CAPTURE.mark()
    answer = ask_once(bot, f"!sms inbox {args}")
    assert one_clear_line(answer), repr(answer)
    assert answer.startswith(INBOX_STARTS), answer
    assert unhandled_errors(mark) == []


@FUZZ
@given(text=INBOUND, sender=st.sampled_from(["tel:+12125559876", "tel:+442079460018", "12345"]))
def test_fuzz_inbound_posts_are_inert(fuzz: tuple[RecBot, Sandbox], text: str, sender: str) -> None:
    bot, box = fuzz
    _count("inbound_examples")
    marker = f"fz{reliakit.FIGURES['fuzz']['inbound_examples']:04d}q"
    box.inject_inbound("reg-ops", sender, f"{text} {marker}")
    mark = reliakit.CAPTURE.mark()
    answer = ask_once(bot, "!sms inbox")
    assert answer.startswith("Inbox: 1 message arrived"), answer
    posts = bot.posts_containing(marker)
    assert len(posts) == 1, posts
    body = posts[0][1]
    for bad in ("@channel", "@here", "@everyone", "<!", "<@", "<#"):
        assert bad not in body, (bad, body)
    assert not CONTROL.search(body), repr(body)
    assert "\n" not in body
    assert unhandled_errors(mark) == []


LONG = "x" * 10_000


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(f"!sms status {LONG}", id="status"),
        pytest.param(f"!sms inbox {LONG}", id="inbox"),
        pytest.param(f"!sms send {LONG} hello", id="send-recipient"),
        pytest.param(f"!sms send +12125551234,+1{'2' * 5000} hello", id="send-long-number"),
        pytest.param(f"!sms send +12125551234 {LONG}", id="send-text"),
        pytest.param(f"!sms {LONG}", id="unknown-subcommand"),
    ],
)
def test_a_10000_character_argument_gets_one_short_answer(
    fuzz: tuple[RecBot, Sandbox], command: str
) -> None:
    bot, _ = fuzz
    answer = ask_once(bot, command)
    assert one_clear_line(answer), repr(answer[:200])
    assert len(answer) < 1000, f"answer of {len(answer)} characters"
