"""A local stand-in of Slack for the tests: the Web API over HTTP and Socket Mode over a websocket.

Test scaffolding only. It implements what errbot's slackv3 backend (0.3.2, slack_sdk) and the
plugin call, on free loopback ports:

* Web API (``POST|GET /api/<method>``, form, query or JSON arguments, ``Bearer`` token):
  ``auth.test`` (with the ``x-oauth-scopes`` header the backend reads to pick Socket Mode),
  ``users.info``, ``users.list``, ``team.info``, ``bots.info``, ``conversations.info``,
  ``conversations.list``, ``conversations.open``, ``conversations.join``, ``chat.postMessage``
  and ``apps.connections.open`` (app token; returns the ``ws://`` URL of the Socket Mode
  server). Each checks the bot token's scopes (``missing_scope``); by default the token has
  exactly the manifest's scopes in docs/SLACK.md (no ``channels:join``).
* Socket Mode: ``hello`` on connect, ``events_api`` envelopes with ``message`` events, acks.

Every ``chat.postMessage`` is recorded (accepted or not). Tests can say: the bot is not in a
channel (``not_in_channel``), the channel is archived (``is_archived``), answer 429 with
``Retry-After`` for the next K posts, stall the next post to a channel (never answered until
released), and invite the bot (a member from then on).

Threads: a post with ``thread_ts`` naming a message someone deleted (``delete_message``)
answers ``thread_not_found``; ``reply_broadcast`` is recorded with the call.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from slack_webapi import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_SCOPES,
    BOT_USER_ID,
    HISTORY_SCOPE,
    METHODS,
    TEAM_ID,
    Reply,
    handler_for,
    missing_scope,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False
    private: bool = False
    im_user: str | None = None  # set for a direct-message channel (D...)

    @property
    def kind(self) -> str:
        if self.im_user is not None:
            return "im"
        return "private_channel" if self.private else "public_channel"


@dataclass
class PostAttempt:
    """One chat.postMessage call as the stand-in saw it."""

    at: float
    channel: str
    text: str
    args: dict[str, Any]
    ok: bool
    error: str | None = None
    status: int = 200
    ts: str | None = None

    @property
    def thread_ts(self) -> str | None:
        value = self.args.get("thread_ts")
        return str(value) if value else None

    @property
    def broadcast(self) -> bool:
        """The call asked for ``reply_broadcast`` (a thread reply shown in the channel too)."""
        return str(self.args.get("reply_broadcast", "")).lower() in ("1", "true")


@dataclass
class _RateLimit:
    remaining: int
    retry_after: int
    channel: str | None


class SlackStandIn:
    """Slack's Web API and Socket Mode on loopback; start() it, stop() it."""

    def __init__(
        self, bot_token: str | None = None, app_token: str | None = None, scopes: str = BOT_SCOPES
    ) -> None:
        self.scopes = frozenset(scopes.split(","))
        self.bot_token = bot_token or "xoxb-standin-" + secrets.token_hex(8)
        self.app_token = app_token or "xapp-standin-" + secrets.token_hex(8)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, Channel] = {}
        self.attempts: list[PostAttempt] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []  # every Web API call: method, args
        self.unknown_methods: list[str] = []
        self.missing_scopes: list[tuple[str, str]] = []  # (method, scope) refused for lack of it
        self.acks: set[str] = set()
        self.stalled: list[str] = []  # channels of the posts held by stall()
        self.connections_opened = 0
        self._rate_limits: list[_RateLimit] = []
        self._stalls: dict[str, threading.Event] = {}
        self._ts = itertools.count(1)
        self.deleted: dict[str, set[str]] = {}  # channel -> ts of its deleted messages
        self._ws_conn: ServerConnection | None = None
        self._http: ThreadingHTTPServer | None = None
        self._ws: Server | None = None
        self._threads: list[threading.Thread] = []
        self.add_user(BOT_USER_ID, BOT_NAME, is_bot=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandIn:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self))
        self._http.daemon_threads = True
        self._ws = serve(self._socket_session, "127.0.0.1", 0, compression=None)
        http_loop = lambda: self._http.serve_forever(poll_interval=0.05)  # noqa: E731
        for target, name in ((http_loop, "http"), (self._ws.serve_forever, "ws")):
            thread = threading.Thread(target=target, name=f"slack-standin-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.release_stalls()
        if self._ws is not None:
            self._ws.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def api_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}/api/"

    @property
    def ws_url(self) -> str:
        assert self._ws is not None
        return f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}/link/"

    # ------------------------------------------------------------------ the workspace

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> None:
        with self._lock:
            self.users[user_id] = {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": name,
                "is_bot": is_bot,
                "deleted": False,
                "profile": {"real_name": name.title(), "display_name": name, "email": ""},
            }

    def add_channel(
        self, channel_id: str, name: str, *, member: bool = True, archived: bool = False
    ) -> None:
        with self._lock:
            self.channels[channel_id] = Channel(channel_id, name, member=member, archived=archived)

    def im_channel(self, user_id: str) -> str:
        """The id of the direct-message channel between the bot and ``user_id``."""
        channel_id = "D" + user_id[1:]
        with self._lock:
            if channel_id not in self.channels:
                self.channels[channel_id] = Channel(channel_id, "", im_user=user_id)
        return channel_id

    def invite_bot(self, channel_id: str) -> None:
        """The bot is a member of ``channel_id`` from now on (and it is not archived)."""
        with self._lock:
            channel = self.channels[channel_id]
            channel.member, channel.archived = True, False

    def archive(self, channel_id: str) -> None:
        """The channel is archived from now on (posts to it answer ``is_archived``)."""
        with self._lock:
            self.channels[channel_id].archived = True

    def delete_message(self, channel_id: str, ts: str) -> None:
        """Someone deleted the message ``ts``: a thread on it answers ``thread_not_found``."""
        with self._lock:
            self.deleted.setdefault(channel_id, set()).add(ts)

    def rate_limit(self, count: int, retry_after: int, channel: str | None = None) -> None:
        """Answer the next ``count`` chat.postMessage calls (to ``channel``, or any) with 429."""
        with self._lock:
            self._rate_limits.append(_RateLimit(count, retry_after, channel))

    def stall(self, channel_id: str) -> None:
        """Hold chat.postMessage calls to ``channel_id`` unanswered (and unposted) until released."""
        with self._lock:
            self._stalls[channel_id] = threading.Event()

    def release_stalls(self) -> None:
        with self._lock:
            stalls, self._stalls = self._stalls, {}
        for event in stalls.values():
            event.set()

    # ------------------------------------------------------------------ what was posted

    def posts(self, channel: str | None = None) -> list[PostAttempt]:
        """Accepted chat.postMessage calls (to ``channel``), in order."""
        with self._lock:
            return [a for a in self.attempts if a.ok and channel in (None, a.channel)]

    def refused(self, channel: str | None = None) -> list[PostAttempt]:
        with self._lock:
            return [a for a in self.attempts if not a.ok and channel in (None, a.channel)]

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every post); return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = condition()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
                self._changed.wait(min(left, 0.2))

    # ------------------------------------------------------------------ Socket Mode

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._ws_conn is not None

    def say(self, user: str, channel: str, text: str, *, thread_ts: str | None = None) -> str:
        """A person writes ``text`` in ``channel``: deliver the event, wait for the ack; the ts."""
        with self._lock:
            kind = self.channels[channel].kind
        if HISTORY_SCOPE.get(kind) not in self.scopes:
            raise AssertionError(f"the app would not hear {kind} messages (no history scope)")
        ts = self._next_ts()
        event: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": TEAM_ID,
            "channel_type": "im" if channel.startswith("D") else "channel",
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": {
                "token": "verification-unused",
                "team_id": TEAM_ID,
                "api_app_id": APP_ID,
                "event": event,
                "type": "event_callback",
                "event_id": "Ev" + envelope_id[:8].upper(),
                "event_time": int(time.time()),
            },
        }
        self._deliver(json.dumps(envelope))
        self.wait_for(lambda: envelope_id in self.acks, 15, f"the ack of envelope {envelope_id}")
        return ts

    def _deliver(self, frame: str) -> None:
        """Send ``frame`` on the bot's connection. A bot just killed may still look connected
        until its socket's end is read: that connection is dropped and the next one used."""
        for _ in range(50):
            conn = self.wait_for(lambda: self._ws_conn, 30, "the bot's Socket Mode connection")
            try:
                conn.send(frame)
                return
            except ConnectionClosed:
                with self._changed:
                    if self._ws_conn is conn:
                        self._ws_conn = None
                    self._changed.notify_all()
        raise AssertionError("the bot's Socket Mode connection keeps closing")

    def _socket_session(self, conn: ServerConnection) -> None:
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "standin", "approximate_connection_time": 3600},
            "connection_info": {"app_id": APP_ID},
        }
        conn.send(json.dumps(hello))
        with self._changed:
            self._ws_conn = conn
            self._changed.notify_all()
        try:
            for raw in conn:
                try:
                    message = json.loads(raw)
                except (TypeError, ValueError):
                    continue
                if isinstance(message, dict) and message.get("envelope_id"):
                    with self._changed:
                        self.acks.add(str(message["envelope_id"]))
                        self._changed.notify_all()
        except Exception:  # noqa: BLE001 - a killed bot just drops the socket
            pass
        finally:
            with self._changed:
                if self._ws_conn is conn:
                    self._ws_conn = None
                self._changed.notify_all()

    # ------------------------------------------------------------------ Web API

    def handle(self, method: str, token: str | None, args: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls.append((method, dict(args)))
        if method == "apps.connections.open":
            if token != self.app_token:
                return Reply(200, {"ok": False, "error": "invalid_auth"})
            with self._lock:
                self.connections_opened += 1
            return Reply(200, {"ok": True, "url": f"{self.ws_url}?ticket={uuid.uuid4()}"})
        if token != self.bot_token:
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        missing = missing_scope(self, method, args)
        if missing:
            with self._lock:
                self.missing_scopes.append((method, missing))
            return Reply(200, {"ok": False, "error": "missing_scope", "needed": missing})
        if method == "chat.postMessage":
            return self._post_message(args)
        handler = METHODS.get(method)
        if handler is None:
            with self._lock:
                self.unknown_methods.append(method)
            return Reply(200, {"ok": False, "error": "unknown_method"})
        with self._lock:
            return handler(self, args)

    def _post_message(self, args: dict[str, Any]) -> Reply:
        channel_id = str(args.get("channel", ""))
        with self._lock:
            stall = self._stalls.get(channel_id)
        if stall is not None:
            with self._changed:
                self.stalled.append(channel_id)
                self._changed.notify_all()
            stall.wait(60)  # a stalled post is never taken: the bot died or gave up waiting
            return Reply(500, {"ok": False, "error": "internal_error"})
        with self._changed:
            reply = self._post_outcome(channel_id, args)
            attempt = PostAttempt(
                at=time.monotonic(),
                channel=channel_id,
                text=str(args.get("text", "")),
                args=dict(args),
                ok=bool(reply.body.get("ok")),
                error=reply.body.get("error"),
                status=reply.status,
                ts=reply.body.get("ts"),
            )
            self.attempts.append(attempt)
            self._changed.notify_all()
        return reply

    def _post_outcome(self, channel_id: str, args: dict[str, Any]) -> Reply:
        for limit in self._rate_limits:
            if limit.remaining > 0 and limit.channel in (None, channel_id):
                limit.remaining -= 1
                return Reply(
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(limit.retry_after)},
                )
        channel = self._channel_by_id_or_name(channel_id)
        if channel is None:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        if channel.archived:
            return Reply(200, {"ok": False, "error": "is_archived"})
        if not channel.member and channel.im_user is None:
            return Reply(200, {"ok": False, "error": "not_in_channel"})
        if not str(args.get("text", "")).strip() and not args.get("blocks"):
            return Reply(200, {"ok": False, "error": "no_text"})
        thread_ts = str(args.get("thread_ts") or "")
        if thread_ts and thread_ts in self.deleted.get(channel.id, set()):
            return Reply(200, {"ok": False, "error": "thread_not_found"})
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "text": args.get("text"), "ts": ts}
        return Reply(200, {"ok": True, "channel": channel.id, "ts": ts, "message": message})

    def _channel_by_id_or_name(self, key: str) -> Channel | None:
        if key in self.channels:
            return self.channels[key]
        name = key.lstrip("#")
        return next((c for c in self.channels.values() if c.name and c.name == name), None)

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"


__all__ = [
    "BOT_ID",
    "BOT_SCOPES",
    "BOT_USER_ID",
    "Channel",
    "PostAttempt",
    "SlackStandIn",
    "TEAM_ID",
]
