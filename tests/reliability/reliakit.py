"""Shared state and helpers of the reliability suite (imported by its conftest and tests)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from botkit import Bot

#: The credentials every test sandbox accepts (the same as tests/conftest.py's fixtures).
TEST_CLIENT_ID = "test-client"
TEST_CLIENT_SECRET = "test-secret-4f1c9a"

#: Figures of the whole session, written to JSON at its end: section -> anything JSON-able.
FIGURES: dict[str, Any] = {}
FIGURES_PATH: Path | None = None
#: Every access token an in-process sandbox issued during the session.
ISSUED_TOKENS: set[str] = set()
#: SHA-256 digests of tokens issued by sandbox subprocesses (they never store the token).
TOKEN_DIGESTS: set[str] = set()
#: Extra text the suite must scan for secrets: (source, line) pairs (chat, subprocess output).
SCANNED_TEXT: list[tuple[str, str]] = []
_SCANNED_LOCK = threading.Lock()

#: What a chat answer must never contain.
FORBIDDEN_IN_ANSWERS = ("Traceback", "Computer says nooo")


class _Capture(logging.Handler):
    """Keeps every record of the session: formatted line, logger, level, exc_info flag."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, int, bool, str]] = []
        self._fmt = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self._fmt.format(record)
        except Exception:  # a broken log call must not break the suite
            text = f"{record.levelname} {record.name}: <unformattable {record.msg!r}>"
        with self._records_lock:
            self.records.append((record.name, record.levelno, bool(record.exc_info), text))

    def mark(self) -> int:
        with self._records_lock:
            return len(self.records)

    def since(self, mark: int) -> list[tuple[str, int, bool, str]]:
        with self._records_lock:
            return self.records[mark:]

    def lines(self) -> list[str]:
        with self._records_lock:
            return [line for *_, text in self.records for line in text.splitlines() or [""]]


CAPTURE = _Capture()


def unhandled_errors(mark: int) -> list[str]:
    """ERROR records with a traceback from errbot or the plugin since ``mark``."""
    found = []
    for name, level, has_exc, text in CAPTURE.since(mark):
        if (
            level >= logging.ERROR
            and has_exc
            and (name.startswith("errbot") or name.startswith("att_sms"))
        ):
            found.append(text.splitlines()[0])
    return found


def remember_text(source: str, text: str) -> None:
    """Keep chat text / subprocess output for the final secret scan."""
    with _SCANNED_LOCK:
        for line in text.splitlines() or [""]:
            SCANNED_TEXT.append((source, line))


def scanned_text() -> list[tuple[str, str]]:
    with _SCANNED_LOCK:
        return list(SCANNED_TEXT)


def one_clear_line(answer: str) -> bool:
    """True for a non-empty answer on one line, without a traceback or errbot's apology."""
    return (
        bool(answer.strip())
        and "\n" not in answer
        and "\r" not in answer
        and not any(bad in answer for bad in FORBIDDEN_IN_ANSWERS)
    )


class RecBot(Bot):
    """botkit's Bot; every reply it pops and every post it records is kept for the scan."""

    def pop(self, timeout: float = 15) -> str:
        answer = super().pop(timeout)
        remember_text("chat reply", answer)
        return answer

    def record(self, msg: Any) -> bool:
        remember_text("chat post", str(msg.body))
        return super().record(msg)


def summary_lines() -> list[str]:
    """A short human summary of FIGURES."""
    lines: list[str] = []
    matrix = FIGURES.get("fault_matrix", {})
    if matrix:
        outcomes: dict[str, int] = {}
        for cell in matrix.values():
            outcomes[cell["outcome"]] = outcomes.get(cell["outcome"], 0) + 1
        lines.append(f"fault matrix: {len(matrix)} cells, outcomes {outcomes}")
        for cell_id, cell in sorted(matrix.items()):
            lines.append(
                f"  {cell_id:<40} {cell['outcome']:<11} sends={cell['sends']} "
                f"{cell['seconds']:.2f}s  {cell['answer'][:90]}"
            )
    for key in ("crash_restart", "loss_window", "concurrency", "fuzz", "secret_scan"):
        if key in FIGURES:
            lines.append(f"{key}: {FIGURES[key]}")
    return lines
