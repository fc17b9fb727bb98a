"""Control endpoints under ``/sandbox/``: inject inbound, faults, token expiry, state.

Outside the spec's paths, unauthenticated, JSON in and out; not counted in the request
counters and never subject to faults. Each one calls the Python API of ``Sandbox``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .faults import Fault
from .raw_inbox import raw_answer_from_json
from .replies import Reply
from .server import Request

if TYPE_CHECKING:
    from .sandbox import Sandbox

#: Every control endpoint and the methods it takes.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/sandbox/state": ("GET",),
    "/sandbox/expire-tokens": ("POST",),
    "/sandbox/reset": ("POST",),
    "/sandbox/faults": ("POST", "DELETE"),
    "/sandbox/inbound": ("POST",),
    "/sandbox/inbound-raw": ("POST",),
    "/sandbox/registrations": ("POST",),
}


def is_control(path: str) -> bool:
    """Whether the path belongs to the control endpoints."""
    return path == "/sandbox" or path.startswith("/sandbox/")


def control(sb: Sandbox, req: Request) -> Reply:
    """The answer of a control endpoint (400 with ``{"error"}`` for a bad body)."""
    path = req.path.rstrip("/")
    methods = ENDPOINTS.get(path)
    if methods is None:
        return Reply.json(404, {"error": f"no control endpoint {path}"})
    if req.method not in methods:
        return Reply.json(405, {"error": f"method {req.method} not allowed on {path}"})
    try:
        return _dispatch(sb, req.method, path, req.body)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        return Reply.json(400, {"error": str(exc)})


def _json_object(body: bytes) -> dict[str, Any]:
    doc = json.loads(body.decode("utf-8") or "null")
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    return doc


def _unchecked(doc: dict[str, Any], key: str) -> Any:
    """A JSON field, of any type or None: the Sandbox API checks each value it is given."""
    return doc.get(key)


def _dispatch(sb: Sandbox, method: str, path: str, body: bytes) -> Reply:
    if path == "/sandbox/state":
        return Reply.json(200, sb.state())
    if path == "/sandbox/expire-tokens":
        sb.expire_tokens()
        return Reply.json(200, {"expired": True})
    if path == "/sandbox/reset":
        sb.reset()
        return Reply.json(200, {"reset": True})
    if path == "/sandbox/faults" and method == "DELETE":
        sb.clear_faults()
        return Reply.json(200, {"faultsPending": 0})
    doc = _json_object(body)
    if path == "/sandbox/inbound":
        mid = sb.inject_inbound(
            _unchecked(doc, "registrationId"),
            _unchecked(doc, "senderAddress"),
            _unchecked(doc, "message"),
            destination_address=doc.get("destinationAddress"),
            date_time=doc.get("dateTime"),
            message_id=doc.get("messageId"),
        )
        return Reply.json(201, {"messageId": mid})
    if path == "/sandbox/inbound-raw":
        registration_id, answer = raw_answer_from_json(doc)
        queued = sb.queue_raw_inbox(registration_id, answer)
        return Reply.json(201, {"registrationId": registration_id, "rawPending": queued})
    if path == "/sandbox/registrations":
        sb.add_registration(_unchecked(doc, "registrationId"))
        return Reply.json(201, {"registrationId": doc["registrationId"]})
    pending = sb.queue_fault(Fault.from_json(doc))
    return Reply.json(201, {"faultsPending": pending})
