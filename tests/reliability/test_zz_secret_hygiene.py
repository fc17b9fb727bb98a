"""Secret hygiene, run last: nothing the suite logged, posted or printed holds a credential.

First a carrier that echoes the secret and the live token back in its error texts (the
plugin shows carrier texts in chat), then the scan of every log record of the session
(root handler, DEBUG for the project's and the HTTP stack's loggers), every chat reply and
post, and the crash test's errbot/sandbox stdout, stderr and log files, for the client
secret and every access token issued (in-process sandboxes: recorded as issued;
subprocess sandbox: matched by SHA-256 digest from its --db file).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import reliakit
from botkit import sandbox_config
from reliakit import TEST_CLIENT_ID, TEST_CLIENT_SECRET, RecBot, one_clear_line

from carrier_sandbox import Sandbox

OUTBOX = "/sms/v3/messaging/outbox"
TOKEN = "/oauth/v4/token"
_TOKENISH = re.compile(r"[A-Za-z0-9_\-]{43,}")


@pytest.fixture
def echo_bot(env: None, tmp_path: Path) -> Iterator[tuple[RecBot, Sandbox]]:
    box = Sandbox(
        client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET, registrations=("reg-ops",)
    ).start()
    bot = RecBot(data_dir=tmp_path / "data")
    try:
        assert bot.configure(sandbox_config(box, TEST_CLIENT_ID, FOLLOW_UP=False)) == (
            "Plugin configuration done."
        )
        yield bot, box
    finally:
        bot.stop()
        box.stop()


def test_carrier_echoing_credentials_never_reaches_chat(echo_bot: tuple[RecBot, Sandbox]) -> None:
    bot, box = echo_bot
    before = set(reliakit.ISSUED_TOKENS)
    assert bot.ask("!sms send +12125551234 warm up").startswith("Sent to")
    own = sorted(reliakit.ISSUED_TOKENS - before)  # the token this bot's client holds
    assert len(own) == 1
    echoed = ",".join([TEST_CLIENT_SECRET, *own])
    answers = []
    box.add_fault(
        OUTBOX,
        method="POST",
        status=400,
        body={
            "RequestError": {
                "ServiceException": {
                    "MessageId": "SVC0002",
                    "Text": "bad %1 %2",
                    "Variables": echoed,
                }
            }
        },
    )
    answers.append(bot.ask("!sms send +12125551234 echo 400"))
    box.add_fault(
        OUTBOX, method="POST", status=500, body={"error": "oops", "error_description": echoed}
    )
    answers.append(bot.ask("!sms send +12125551234 echo 500"))
    box.add_fault(OUTBOX, method="GET", status=400, body=f"client_secret={echoed}")
    answers.append(bot.ask("!sms status SMS123"))
    box.expire_tokens()
    box.add_fault(
        TOKEN,
        method="POST",
        status=401,
        body={"error": "invalid_client", "error_description": f"secret {echoed} refused"},
    )
    answers.append(bot.ask("!sms send +12125551234 echo token endpoint"))
    for answer in answers:
        assert one_clear_line(answer), answer
        assert TEST_CLIENT_SECRET not in answer
        assert not any(token in answer for token in own), answer


def test_no_secret_or_token_in_any_log_line_or_chat_text() -> None:
    secret = TEST_CLIENT_SECRET
    tokens = set(reliakit.ISSUED_TOKENS)
    digests = set(reliakit.TOKEN_DIGESTS)
    sources: list[tuple[str, str]] = [("log record", line) for line in reliakit.CAPTURE.lines()]
    sources += reliakit.scanned_text()
    hits: list[str] = []
    for source, line in sources:
        if secret in line:
            hits.append(f"{source}: client secret in {line[:120]!r}")
        for run in _TOKENISH.findall(line):
            windows = {run[i : i + 43] for i in range(len(run) - 42)}
            for candidate in windows:
                if candidate in tokens or hashlib.sha256(candidate.encode()).hexdigest() in digests:
                    hits.append(f"{source}: access token in {line[:60]!r}...")
    by_source: dict[str, int] = {}
    for source, _ in sources:
        kind = source.split(" run ")[0]
        by_source[kind] = by_source.get(kind, 0) + 1
    reliakit.FIGURES["secret_scan"] = {
        "lines_scanned": len(sources),
        "lines_by_source": by_source,
        "tokens_checked": len(tokens) + len(digests),
        "hits": len(hits),
    }
    assert len(sources) > 100, "nothing to scan: run the whole tests/reliability folder"
    assert tokens, "no issued token was recorded"
    assert hits == [], hits[:5]
