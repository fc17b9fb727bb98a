"""Fault matrix: every operation against every carrier fault, through the plugin in TestBot.

Each cell is one test id ``<operation>-<fault>[-after][-xN]``. A cell passes when

* the chat answer is a success or one clear line (no newline, no traceback, no
  "Computer says nooo");
* the answer tells the truth about a send: "Sent to" only when the carrier took it, never
  "Not sent" when it took it (unless the carrier itself answered a refusal after taking it);
* the carrier recorded at most one send per chat send (no duplicate page);
* an inbound message caught by a fault is posted exactly once once the carrier recovers;
* no ERROR record with a traceback was logged by errbot or the plugin.

Every cell's outcome goes into ``FIGURES["fault_matrix"]`` (and docs/RELIABILITY.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import reliakit
from botkit import sandbox_config
from reliakit import TEST_CLIENT_ID, TEST_CLIENT_SECRET, RecBot, one_clear_line, unhandled_errors

from carrier_sandbox import Sandbox

OUTBOX = "/sms/v3/messaging/outbox"
INBOX = "/sms/v3/messaging/inbox"
REG = "reg-ops"
TO = "+12125551234"
READ_TIMEOUT = 1


@dataclass(frozen=True)
class Fault:
    """One carrier misbehaviour: ``add_fault`` keywords, or a special action."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    special: str | None = None  # "expired" (expire_tokens) or "refused" (closed port)
    retried_by_gets: bool = False  # transient for GETs: also run a persistent variant


FAULTS = [
    Fault("500", {"status": 500}, retried_by_gets=True),
    Fault("502", {"status": 502}, retried_by_gets=True),
    Fault(
        "503-retry-after", {"status": 503, "headers": {"Retry-After": "1"}}, retried_by_gets=True
    ),
    Fault("429", {"status": 429, "headers": {"Retry-After": "0"}}, retried_by_gets=True),
    Fault("read-timeout", {"delay": READ_TIMEOUT + 0.6}, retried_by_gets=True),
    Fault("reset", {"action": "reset"}, retried_by_gets=True),
    Fault("refused", special="refused"),
    Fault("malformed-json", {"action": "malformed"}),
    Fault(
        "text-html",
        {"body": "<html><body>Gateway login</body></html>", "content_type": "text/html"},
    ),
    Fault("401-expired-token", special="expired"),
    Fault(
        "400-service",
        {
            "status": 400,
            "body": {
                "RequestError": {
                    "ServiceException": {
                        "MessageId": "SVC0002",
                        "Text": "Invalid input value for message part %1",
                        "Variables": "address",
                    }
                }
            },
        },
    ),
    Fault(
        "400-policy",
        {
            "status": 400,
            "body": {
                "RequestError": {
                    "PolicyException": {
                        "MessageId": "POL0003",
                        "Text": "Too many addresses specified in message part %1",
                        "Variables": "address",
                    }
                }
            },
        },
    ),
    Fault("400-not-requesterror", {"status": 400, "body": {"message": "Bad Request", "code": 4}}),
]

#: Cells expected to fail, with the reason (reported as bugs / residual risks).
XFAIL: dict[str, str] = {
    "send-429-after": (
        "a carrier that takes a message and then answers 429 breaks the meaning of 429 "
        "(refused, not processed): the plugin repeats nothing but reports the message as "
        "refused (rate limit), so the user may send it again"
    ),
    "send-401-expired-token-after": (
        "client.AttSmsClient._authorized repeats a call after a 401 with a fresh token, "
        "sends included (a 401 means the carrier refused it before processing); a carrier "
        "that took the message and then answered 401 gets it twice"
    ),
}


@dataclass(frozen=True)
class Cell:
    op: str  # send | status | inbox
    fault: Fault
    when: str = "before"
    count: int = 1

    @property
    def id(self) -> str:
        parts = [self.op, self.fault.name]
        if self.when == "after":
            parts.append("after")
        if self.count > 1:
            parts.append(f"x{self.count}")
        return "-".join(parts)


def _cells() -> list[Any]:
    cells: list[Cell] = []
    for fault in FAULTS:
        cells.append(Cell("send", fault))
        if fault.special != "refused":
            cells.append(Cell("send", fault, when="after"))
        if fault.name == "429":
            cells.append(Cell("send", fault, count=10))
        for op in ("status", "inbox"):
            cells.append(Cell(op, fault))
            if fault.retried_by_gets:
                cells.append(Cell(op, fault, count=10))
    params = []
    for cell in cells:
        marks = []
        if cell.id in XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[cell.id]))
        params.append(pytest.param(cell, id=cell.id, marks=marks))
    return params


def _fault_kwargs(cell: Cell, status_path: str) -> dict[str, Any]:
    kwargs = dict(cell.fault.kwargs)
    kwargs["count"] = cell.count
    kwargs["when"] = cell.when
    if cell.fault.name == "text-html":
        kwargs["status"] = 201 if cell.op == "send" else 200
    if cell.op == "send":
        kwargs.update(path=OUTBOX, method="POST")
    elif cell.op == "status":
        kwargs.update(path=status_path, method="GET")
    else:
        kwargs.update(path=f"{INBOX}/{REG}", method="GET")
    return kwargs


