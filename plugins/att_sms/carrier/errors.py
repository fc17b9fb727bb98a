"""Exception types raised by the att_sms package.

Every error the plugin can meet derives from :class:`AttSmsError`, so a caller
can catch that one type and show ``str(error)`` to a user.  No message built
here ever carries the client secret or an access token: the client only hands
in carrier texts after redacting them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .fields import field_of

__all__ = [
    "AttSmsError",
    "AuthenticationError",
    "CarrierError",
    "CarrierUnavailable",
    "NotFoundError",
    "ProtocolError",
    "SendUncertain",
    "carrier_error_details",
    "fill_variables",
]

#: The two exception kinds the carrier nests under ``RequestError``.
EXCEPTION_KINDS = ("ServiceException", "PolicyException")

_PLACEHOLDER = re.compile(r"%(\d+)")


class AttSmsError(Exception):
    """Base class of every error raised by this package."""


class CarrierError(AttSmsError):
    """The carrier answered with an error.

    ``text`` is the carrier's text with its ``%1``, ``%2``... placeholders filled,
    ``message_id`` its code (``SVC0002``, ``POL0001``...), ``kind`` either
    ``"ServiceException"``, ``"PolicyException"`` or ``None`` and ``status`` the
    HTTP status code.
    """

    def __init__(
        self,
        text: str,
        *,
        status: int | None = None,
        message_id: str | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.message_id = message_id
        self.kind = kind

    def __str__(self) -> str:
        text = f"{self.message_id}: {self.text}" if self.message_id else self.text
        if self.status is not None and f"HTTP {self.status}" not in text:
            text = f"{text} (HTTP {self.status})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.text!r}, status={self.status!r}, "
            f"message_id={self.message_id!r}, kind={self.kind!r})"
        )


class AuthenticationError(CarrierError):
    """The token was refused, or an API call got 401 even after one refresh."""


class NotFoundError(CarrierError):
    """The carrier answered 404 (unknown message id or registration id)."""


class CarrierUnavailable(AttSmsError):
    """Network error, timeout, or 5xx/429 after the allowed retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SendUncertain(CarrierUnavailable):
    """A send whose outcome is unknown: the carrier may have taken it.

    It is never retried automatically; check the delivery status (or the
    recipient) before sending it again.
    """


class ProtocolError(AttSmsError):
    """The carrier's answer could not be read (bad JSON, content type, keys)."""


def fill_variables(text: str, variables: Any) -> str:
    """Replace ``%1``, ``%2``... in *text* with the carrier's *variables*.

    *variables* is a comma-separated string, a list, or ``None``.  A placeholder
    without a matching variable is left as it is.
    """
    values = _variable_list(variables)

    def replace(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        if 0 <= index < len(values):
            return values[index]
        return match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def _variable_list(variables: Any) -> list[str]:
    """Return the carrier's ``Variables`` as a list of strings."""
    if variables is None:
        return []
    if isinstance(variables, str):
        return [part.strip() for part in variables.split(",")] if variables else []
    if isinstance(variables, (list, tuple)):
        return [str(item).strip() for item in variables]
    return [str(variables)]


def carrier_error_details(body: Any) -> tuple[str, str | None, str] | None:
    """Read ``RequestError.ServiceException`` / ``PolicyException`` from *body*.

    Returns ``(kind, message_id, filled_text)``, or ``None`` when *body* is not a
    carrier error document.  Keys are matched without regard to case.
    """
    request_error = field_of(body, "RequestError")
    if not isinstance(request_error, Mapping):
        return None
    for kind in EXCEPTION_KINDS:
        exception = field_of(request_error, kind)
        if isinstance(exception, Mapping):
            return _exception_details(kind, exception)
    return None


def _exception_details(kind: str, exception: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """Return ``(kind, message_id, filled_text)`` for one exception object."""
    message_id = field_of(exception, "MessageId")
    text = field_of(exception, "Text")
    variables = field_of(exception, "Variables")
    text = fill_variables(str(text), variables) if text is not None else "carrier error"
    return kind, (str(message_id) if message_id else None), text


