"""The carrier API of the spec: OAuth v4 token, SMS v3 send, delivery status and inbox."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from . import recipients
from .replies import Reply, bearer, pol_unauthorized, policy_error, svc_invalid
from .server import Request
from .store import SentMessage

if TYPE_CHECKING:
    from .sandbox import Sandbox

TOKEN_PATH = "/oauth/v4/token"
OUTBOX_PATH = "/sms/v3/messaging/outbox"
INBOX_PATH = "/sms/v3/messaging/inbox"
STATUS_TEMPLATE = OUTBOX_PATH + "/{messageId}"
INBOX_TEMPLATE = INBOX_PATH + "/{registrationId}"
ALLOWED_METHOD = {
    TOKEN_PATH: "POST",
    OUTBOX_PATH: "POST",
    STATUS_TEMPLATE: "GET",
    INBOX_TEMPLATE: "GET",
}
MAX_MESSAGE = 160


def _path_param(path: str, prefix: str) -> str | None:
    """The one path segment after ``prefix/`` (``/outbox/{messageId}``), else None."""
    rest = path[len(prefix) + 1 :] if path.startswith(prefix + "/") else ""
    return unquote(rest) if rest and "/" not in rest else None


def route(req: Request) -> None:
    """Set the request's spec path template and path parameters (template None: no route)."""
    p = req.path
    if p in (TOKEN_PATH, OUTBOX_PATH):
        req.template = p
    elif (message_id := _path_param(p, OUTBOX_PATH)) is not None:
        req.template = STATUS_TEMPLATE
        req.params["messageId"] = message_id
    elif (registration_id := _path_param(p, INBOX_PATH)) is not None:
        req.template = INBOX_TEMPLATE
        req.params["registrationId"] = registration_id


def success_status(req: Request) -> int:
    """The usual success status of the request's operation."""
    return 201 if (req.method, req.template) == ("POST", OUTBOX_PATH) else 200


def process(sb: Sandbox, req: Request) -> Reply:
    """The carrier's answer to a routed request."""
    if req.template is None:
        return svc_invalid("path", 404)
    allowed = ALLOWED_METHOD[req.template]
    if req.method != allowed:
        reply = svc_invalid("method", 405)
        reply.headers.append(("Allow", allowed))
        return reply
    if req.template == TOKEN_PATH:
        return _token(sb, req)
    token = bearer(req.headers)
    if not token or not sb.store.token_valid(token[0]):
        return pol_unauthorized()
    if req.template == OUTBOX_PATH:
        return _send(sb, req)
    if req.template == STATUS_TEMPLATE:
        return _status(sb, req.params["messageId"])
    return _inbox(sb, req.params["registrationId"])


def _token(sb: Sandbox, req: Request) -> Reply:
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return svc_invalid("Content-Type")
    try:
        form = parse_qs(
            req.body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(req.body)
        )
    except (UnicodeDecodeError, ValueError):
        return svc_invalid("body")
    for name in ("grant_type", "client_id", "client_secret"):
        values = form.get(name)
        if not values or len(values) != 1 or not values[0]:
            return svc_invalid(name)
    if form["grant_type"][0] != "client_credentials":
        return svc_invalid("grant_type")
    scope_values = form.get("scope") or ["SMS"]
    if len(scope_values) != 1:
        return svc_invalid("scope")
    scope = scope_values[0].strip() or "SMS"
    if not sb.credentials_match(form["client_id"][0], form["client_secret"][0]):
        return policy_error(
            401, "POL0001", "A policy error occurred. %1", "Invalid client credentials"
        )
    token = secrets.token_urlsafe(32)
    sb.store.add_token(token, time.time() + sb.token_ttl, scope)
    sb.count_token_issued()
    reply = Reply.json(
        200,
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(sb.token_ttl),
            "scope": scope,
        },
        [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
    )
    reply.secrets = (token,)
    return reply


def credentials_match(given: tuple[str, str], expected: tuple[str, str]) -> bool:
    """Constant-time comparison of (client id, client secret) pairs."""
    ok_id = hmac.compare_digest(given[0].encode(), expected[0].encode())
    ok_secret = hmac.compare_digest(given[1].encode(), expected[1].encode())
    return ok_id and ok_secret


def _send(sb: Sandbox, req: Request) -> Reply:
    ctype = (req.content_type or "application/json").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        return svc_invalid("Content-Type")
    try:
        doc = json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return svc_invalid("body")
    outbound = doc.get("outboundSMSRequest") if isinstance(doc, dict) else None
    if not isinstance(outbound, dict):
        return svc_invalid("outboundSMSRequest")
    addresses = recipients.parse_addresses(outbound.get("address"))
    if addresses is None:
        return recipients.malformed_addresses()
    refused = recipients.refusal(addresses, sb.max_recipients)
    if refused is not None:
        return refused
    message = outbound.get("message")
    if not isinstance(message, str) or not 1 <= len(message) <= MAX_MESSAGE:
        return svc_invalid("message")
    sender = outbound.get("senderAddress")
    if sender is not None and not isinstance(sender, str):
        return svc_invalid("senderAddress")
    mid = "SMS" + secrets.token_hex(12)
    sb.store.add_send(SentMessage(mid, addresses, message, sender, time.time()))
    url = f"{sb.base_url}{OUTBOX_PATH}/{mid}"
    return Reply.json(
        201,
        {"outboundSMSResponse": {"messageId": mid, "resourceReference": {"resourceURL": url}}},
        [("Location", url)],
    )


def _status(sb: Sandbox, message_id: str) -> Reply:
    sent = sb.store.get_send(message_id)
    if sent is None:
        return svc_invalid("messageId", 404)
    now = time.time()
    infos = [
        {"address": a, "deliveryStatus": sb.delivery_status(a, sent.created, now)}
        for a in sent.addresses
    ]
    return Reply.json(
        200,
        {
            "deliveryInfoList": {
                "deliveryInfo": infos,
                "resourceURL": f"{sb.base_url}{OUTBOX_PATH}/{message_id}",
            }
        },
    )


def _inbox(sb: Sandbox, registration_id: str) -> Reply:
    raw = sb.take_raw_inbox(registration_id)
    if raw is not None:
        return raw
    if not sb.store.has_registration(registration_id):
        return svc_invalid("registrationId", 404)
    messages, remaining = sb.store.drain_inbound(registration_id, sb.inbox_batch)
    return Reply.json(
        200,
        {
            "inboundSMSMessageList": {
                "inboundSMSMessage": messages,
                "numberOfMessagesInThisBatch": len(messages),
                "resourceURL": f"{sb.base_url}{INBOX_PATH}/{registration_id}",
                "totalNumberOfPendingMessages": remaining,
            }
        },
    )
