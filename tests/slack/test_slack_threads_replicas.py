"""Issue 23: two replicas posting the first SMS of the same new numbers at once open one
thread per number (the store's claim), on SQLite and on PostgreSQL.

Each replica is slackv3's own backend object (its Web API at the Slack stand-in) with its
own store connection and a ``ConversationPoster``; replica A posts each number's first SMS,
replica B its second, both starting on each number at the same moment.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from att_sms.carrier.client import InboundMessage
from att_sms.chat.chat_posting import PostFailed
from att_sms.chat.conversation_posting import ConversationPoster
from att_sms.inbound.posts import build_posts
from att_sms.settings import parse_settings
from slack_standin import SlackStandIn
from slack_worlds import slack_backend

#: The fixtures engine, pg_server and pg_url (one PostgreSQL server per test session).
pytest_plugins = ["pgserver"]

if TYPE_CHECKING:
    from pgserver import Engine

pytestmark = pytest.mark.slack

CHANNEL = "C0REPLIC1"
NUMBERS = [f"tel:+1212555{n:04d}" for n in range(500, 520)]
SETTINGS = parse_settings(
    {"API_BASE_URL": "http://127.0.0.1:1", "CLIENT_ID": "x"}, {"ATT_CLIENT_SECRET": "x"}
)


def _replica(
    name: str, standin: SlackStandIn, store: Any, tmp_path: Path, messages: list[Any]
) -> tuple[ConversationPoster, Any, Any]:
    data = tmp_path / name
    data.mkdir()
    backend = slack_backend(standin, data)
    poster = ConversationPoster(backend, store, SETTINGS, holder=f"replica-{name}")
    return poster, backend.build_identifier(f"<#{CHANNEL}>"), messages


def _post_all(
    poster: ConversationPoster, identifier: Any, messages: list[Any], store: Any,
    gate: threading.Barrier,
) -> int:  # fmt: skip
    """Post each message, both replicas starting on each number together (waiting while the
    other replica opens the number's thread); how many times it waited."""
    waits = 0
    for message in messages:
        gate.wait()
        (post,) = build_posts([message], combine_above=10)
        for _ in range(500):
            failed = poster.post_inbound(
                identifier, message.sender_address, [post],
                from_address=None, posted=lambda p: store.mark_posted(p.keys),
            )  # fmt: skip
            if failed is None:
                break
            assert "being opened by another poster" in failed.reason, failed.reason
            waits += 1
            time.sleep(0.01)
        else:
            raise AssertionError(f"{message.sender_address} never got its thread")
    return waits


def test_two_replicas_open_one_thread_per_new_number(engine: Engine, tmp_path: Path) -> None:
    standin = SlackStandIn().start()
    standin.add_channel(CHANNEL, "sms-replicas")
    stores = [engine.open(), engine.open()]
    try:
        firsts = stores[0].record_fetched(
            "reg", [InboundMessage(f"a{n}", f"first {n}", n, None, None) for n in NUMBERS]
        )
        seconds = stores[1].record_fetched(
            "reg", [InboundMessage(f"b{n}", f"second {n}", n, None, None) for n in NUMBERS]
        )
        replicas = [
            _replica("a", standin, stores[0], tmp_path, firsts),
            _replica("b", standin, stores[1], tmp_path, seconds),
        ]
        gate = threading.Barrier(2)
        errors: list[BaseException] = []
        waited: list[int] = []

        def run(index: int) -> None:
            poster, identifier, messages = replicas[index]
            try:
                waited.append(_post_all(poster, identifier, messages, stores[index], gate))
            except (BaseException, PostFailed) as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        print(f"replicas waited {sum(waited)} times for the other's root")  # noqa: T201
        assert sum(waited) > 0  # they did race

        posts = standin.posts(CHANNEL)
        assert len(posts) == 2 * len(NUMBERS)
        roots = [p for p in posts if p.thread_ts is None]
        assert len(roots) == len(NUMBERS)  # one thread per number, whoever posted first
        for number in NUMBERS:
            mine = [p for p in posts if number[-4:] in p.text]
            assert len(mine) == 2, [p.text for p in mine]
            root = next(p for p in mine if p.thread_ts is None)
            (reply,) = [p for p in mine if p.thread_ts is not None]
            assert reply.thread_ts == root.ts
        assert stores[0].counts()["pending"] == 0
        assert stores[0].conversation_count() == len(NUMBERS)
    finally:
        for store in stores:
            store.close()
        standin.stop()
