"""Inbound posts: one each, or combined above the threshold, never over the size cap."""

from __future__ import annotations

from att_sms.inbound.posts import build_posts
from att_sms.store import StoredInbound


def stored(i: int, text: str = "ok") -> StoredInbound:
    return StoredInbound(
        i,
        f"r\x1f{i}",
        "r",
        str(i),
        "tel:+12125559876",
        f"{text} {i}",
        None,
        "2026-04-19T10:00:00Z",
        0.0,
    )


def test_one_post_each_up_to_threshold() -> None:
    posts = build_posts([stored(i) for i in range(3)], combine_above=3)
    assert len(posts) == 3 and [p.keys for p in posts] == [("r\x1f0",), ("r\x1f1",), ("r\x1f2",)]
    assert "ok 1" in posts[1].text and "+1 212-555-9876" in posts[1].text


def test_combined_above_threshold_and_capped() -> None:
    messages = [stored(i, "x" * 100) for i in range(100)]
    posts = build_posts(messages, combine_above=10, max_chars=1000)
    assert len(posts) > 1
    assert all(len(p.text) <= 1000 for p in posts)  # the header included
    keys = [k for p in posts for k in p.keys]
    assert keys == [m.key for m in messages]
    assert posts[0].text.startswith(f"{len(posts[0].keys)} SMS replies:")


def test_the_plugins_note_is_on_a_line_no_sms_can_start() -> None:
    """An SMS that reads like the plugin's note still reads as the sender's text."""
    from att_sms.inbound.posts import NOTE_MARK, render_line
    from errbot.rendering import imtext, text

    forged = stored(7, "ok on it (acknowledges page P7)")
    forged_multi = stored(8, "ok on it\n\u21b3 (acknowledges page P7)\r\n\u2028\u21b3 (x)")
    genuine = stored(9, "ok on it")

    def note_of(m: StoredInbound) -> str | None:
        return "acknowledges page P7" if m is genuine else None

    for convert in (lambda t: t, text().convert, imtext().convert):  # Slack; IRC, Text
        shown = {
            m.seq: convert(render_line(m, note_of=note_of)) for m in (forged, forged_multi, genuine)
        }
        for seq in (7, 8):
            assert not any(line.startswith(NOTE_MARK) for line in shown[seq].splitlines())
            assert len(shown[seq].splitlines()) == 1
        first, note = shown[9].splitlines()
        assert first.endswith(": ok on it 9") and note == f"{NOTE_MARK}(acknowledges page P7)"
    posts = build_posts([forged, genuine, *(stored(i) for i in range(20))], combine_above=3,
                        note_of=note_of)  # fmt: skip
    lines = posts[0].text.splitlines()
    assert [line for line in lines if line.startswith(NOTE_MARK)] == [
        f"{NOTE_MARK}(acknowledges page P7)"
    ]
    assert lines[lines.index(f"{NOTE_MARK}(acknowledges page P7)") - 1].endswith("ok on it 9")


def test_combined_posts_fit_the_chats_message_size_limit() -> None:
    """errbot cuts a message longer than the backend's limit (510 on IRC) wherever it falls,
    so a combined post longer than that would reach the room with lines cut in half."""
    from types import SimpleNamespace

    from att_sms.chat.chat_posting import post_size_limit
    from att_sms.inbound.posts import COMBINED_POST_CHARS

    irc = SimpleNamespace(message_size_limit=510)
    assert post_size_limit(irc, COMBINED_POST_CHARS) == 510
    assert post_size_limit(SimpleNamespace(message_size_limit=10000), COMBINED_POST_CHARS) == 3500
    assert post_size_limit(object(), COMBINED_POST_CHARS) == 3500
    messages = [stored(i, f"stream marker{i:05d}") for i in range(120)]
    posts = build_posts(messages, combine_above=10, max_chars=post_size_limit(irc, 3500))
    assert len(posts) > 1 and all(len(p.text) <= 510 for p in posts)
    lines = [line for p in posts for line in p.text.split("\n")[1:]]
    assert [f"marker{i:05d}" in line for i, line in enumerate(lines)] == [True] * 120
