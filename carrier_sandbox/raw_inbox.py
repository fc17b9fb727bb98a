"""Raw inbox answers: exact bodies in the historical service's looser shapes.

The real carrier answered inbox reads in shapes the spec does not describe (PascalCase
``InboundSmsMessageList``, counts as strings, items without ``MessageId``, JSON under
``text/plain``...). A queued raw answer is what the registration's next inbox read gets,
once (the real read is destructive); the stored inbound messages stay pending. Raw
answers are off-spec on purpose, so they are never checked against the spec.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from .replies import Reply

DEFAULT_CONTENT_TYPE = "application/json"
RAW_FIELDS = frozenset({"registrationId", "status", "contentType", "body"})


@dataclass(frozen=True)
class RawAnswer:
    """One queued inbox answer."""

    status: int
    body: bytes
    content_type: str | None

    def reply(self) -> Reply:
        """The answer, marked as not to be validated against the spec."""
        return Reply(self.status, self.body, self.content_type, validate=False)


def raw_answer(body: Any, content_type: str | None, status: int) -> RawAnswer:
    """A raw answer: a string body goes out as-is (UTF-8), anything else as JSON."""
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("status must be an integer HTTP status (100-599)")
    if content_type is not None and (not isinstance(content_type, str) or not content_type):
        raise ValueError("contentType must be a non-empty string or null")
    if isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return RawAnswer(status, data, content_type)


def raw_answer_from_json(doc: dict[str, Any]) -> tuple[str, RawAnswer]:
    """(registrationId, answer) from the body of ``POST /sandbox/inbound-raw``."""
    unknown = set(doc) - RAW_FIELDS
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    registration_id = doc.get("registrationId")
    if not isinstance(registration_id, str) or not registration_id:
        raise ValueError("registrationId must be a non-empty string")
    if "body" not in doc:
        raise ValueError("body is required (any JSON value, or a string sent as-is)")
    answer = raw_answer(
        doc["body"], doc.get("contentType", DEFAULT_CONTENT_TYPE), doc.get("status", 200)
    )
    return registration_id, answer


class RawInbox:
    """Queued raw answers per registration; callers hold the sandbox lock around every call."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[RawAnswer]] = {}

    def add(self, registration_id: str, answer: RawAnswer) -> None:
        """Queue an answer after the ones already queued for that registration."""
        self._queues.setdefault(registration_id, deque()).append(answer)

    def take(self, registration_id: str) -> RawAnswer | None:
        """The registration's oldest queued answer, removed, or None."""
        queue = self._queues.get(registration_id)
        if not queue:
            return None
        answer = queue.popleft()
        if not queue:
            del self._queues[registration_id]
        return answer

    def pending(self) -> dict[str, int]:
        """Queued answers per registration."""
        return {reg: len(q) for reg, q in sorted(self._queues.items())}

    def clear(self) -> None:
        """Drop every queued answer."""
        self._queues.clear()
