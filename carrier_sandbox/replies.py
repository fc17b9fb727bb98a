"""HTTP answers of the carrier sandbox before they are written, and the carrier's errors.

Every error has the spec's ``RequestError`` shape: ``ServiceException`` or
``PolicyException`` with ``MessageId``, ``Text`` (``%1`` placeholders) and ``Variables``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """An HTTP answer before it is written."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    secrets: tuple[str, ...] = ()  # values that must never appear in recorded violations
    validate: bool = True  # False for answers that are off-spec on purpose (raw inbox)

    @classmethod
    def json(cls, status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
        """A JSON reply."""
        return cls(
            status,
            json.dumps(data, ensure_ascii=False).encode("utf-8"),
            "application/json",
            headers or [],
        )


def error_body(kind: str, message_id: str, text: str, variables: str) -> dict[str, Any]:
    """A ``RequestError`` document (kind is ServiceException or PolicyException)."""
    return {"RequestError": {kind: {"MessageId": message_id, "Text": text, "Variables": variables}}}


def service_error(status: int, message_id: str, text: str, variables: str) -> Reply:
    """A ``ServiceException`` answer."""
    return Reply.json(status, error_body("ServiceException", message_id, text, variables))


def policy_error(status: int, message_id: str, text: str, variables: str) -> Reply:
    """A ``PolicyException`` answer."""
    return Reply.json(status, error_body("PolicyException", message_id, text, variables))


def svc_invalid(part: str, status: int = 400) -> Reply:
    """SVC0002: invalid input value for a message part."""
    return service_error(status, "SVC0002", "Invalid input value for message part %1", part)


def pol_unauthorized(reason: str = "UnAuthorized Request") -> Reply:
    """POL0001: 401 with a bearer challenge."""
    reply = policy_error(401, "POL0001", "A policy error occurred. %1", reason)
    reply.headers.append(("WWW-Authenticate", 'Bearer realm="att-sms-sandbox"'))
    return reply


def svc_generic(status: int) -> Reply:
    """SVC0001: generic service error carrying the HTTP status (fault answers, crashes)."""
    return service_error(
        status, "SVC0001", "A service error has occurred. Error code is %1", str(status)
    )


def bearer(headers: dict[str, str]) -> tuple[str, ...]:
    """The bearer token of a request, if any (to keep it out of recorded text)."""
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = auth.partition(" ")
    return (token.strip(),) if scheme.lower() == "bearer" and token.strip() else ()
