"""Scripted misbehaviours: what a fault matches and the answer it puts in place of the real one.

A fault applies to the next ``count`` requests whose path starts with ``path`` (and
whose method is ``method``, when given). ``when="before"``: the request is not
processed; ``"after"``: it is processed, then the fault replaces the answer. The
actions are ``respond``, ``drop`` (no answer), ``reset`` (half an answer, then RST) and
``malformed`` (a body that is not JSON). See docs/SANDBOX.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .replies import Reply, svc_generic

FAULT_ACTIONS = ("respond", "drop", "reset", "malformed")
FAULT_WHENS = ("before", "after")
FAULT_FIELDS = frozenset(
    {
        "path",
        "method",
        "count",
        "status",
        "body",
        "headers",
        "contentType",
        "delay",
        "action",
        "when",
    }
)
_NOT_JSON = b'{"unterminated": <html>not json'


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Fault:
    """A scripted misbehaviour for the next ``count`` requests matching path/method."""

    path: str
    method: str | None = None
    count: int = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    action: str = "respond"
    when: str = "before"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError("path must be a string starting with '/'")
        if self.path.startswith("/sandbox"):
            raise ValueError("faults cannot target the /sandbox control endpoints")
        if self.method is not None:
            if not isinstance(self.method, str) or not self.method:
                raise ValueError("method must be a non-empty string")
            self.method = self.method.upper()
        if not _is_int(self.count) or self.count < 1:
            raise ValueError("count must be an integer >= 1")
        if self.status is not None and (not _is_int(self.status) or not 100 <= self.status <= 599):
            raise ValueError("status must be an integer HTTP status (100-599)")
        if (
            isinstance(self.delay, bool)
            or not isinstance(self.delay, (int, float))
            or self.delay < 0
        ):
            raise ValueError("delay must be a number >= 0")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(FAULT_ACTIONS)}")
        if self.when not in FAULT_WHENS:
            raise ValueError(f"when must be one of {', '.join(FAULT_WHENS)}")
        if not isinstance(self.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ValueError("headers must be an object of string values")
        if self.content_type is not None and not isinstance(self.content_type, str):
            raise ValueError("contentType must be a string")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fault:
        """A fault from the body of ``POST /sandbox/faults`` (ValueError when invalid)."""
        unknown = set(doc) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if "path" not in doc:
            raise ValueError("path is required")
        return cls(
            doc["path"],
            doc.get("method"),
            doc.get("count", 1),
            doc.get("status"),
            doc.get("body"),
            doc.get("headers") or {},
            doc.get("contentType"),
            doc.get("delay", 0.0),
            doc.get("action", "respond"),
            doc.get("when", "before"),
        )

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request."""
        return path.startswith(self.path) and (self.method is None or self.method == method)

    @property
    def passes_through(self) -> bool:
        """Whether the real answer goes out (maybe late, with extra headers)."""
        return self.action == "respond" and self.status is None

    def body_bytes(self) -> tuple[bytes | None, str | None]:
        """The configured body and its default content type (None when no body was set)."""
        if self.body is None:
            return None, None
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), "application/json"


def fault_reply(fault: Fault, real: Reply | None, success_status: int) -> Reply:
    """The answer a ``respond``, ``malformed`` or ``reset`` fault writes.

    ``real`` is the processed answer for ``when="after"`` faults (None for "before");
    ``success_status`` is the operation's usual success status.
    """
    fbody, fctype = fault.body_bytes()
    if fault.action == "respond":
        assert fault.status is not None
        if fbody is not None:
            reply = Reply(fault.status, fbody, fctype)
        elif fault.status >= 400:
            reply = svc_generic(fault.status)
        else:
            reply = Reply(fault.status, b"", None)
    elif fault.action == "malformed":
        status = fault.status or (real.status if real else success_status)
        reply = Reply(status, fbody if fbody is not None else _NOT_JSON, "application/json")
    elif real is not None and fault.status is None and fbody is None:
        reply = real  # reset: the real answer, cut in half
    else:
        status = fault.status or (real.status if real else success_status)
        padding = {
            "RequestError": {"ServiceException": {"MessageId": "SVC0001", "Text": "x" * 200}}
        }
        reply = Reply(status, fbody if fbody is not None else json.dumps(padding).encode(), fctype)
    if fault.content_type is not None:
        reply.content_type = fault.content_type
    reply.headers.extend(fault.headers.items())
    return reply


class FaultQueue:
    """The pending faults; callers hold the sandbox lock around every call."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault after the pending ones."""
        self._faults.append(fault)

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching the request, its count used by one."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> int:
        """How many requests the pending faults will still apply to."""
        return sum(f.count for f in self._faults)
