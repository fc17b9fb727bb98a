"""Inbound posts: one each, or combined above the threshold, never over the size cap."""

from __future__ import annotations

from att_sms.posts import build_posts
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
    assert all(len(p.text) <= 1000 + 40 for p in posts)
    keys = [k for p in posts for k in p.keys]
    assert keys == [m.key for m in messages]
    assert posts[0].text.startswith(f"{len(posts[0].keys)} SMS replies:")
