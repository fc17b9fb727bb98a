"""Reading the carrier's answers: the result types and the readers that build them.

:class:`SendResult`, :class:`DeliveryInfo`, :class:`InboundMessage` and
:class:`InboundBatch` are what :class:`~att_sms.carrier.client.AttSmsClient` returns; the
``_read_*`` functions build them (and the access token) from a JSON body, and
raise :class:`~att_sms.carrier.errors.ProtocolError` for an answer that cannot be used.

Responses are read in the spec's lowerCamel keys and in the historical
production service's PascalCase keys; keys are matched without regard to case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from .errors import ProtocolError
from .fields import field_of

__all__ = [
    "DeliveryInfo",
    "InboundBatch",
    "InboundMessage",
    "SendResult",
]

log = logging.getLogger(__name__)

#: Longest description of a skipped inbound item.
MAX_SKIPPED_TEXT = 120


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """The carrier's answer to a send."""

    message_id: str
    resource_url: str | None
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class DeliveryInfo:
    """Delivery status of a message for one recipient."""

    address: str
    status: str


@dataclass(frozen=True)
class InboundMessage:
    """One message taken from the carrier's inbound box."""

    message_id: str
    message: str
    sender_address: str
    destination_address: str | None
    date_time: str | None


@dataclass(frozen=True)
class InboundBatch:
    """One batch of inbound messages; ``pending`` is what the carrier still holds.

    ``skipped`` describes the items of the answer that could not be used (no text
    and no sender, not an object...), for the caller to log; it holds no message text.
    """

    messages: list[InboundMessage]
    pending: int | None
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Small helpers: reading bodies
# --------------------------------------------------------------------------


def _is_json_type(content_type: str) -> bool:
    """True for ``application/json`` and ``application/*+json`` media types."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json":
        return True
    return media.startswith("application/") and media.endswith("+json")


def json_or_none(response: requests.Response) -> Any:
    """The body as JSON whatever its content type, or ``None``."""
    try:
        return response.json()
    except ValueError:
        return None


def json_body(response: requests.Response, describe: Callable[[str], str]) -> Any:
    """The JSON body of a 2xx *response*, or :class:`ProtocolError`.

    A body that parses as JSON is read whatever its Content-Type: carriers have
    served JSON as ``text/plain``, ``text/json`` or with no type at all.
    """
    content_type = response.headers.get("Content-Type", "")
    try:
        body = response.json()
    except ValueError:
        status = response.status_code
        if _is_json_type(content_type):
            reason = f"malformed JSON in an HTTP {status} answer"
        else:
            shown = content_type.split(";")[0].strip() or "no content type"
            reason = f"expected JSON, got {shown} in an HTTP {status} answer"
        raise ProtocolError(describe(reason)) from None
    if not _is_json_type(content_type):
        shown = content_type.split(";")[0].strip() or "no content type"
        log.debug("read a JSON answer served as %s", shown)
    return body


def oauth_error_text(body: Any) -> str | None:
    """``error_description`` (or ``error``) of an OAuth error document."""
    description = field_of(body, "error_description")
    code = field_of(body, "error")
    if isinstance(description, str) and description:
        return f"{code}: {description}" if isinstance(code, str) and code else description
    return code if isinstance(code, str) and code else None


def _as_list(value: Any) -> list[Any]:
    """A list of objects: a single object becomes one item, nothing is empty."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _text(mapping: Any, name: str, what: str) -> str:
    """A required scalar field as a string, or :class:`ProtocolError`."""
    value = _optional_text(mapping, name)
    if not value:
        raise ProtocolError(f"{what}: the carrier's answer has no {name}")
    return value


def _optional_text(mapping: Any, name: str) -> str | None:
    """An optional scalar field as a string."""
    value = field_of(mapping, name)
    if value is None or isinstance(value, (Mapping, list, bool)):
        return None
    return str(value)