class Matrix:
    """One bot and one sandbox for the whole matrix (a bot start costs about a second)."""

    def __init__(self, bot: RecBot, box: Sandbox, config: dict[str, Any], dead_url: str) -> None:
        self.bot = bot
        self.box = box
        self.config = config
        self.dead_url = dead_url

    def sends(self) -> list[dict[str, Any]]:
        return self.box.state()["sent"]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ATT_API_BASE_URL", "ATT_CLIENT_ID", "ATT_INBOX_ROUTES", "ATT_POLL_INTERVAL"):
            mp.delenv(name, raising=False)
        mp.setenv("ATT_CLIENT_SECRET", TEST_CLIENT_SECRET)
        dead = Sandbox(client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET).start()
        dead_url = dead.base_url
        dead.stop()  # nothing listens on its port any more: connection refused
        box = Sandbox(
            client_id=TEST_CLIENT_ID,
            client_secret=TEST_CLIENT_SECRET,
            delivery_delay=0.1,
            registrations=(REG,),
        ).start()
        bot = RecBot(data_dir=Path(tmp_path_factory.mktemp("matrix")) / "data")
        config = sandbox_config(box, TEST_CLIENT_ID, READ_TIMEOUT=READ_TIMEOUT, FOLLOW_UP=False)
        try:
            assert bot.configure(config) == "Plugin configuration done."
            yield Matrix(bot, box, config, dead_url)
        finally:
            bot.stop()
            box.stop()


@pytest.mark.parametrize("cell", _cells())
def test_fault_cell(matrix: Matrix, cell: Cell) -> None:
    bot, box = matrix.bot, matrix.box
    box.clear_faults()
    bot.drain(0.02)
    marker = f"cell {cell.id} inbound"
    status_path = OUTBOX
    if cell.op == "status":
        setup = bot.ask(f"!sms send {TO} status setup for {cell.id}")
        assert setup.startswith("Sent to"), setup
        message_id = setup.rsplit(" ", 1)[1]
        status_path = f"{OUTBOX}/{message_id}"
    if cell.op == "inbox":
        box.inject_inbound(REG, "tel:+12125559876", marker)
    sends_before = len(matrix.sends())
    tokens_before = box.state()["tokenRequests"]
    mark = reliakit.CAPTURE.mark()

    if cell.fault.special == "refused":
        dead_config = dict(matrix.config, API_BASE_URL=matrix.dead_url)
        assert bot.configure(dead_config) == "Plugin configuration done."
    elif cell.fault.special == "expired":
        if cell.when == "after":
            box.add_fault(
                OUTBOX,
                method="POST",
                status=401,
                when="after",
                body={
                    "RequestError": {
                        "PolicyException": {
                            "MessageId": "POL0001",
                            "Text": "A policy error occurred. %1",
                            "Variables": "UnAuthorized Request",
                        }
                    }
                },
            )
        else:
            box.expire_tokens()
    else:
        box.add_fault(**_fault_kwargs(cell, status_path))

    command = {
        "send": f"!sms send {TO} page for {cell.id}",
        "status": f"!sms status {status_path.rsplit('/', 1)[1]}",
        "inbox": f"!sms inbox {REG}",
    }[cell.op]
    started = time.monotonic()
    try:
        answer = bot.ask(command, timeout=60)
    finally:
        seconds = time.monotonic() - started
        if cell.fault.special == "refused":
            assert bot.configure(matrix.config) == "Plugin configuration done."
        box.clear_faults()
    if "delay" in cell.fault.kwargs:
        # requests the client gave up on are still processed by the carrier after the delay
        time.sleep(cell.fault.kwargs["delay"] + 0.3)
    sends = len(matrix.sends()) - sends_before

    # an inbound message caught by the fault is posted once the carrier recovers
    posted = None
    if cell.op == "inbox":
        if len(bot.posts_containing(marker)) == 0:
            bot.ask(f"!sms inbox {REG}", timeout=60)
        posted = len(bot.posts_containing(marker))

    if cell.op == "send" and answer.startswith("Sent to"):
        outcome = "success"
    elif cell.op == "status" and answer.startswith("Message SMS"):
        outcome = "success"
    elif cell.op == "inbox" and answer.startswith("Inbox: 1 message arrived") and ";" not in answer:
        outcome = "success"
    elif "may or may not have gone out" in answer or "do not send it again" in answer:
        outcome = "uncertain"
    else:
        outcome = "refused"
    reliakit.FIGURES.setdefault("fault_matrix", {})[cell.id] = {
        "op": cell.op,
        "fault": cell.fault.name,
        "when": cell.when,
        "count": cell.count,
        "outcome": outcome,
        "answer": answer,
        "sends": sends,
        "posted": posted,
        "tokenRequests": box.state()["tokenRequests"] - tokens_before,
        "seconds": round(seconds, 3),
    }

    assert one_clear_line(answer), answer
    assert unhandled_errors(mark) == []
    if cell.op == "send":
        assert sends <= 1, f"duplicate page: the carrier recorded {sends} sends"
        if answer.startswith("Sent to"):
            assert sends == 1
        carrier_refused_after = cell.when == "after" and cell.fault.name.startswith(("400", "401"))
        if sends == 1 and not carrier_refused_after:
            assert outcome in ("success", "uncertain"), f"taken by the carrier, yet: {answer}"
            # "Not sent" invites a resend: a duplicate page
            assert not answer.startswith("Not sent"), f"taken by the carrier, yet: {answer}"
        if sends == 0:
            assert outcome != "success"
    else:
        assert sends == 0
    if cell.op == "inbox":
        assert posted == 1, f"inbound posted {posted} times"
    # the plugin is healthy after the fault: a plain send goes through
    if cell.fault.special is not None or cell.count > 1:
        after = bot.ask(f"!sms send {TO} after {cell.id}", timeout=30)
        assert after.startswith("Sent to"), after
