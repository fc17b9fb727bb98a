"""The Slack stand-in's Web API: its methods, the HTTP handler and the workspace's constants.

Part of the test scaffolding of ``slack_standin`` (which owns the state these read).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from slack_standin import SlackStandIn

TEAM_ID = "T0STANDIN"
TEAM_DOMAIN = "standin"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0BOT0001"
BOT_NAME = "attsms"
APP_ID = "A0STANDIN"
#: The bot token's scopes: exactly docs/SLACK.md's manifest. Every Web API method and every
#: event checks the scope it needs (Slack answers ``missing_scope``), so a suite that passes
#: shows these scopes are enough.
BOT_SCOPES = (
    "channels:history,channels:read,chat:write,groups:history,groups:read,im:history,im:read,"
    "im:write,mpim:read,team:read,users:read"
)
#: Scope a kind of conversation needs to be read (conversations.info/list) or heard (events).
READ_SCOPE = {
    "public_channel": "channels:read",
    "private_channel": "groups:read",
    "im": "im:read",
    "mpim": "mpim:read",
}
HISTORY_SCOPE = {
    "public_channel": "channels:history",
    "private_channel": "groups:history",
    "im": "im:history",
}


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def missing_scope(standin: SlackStandIn, method: str, args: dict[str, Any]) -> str | None:
    """The scope ``method`` needs here that the bot token lacks (None: allowed)."""
    needed = {
        "chat.postMessage": ["chat:write"],
        "conversations.open": ["im:write"],
        "conversations.join": ["channels:join"],
        "users.info": ["users:read"],
        "users.list": ["users:read"],
        "bots.info": ["users:read"],
        "team.info": ["team:read"],
    }.get(method, [])
    if method == "conversations.list":
        kinds = str(args.get("types") or "public_channel").split(",")
        needed = [READ_SCOPE.get(kind, "unknown") for kind in kinds]
    elif method == "conversations.info":
        with standin._lock:
            channel = standin.channels.get(str(args.get("channel", "")))
        needed = [READ_SCOPE[channel.kind]] if channel else []
    return next((scope for scope in needed if scope not in standin.scopes), None)


def channel_doc(channel: Any) -> dict[str, Any]:
    """A conversation as conversations.info/list describe it."""
    if channel.im_user is not None:
        return {"id": channel.id, "is_im": True, "user": channel.im_user, "is_open": True}
    return {
        "id": channel.id,
        "name": channel.name,
        "is_channel": not channel.private,
        "is_group": channel.private,
        "is_im": False,
        "is_mpim": False,
        "is_private": channel.private,
        "is_archived": channel.archived,
        "is_member": channel.member,
        "topic": {"value": ""},
        "purpose": {"value": ""},
    }


def _auth_test(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    body = {
        "ok": True,
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": "Stand-in",
        "user": BOT_NAME,
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }
    return Reply(200, body, {"x-oauth-scopes": ",".join(sorted(standin.scopes))})


def _users_info(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    user = standin.users.get(str(args.get("user", "")))
    if user is None:
        return Reply(200, {"ok": False, "error": "user_not_found"})
    return Reply(200, {"ok": True, "user": user})


def _users_list(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    members = list(standin.users.values())
    return Reply(200, {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}})


def _team_info(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    return Reply(
        200, {"ok": True, "team": {"id": TEAM_ID, "name": "Stand-in", "domain": TEAM_DOMAIN}}
    )


def _bots_info(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    bot = {"id": args.get("bot"), "name": BOT_NAME, "app_id": APP_ID, "user_id": BOT_USER_ID}
    return Reply(200, {"ok": True, "bot": bot})


def _conversations_info(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    channel = standin.channels.get(str(args.get("channel", "")))
    if channel is None:
        return Reply(200, {"ok": False, "error": "channel_not_found"})
    return Reply(200, {"ok": True, "channel": channel_doc(channel)})


def _conversations_list(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    exclude_archived = str(args.get("exclude_archived", "0")).lower() in ("1", "true")
    types = set(str(args.get("types") or "public_channel").split(","))
    listed = []
    for channel in standin.channels.values():
        if channel.kind not in types or (exclude_archived and channel.archived):
            continue
        listed.append(channel_doc(channel))
    return Reply(200, {"ok": True, "channels": listed, "response_metadata": {"next_cursor": ""}})


def _conversations_open(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    user = str(args.get("users", "")).split(",")[0]
    if user not in standin.users:
        return Reply(200, {"ok": False, "error": "user_not_found"})
    return Reply(200, {"ok": True, "channel": {"id": standin.im_channel(user)}})


def _conversations_join(standin: SlackStandIn, args: dict[str, Any]) -> Reply:
    channel = standin.channels.get(str(args.get("channel", "")))
    if channel is None:
        return Reply(200, {"ok": False, "error": "channel_not_found"})
    channel.member = True  # only reached with channels:join, which the manifest leaves out
    return Reply(200, {"ok": True, "channel": channel_doc(channel)})


METHODS: dict[str, Callable[[SlackStandIn, dict[str, Any]], Reply]] = {
    "auth.test": _auth_test,
    "users.info": _users_info,
    "users.list": _users_list,
    "team.info": _team_info,
    "bots.info": _bots_info,
    "conversations.info": _conversations_info,
    "conversations.list": _conversations_list,
    "conversations.open": _conversations_open,
    "conversations.join": _conversations_join,
}


def handler_for(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            if not parts.path.startswith("/api/"):
                self._answer(Reply(404, {"ok": False, "error": "not_found"}))
                return
            args = _arguments(parts.query, self._body(), self.headers.get("Content-Type", ""))
            token = _bearer(self.headers.get("Authorization")) or args.pop("token", None)
            args.pop("token", None)
            self._answer(standin.handle(parts.path[len("/api/") :], token, args))

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, reply: Reply) -> None:
            data = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the caller went away (a killed bot)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler


def _arguments(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
    if body and "json" in content_type:
        doc = json.loads(body.decode("utf-8"))
        if isinstance(doc, dict):
            args.update(doc)
    elif body:
        args.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()})
    return args


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_NAME",
    "BOT_SCOPES",
    "BOT_USER_ID",
    "HISTORY_SCOPE",
    "METHODS",
    "READ_SCOPE",
    "Reply",
    "TEAM_ID",
    "handler_for",
]