def optional_int(value: Any) -> int | None:
    """An integer given as a number or a numeric string; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def send_unreadable(reason: str) -> str:
    """Message for an accepted send whose answer cannot be read."""
    return (
        f"the carrier accepted the message but its answer could not be read ({reason}); "
        "the message id is unknown: do not send it again"
    )


def read_send_result(body: Any, recipients: tuple[str, ...], status: int) -> SendResult:
    """:class:`SendResult` from ``outboundSMSResponse`` / ``OutboundSMSResponse``."""
    outbound = field_of(body, "outboundSMSResponse")
    message_id = _optional_text(outbound, "messageId")
    if not message_id:
        raise ProtocolError(send_unreadable(f"no messageId in an HTTP {status} answer"))
    reference = field_of(outbound, "resourceReference")
    resource_url = _optional_text(reference, "resourceURL")
    return SendResult(message_id=message_id, resource_url=resource_url, addresses=recipients)


def read_delivery_infos(body: Any) -> list[DeliveryInfo]:
    """Delivery infos from ``deliveryInfoList`` / ``DeliveryInfoList``."""
    if not isinstance(body, Mapping):
        raise ProtocolError("delivery status: the carrier's answer is not a JSON object")
    info_list = field_of(body, "deliveryInfoList")
    if isinstance(info_list, list):
        items = info_list
    else:
        items = _as_list(field_of(info_list, "deliveryInfo"))
    return [_read_delivery_info(item) for item in items]


def _read_delivery_info(item: Any) -> DeliveryInfo:
    """One :class:`DeliveryInfo`."""
    what = "delivery status"
    return DeliveryInfo(
        address=_text(item, "address", what),
        status=_text(item, "deliveryStatus", what),
    )


def read_inbound_batch(body: Any) -> InboundBatch:
    """Messages and pending count from ``inboundSMSMessageList``, item by item.

    The inbox read is destructive: an item that cannot be used is described in
    ``skipped`` and never costs the rest of the batch.
    """
    if not isinstance(body, Mapping):
        raise ProtocolError("inbound messages: the carrier's answer is not a JSON object")
    box = field_of(body, "inboundSMSMessageList")
    container = box if isinstance(box, Mapping) else body
    skipped: list[str] = []
    if isinstance(box, list):
        items = box
    else:
        items = _as_list(field_of(container, "inboundSMSMessage"))
        if box is not None and not isinstance(box, Mapping):
            skipped.append(f"the message list is a {_kind(box)}, not an object or a list")
    messages: list[InboundMessage] = []
    for index, item in enumerate(items, start=1):
        message = _read_inbound_message(item)
        if isinstance(message, InboundMessage):
            messages.append(message)
        else:
            skipped.append(f"item {index}: {message}")
    stated = optional_int(field_of(container, "numberOfMessagesInThisBatch"))
    if stated is not None and stated > len(items):
        skipped.append(f"the carrier counted {stated} messages in this batch but sent {len(items)}")
    pending = field_of(container, "totalNumberOfPendingMessages")
    if pending is None:
        pending = field_of(body, "totalNumberOfPendingMessages")
    return InboundBatch(messages=messages, pending=optional_int(pending), skipped=skipped)


def _read_inbound_message(item: Any) -> InboundMessage | str:
    """One :class:`InboundMessage`, or why the item cannot be used (no message text in it).

    An item is kept when it has a text or a sender; a missing id is ``""`` (the
    caller then keys the message by its content).
    """
    if not isinstance(item, Mapping):
        return f"a {_kind(item)}, not an object"
    text = _optional_text(item, "message")
    sender = (_optional_text(item, "senderAddress") or "").strip()
    if not text and not sender:
        return _cut(f"no message text and no sender (fields: {_field_names(item)})")
    return InboundMessage(
        message_id=(_optional_text(item, "messageId") or "").strip(),
        message=text or "",
        sender_address=sender,
        destination_address=_optional_text(item, "destinationAddress"),
        date_time=_optional_text(item, "dateTime"),
    )


def _kind(value: Any) -> str:
    """A JSON type name for *value*, for a description."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else type(value).__name__


def _field_names(item: Mapping[Any, Any], limit: int = 6) -> str:
    """The first few key names of *item* (carrier field names, never values)."""
    names = [str(key)[:30] for key in list(item)[:limit]]
    more = len(item) - len(names)
    shown = ", ".join(names) or "none"
    return f"{shown} and {more} more" if more > 0 else shown


def _cut(text: str) -> str:
    """*text* on one line, at most ``MAX_SKIPPED_TEXT`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_SKIPPED_TEXT else text[: MAX_SKIPPED_TEXT - 3] + "..."
