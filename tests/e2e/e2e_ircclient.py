"""A small raw-socket IRC client that plays the human in the end-to-end tests.

It registers, joins a channel, answers PINGs, and records every channel message (with IRC
formatting codes stripped) so the tests can wait for the bot's lines.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Bold, colour (with optional fg,bg), reset, reverse, italics, underline, strike, monospace.
_FORMATTING = re.compile(r"\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x0f\x16\x1d\x1e\x1f\x11]")


def strip_formatting(text: str) -> str:
    """Remove mIRC formatting codes (what errbot's IRC markdown renderer emits)."""
    return _FORMATTING.sub("", text)


@dataclass(frozen=True)
class IrcLine:
    """One parsed line received from the server."""

    at: float
    prefix: str
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str:
        return self.prefix.split("!", 1)[0]

    @property
    def trailing(self) -> str:
        return self.params[-1] if self.params else ""


def parse_line(raw: str, at: float) -> IrcLine:
    prefix = ""
    rest = raw
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    trailing: str | None = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        trailing = rest[1:]
        rest = ""
    words = rest.split()
    command = words[0].upper() if words else ""
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return IrcLine(at=at, prefix=prefix, command=command, params=tuple(params))


@dataclass(frozen=True)
class ChannelMessage:
    """A PRIVMSG or NOTICE seen in a channel, formatting stripped."""

    index: int
    at: float
    nick: str
    text: str


@dataclass
class _State:
    lines: list[IrcLine] = field(default_factory=list)
    messages: list[ChannelMessage] = field(default_factory=list)
    members: dict[str, set[str]] = field(default_factory=dict)
    registered: bool = False
    closed: bool = False
    error: str | None = None


class IrcClient:
    """A person on IRC: ``connect()``, ``join()``, ``say()``, and ``wait_*`` helpers."""

    def __init__(self, host: str, port: int, nick: str, *, timeout: float = 15.0) -> None:
        self.host = host
        self.port = port
        self.nick = nick
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._state = _State()
        self._reader: threading.Thread | None = None

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self._sock.settimeout(None)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"irc-{self.nick}", daemon=True
        )
        self._reader.start()
        self.send_raw(f"NICK {self.nick}")
        self.send_raw(f"USER {self.nick} 0 * :e2e human")
        self.wait_until(lambda s: s.registered, self.timeout, "IRC registration (001)")

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self.send_raw("QUIT :bye")
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._sock = None

    def send_raw(self, line: str) -> None:
        if self._sock is None:
            raise RuntimeError("not connected")
        data = (line.replace("\r", " ").replace("\n", " ") + "\r\n").encode()
        with self._send_lock:
            self._sock.sendall(data)

    def join(self, channel: str) -> None:
        self.send_raw(f"JOIN {channel}")
        self.wait_until(
            lambda s: self.nick.lower() in s.members.get(channel.lower(), set()),
            self.timeout,
            f"joining {channel}",
        )

    def say(self, channel: str, text: str) -> int:
        """Send ``text`` to ``channel``; return the index to read the answers from."""
        with self._cond:
            mark = len(self._state.messages)
        self.send_raw(f"PRIVMSG {channel} :{text}")
        return mark

    # -- observation ------------------------------------------------------------------------

    def members(self, channel: str) -> set[str]:
        with self._cond:
            return set(self._state.members.get(channel.lower(), set()))

    def messages(self, since: int = 0, nick: str | None = None) -> list[ChannelMessage]:
        with self._cond:
            found = self._state.messages[since:]
        if nick is not None:
            found = [m for m in found if m.nick.lower() == nick.lower()]
        return found

    def mark(self) -> int:
        with self._cond:
            return len(self._state.messages)

    def wait_until(self, predicate: Callable[[_State], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._state):
                if self._state.closed:
                    raise AssertionError(
                        f"IRC connection of {self.nick} closed while waiting for {what}"
                        f" ({self._state.error or 'EOF'})"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def wait_for_messages(
        self,
        predicate: Callable[[list[ChannelMessage]], bool],
        timeout: float,
        what: str,
        *,
        since: int = 0,
        nick: str | None = None,
    ) -> list[ChannelMessage]:
        """Wait until ``predicate`` holds for the messages from ``nick`` since ``since``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(since, nick)
            if predicate(found):
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                seen = "\n".join(f"  <{m.nick}> {m.text}" for m in self.messages(since))
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; channel since then:\n"
                    f"{seen or '  (nothing)'}"
                )
            with self._cond:
                self._cond.wait(min(left, 0.25))

    def wait_member(self, channel: str, nick: str, present: bool, timeout: float) -> None:
        state = "in" if present else "out of"
        self.wait_until(
            lambda s: (nick.lower() in s.members.get(channel.lower(), set())) == present,
            timeout,
            f"{nick} to be {state} {channel}",
        )

    # -- reader -----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._sock is not None
        buffer = b""
        try:
            while True:
                chunk = self._sock.recv(4096)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
                    if text:
                        self._handle(parse_line(text, time.time()))
        except OSError as exc:
            with self._cond:
                self._state.error = repr(exc)
        finally:
            with self._cond:
                self._state.closed = True
                self._cond.notify_all()

    def _handle(self, line: IrcLine) -> None:
        if line.command == "PING":
            try:
                self.send_raw(f"PONG :{line.trailing}")
            except OSError:
                pass
            return
        with self._cond:
            state = self._state
            state.lines.append(line)
            cmd = line.command
            if cmd == "001":
                state.registered = True
            elif cmd == "433" and not state.registered:
                state.error = f"nickname {self.nick} in use"
            elif cmd in ("PRIVMSG", "NOTICE") and line.params and line.params[0][:1] in "#&":
                state.messages.append(
                    ChannelMessage(
                        index=len(state.messages),
                        at=line.at,
                        nick=line.nick,
                        text=strip_formatting(line.trailing),
                    )
                )
            elif cmd == "353" and len(line.params) >= 3:  # RPL_NAMREPLY
                channel = line.params[-2].lower()
                names = {n.lstrip("@+%&~").lower() for n in line.trailing.split()}
                state.members.setdefault(channel, set()).update(names)
            elif cmd == "JOIN" and line.params:
                state.members.setdefault(line.params[0].lower(), set()).add(line.nick.lower())
            elif cmd == "PART" and line.params:
                state.members.setdefault(line.params[0].lower(), set()).discard(line.nick.lower())
            elif cmd == "KICK" and len(line.params) >= 2:
                state.members.setdefault(line.params[0].lower(), set()).discard(
                    line.params[1].lower()
                )
            elif cmd == "QUIT":
                for members in state.members.values():
                    members.discard(line.nick.lower())
            elif cmd == "NICK" and line.params:
                new = line.trailing.lower()
                for members in state.members.values():
                    if line.nick.lower() in members:
                        members.discard(line.nick.lower())
                        members.add(new)
            self._cond.notify_all()
