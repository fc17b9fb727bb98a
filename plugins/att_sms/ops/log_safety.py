"""Log lines built from outside input cannot forge other lines or drive a terminal.

A carrier's error text, an SMS, a chat room name or a command may hold line breaks, ESC
sequences or bidi overrides; written raw, they fake log lines or rewrite a terminal.
:class:`EscapeControls` turns each such character of a record's arguments (and of a
message built without arguments, and of an exception's text) into a visible escape
(``\\n``, ``\\x1b``, ``\\u202e``) before any handler formats it. :func:`install` puts it on
every logger the plugin writes to: ``errbot.plugins.AttSms`` (errbot's ``self.log`` and the
plugin's modules) and the package's module loggers. (The metrics server's request log is
escaped where it is written.)
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

#: Every logger of the plugin but the metrics server's (whose request log escapes itself).
PLUGIN_LOGGERS = (
    "errbot.plugins.AttSms",
    "att_sms",
    "att_sms.carrier.answers",
    "att_sms.carrier.client",
    "att_sms.inbound.fetcher",
    "att_sms.ops.metrics",
    "att_sms.carrier.transport",
    "att_sms.store",
    "att_sms.store.legacy",
)

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with control, line-separator and bidi characters as visible escapes."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return escape(value if isinstance(value, str) else str(value))


def _exception_text(exc_info: Any) -> str:
    """A traceback whose frames keep their lines; each exception's own text is escaped."""
    parts = []
    for chunk in traceback.format_exception(*exc_info):
        if chunk.startswith(("Traceback (", "  File ", "\nDuring handling", "\nThe above")):
            parts.append(chunk)
        else:
            parts.append(escape(chunk.rstrip("\n")) + "\n")
    return "".join(parts).rstrip("\n")


class EscapeControls(logging.Filter):
    """Escape outside input in a record; the format string (the plugin's own) stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            if isinstance(record.args, dict):
                record.args = {k: _safe(v) for k, v in record.args.items()}
            else:
                record.args = tuple(_safe(arg) for arg in record.args)
        elif not isinstance(record.msg, str) or _UNSAFE.search(record.msg):
            record.msg = _safe(record.msg)
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = _exception_text(record.exc_info)
        return True


def install(names: tuple[str, ...] = PLUGIN_LOGGERS) -> None:
    """Put one :class:`EscapeControls` on each named logger (again: no second one)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, EscapeControls) for f in logger.filters):
            logger.addFilter(EscapeControls())
