"""Processes for the end-to-end suite: ngircd, the carrier sandbox and errbot.

Every process writes to a log file in the test's temporary directory; ``LOGS`` lists them so
the conftest hook can print their tails into a failing test's report.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from e2e_ircclient import IrcClient

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = REPO_ROOT / "plugins"
ENSURE_NGIRCD = REPO_ROOT / "scripts" / "ensure-ngircd.sh"

HOST = "127.0.0.1"
CHANNEL = "#oncall"
BOT_NICK = "smsbot"
HUMAN_NICK = "e2euser"
REGISTRATION_ID = "e2e-reg"
CLIENT_ID = "e2e-client"
CLIENT_SECRET = "e2e-secret-not-real"

# name -> log file of every process started in this session (for failure reports)
LOGS: dict[str, Path] = {}


def venv_bin(name: str) -> Path:
    """A console script next to the running interpreter (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH")
    return Path(found)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when nothing accepts connections on the port and it can be bound again."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(port):
            return True
        time.sleep(0.2)
    return port_is_free(port)


def wait_port_open(port: int, timeout: float, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} before listening\n{tail(name)}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s\n{tail(name)}"
    )


def tail(name: str, lines: int = 80) -> str:
    path = LOGS.get(name)
    if path is None or not path.exists():
        return f"(no log for {name})"
    content = path.read_text(errors="replace").splitlines()
    return "\n".join(content[-lines:])


def ngircd_binary() -> str | None:
    return shutil.which("ngircd") or (
        "/usr/sbin/ngircd" if os.access("/usr/sbin/ngircd", os.X_OK) else None
    )


class Proc:
    """A child process in its own session, logging to a file, stopped terminate-then-kill."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ports: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ports = list(ports)
        self.proc: subprocess.Popen[bytes] | None = None
        LOGS[name] = log

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            out.write(
                f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode()
            )
            out.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv built by the harness
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the process (and its process group) without any chance to clean up."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, grace: float = 8.0) -> None:
        """Terminate, then kill after ``grace`` seconds; reap; also clear its process group."""
        if self.proc is None:
            return
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        try:  # stragglers the process may have spawned in its session
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def assert_ports_free(self) -> None:
        busy = [p for p in self.ports if not wait_port_free(p)]
        if busy:
            raise AssertionError(f"{self.name}: ports still in use after stop: {busy}")


# -- ngircd ---------------------------------------------------------------------------------


def ngircd_config(port: int, workdir: Path) -> str:
    include_dir = workdir / "ngircd.conf.d"  # empty: keep /etc/ngircd/ngircd.conf.d out
    include_dir.mkdir(exist_ok=True)
    return textwrap.dedent(
        f"""\
        [Global]
        Name = irc.e2e.test
        Info = errbot-att-sms end-to-end tests
        AdminInfo1 = errbot-att-sms e2e
        AdminInfo2 = loopback only
        AdminEMail = nobody@e2e.test
        Listen = {HOST}
        Ports = {port}
        MotdPhrase = errbot-att-sms e2e

        [Limits]
        MaxConnectionsIP = 0
        MaxJoins = 10
        MaxNickLength = 30
        # penalties would throttle the bot's bursts of inbound posts
        MaxPenaltyTime = 0
        PingTimeout = 120
        PongTimeout = 20

        [Options]
        DNS = no
        Ident = no
        PAM = no
        IncludeDir = {include_dir}

        [Channel]
        Name = {CHANNEL}
        Topic = errbot-att-sms e2e
        # like any real network: no messages from outside the channel
        Modes = +nt
        """
    )


def start_ngircd(workdir: Path, binary: str) -> tuple[Proc, int]:
    port = free_port()
    conf = workdir / "ngircd.conf"
    conf.write_text(ngircd_config(port, workdir))
    check = subprocess.run(  # noqa: S603
        [binary, "--configtest", "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode != 0:
        raise RuntimeError(f"ngircd --configtest failed:\n{check.stdout}\n{check.stderr}")
    proc = Proc("ngircd", [binary, "-n", "-f", str(conf)], workdir / "ngircd.log", ports=[port])
    popen = proc.start()
    wait_port_open(port, 15, popen, "ngircd")
    return proc, port


# -- carrier sandbox ------------------------------------------------------------------------

_LISTENING = re.compile(r"sandbox listening on (http://\S+)")


def start_sandbox(workdir: Path) -> tuple[Proc, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PLUGINS_DIR), str(REPO_ROOT), env.get("PYTHONPATH")])
    )
    env["PYTHONUNBUFFERED"] = "1"
    argv = [
        sys.executable,
        "-m",
        "carrier_sandbox",
        "--host",
        HOST,
        "--port",
        "0",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--registration",
        REGISTRATION_ID,
    ]
    log = workdir / "sandbox.log"
    proc = Proc("sandbox", argv, log, env=env, cwd=REPO_ROOT)
    popen = proc.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = _LISTENING.search(log.read_text(errors="replace"))
        if match:
            url = match.group(1).rstrip("/")
            port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
            proc.ports.append(port)
            wait_port_open(port, 10, popen, "sandbox")
            return proc, url
        if popen.poll() is not None:
            raise RuntimeError(f"sandbox exited with {popen.returncode}\n{tail('sandbox')}")
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"sandbox did not announce its address within 20s\n{tail('sandbox')}")


class Sandbox:
    """Client for the sandbox's control endpoints (outside the carrier API)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        return status, (json.loads(raw) if raw else None)

    def state(self) -> dict[str, Any]:
        status, body = self._call("GET", "/sandbox/state")
        assert status == 200, f"GET /sandbox/state -> {status} {body!r}"
        assert isinstance(body, dict)
        return body

    def sent(self) -> list[dict[str, Any]]:
        return list(self.state().get("sent", []))

    def inject(self, sender: str, message: str, registration: str = REGISTRATION_ID) -> str:
        status, body = self._call(
            "POST",
            "/sandbox/inbound",
            {"registrationId": registration, "senderAddress": sender, "message": message},
        )
        assert status == 201, f"POST /sandbox/inbound -> {status} {body!r}"
        return str(body.get("messageId", "")) if isinstance(body, dict) else ""


# -- errbot ---------------------------------------------------------------------------------


def errbot_config(workdir: Path, irc_port: int) -> str:
    data_dir = workdir / "errbot-data"
    data_dir.mkdir(exist_ok=True)
    return textwrap.dedent(
        f"""\
        import logging

        BACKEND = "IRC"
        BOT_DATA_DIR = {str(data_dir)!r}
        BOT_EXTRA_PLUGIN_DIR = {str(REPO_ROOT)!r}
        BOT_LOG_FILE = {str(workdir / "errbot.log")!r}
        BOT_LOG_LEVEL = logging.DEBUG
        AUTOINSTALL_DEPS = False
        BOT_IDENTITY = {{
            "nickname": {BOT_NICK!r},
            "username": {BOT_NICK!r},
            "server": {HOST!r},
            "port": {irc_port},
        }}
        BOT_ADMINS = ({HUMAN_NICK + "!*@*"!r},)
        BOT_ADMINS_NOTIFICATIONS = ()
        BOT_PREFIX = "!"
        CHATROOM_PRESENCE = ({CHANNEL!r},)
        CHATROOM_FN = "SMS bot"
        IRC_CHANNEL_RATE = 0.05
        IRC_PRIVATE_RATE = 0.05
        IRC_RECONNECT_ON_KICK = 2
        IRC_RECONNECT_ON_DISCONNECT = 2
        """
    )


def errbot_env(sandbox_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATT_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS_DIR), env.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "ATT_API_BASE_URL": sandbox_url,
            "ATT_CLIENT_ID": CLIENT_ID,
            "ATT_CLIENT_SECRET": CLIENT_SECRET,
            "ATT_INBOX_ROUTES": json.dumps({REGISTRATION_ID: CHANNEL}),
            "ATT_POLL_INTERVAL": "1",
            "ATT_DEFAULT_REGION": "US",
        }
    )
    return env


def make_errbot(workdir: Path, irc_port: int, sandbox_url: str) -> Proc:
    config = workdir / "config.py"
    config.write_text(errbot_config(workdir, irc_port))
    LOGS["errbot.log"] = workdir / "errbot.log"
    return Proc(
        "errbot",
        [str(venv_bin("errbot")), "-c", str(config)],
        workdir / "errbot.out",
        env=errbot_env(sandbox_url),
        cwd=workdir,
    )


# -- the whole system -----------------------------------------------------------------------

# errbot's start (plugin scan, storage, IRC registration, join) plus slack for slow CI hosts
ERRBOT_READY_TIMEOUT = 60.0


class Stack:
    """The running system, as the tests see it."""

    def __init__(
        self,
        workdir: Path,
        ngircd: Proc,
        irc_port: int,
        sandbox_proc: Proc,
        sandbox: Sandbox,
        errbot: Proc,
        human: IrcClient,
    ) -> None:
        self.workdir = workdir
        self.ngircd = ngircd
        self.irc_port = irc_port
        self.sandbox_proc = sandbox_proc
        self.sandbox = sandbox
        self.errbot = errbot
        self.human = human
        self._probe = itertools.count(1)
        self.injected: list[str] = []  # markers of every inbound SMS injected on this stack

    def inject(self, sender: str, text: str, marker: str) -> None:
        """Inject an inbound SMS at the carrier; ``marker`` (inside ``text``) identifies it."""
        assert marker in text
        self.sandbox.inject(sender, text)
        self.injected.append(marker)

    def command(self, text: str, expect: str, timeout: float = 15.0) -> list[str]:
        """Say ``text`` in the channel; wait for a bot line containing ``expect``."""
        mark = self.human.say(CHANNEL, text)
        found = self.human.wait_for_messages(
            lambda ms: any(expect in m.text for m in ms),
            timeout,
            f"a bot line containing {expect!r} after {text!r}",
            since=mark,
            nick=BOT_NICK,
        )
        return [m.text for m in found]

    def start_errbot(self) -> float:
        """Start errbot; wait until it is in the channel and answers; return seconds taken."""
        began = time.monotonic()
        self.errbot.start()
        try:
            self.human.wait_member(CHANNEL, BOT_NICK, True, ERRBOT_READY_TIMEOUT)
            probe = f"ready-probe-{next(self._probe)}"
            left = max(5.0, ERRBOT_READY_TIMEOUT - (time.monotonic() - began))
            self.command(f"!echo {probe}", probe, timeout=left)
        except AssertionError as exc:
            raise AssertionError(
                f"errbot did not become ready: {exc}\n--- errbot.log (tail) ---\n"
                f"{tail('errbot.log', 40)}"
            ) from exc
        return time.monotonic() - began

    def ensure_errbot(self) -> None:
        if self.errbot.alive() and BOT_NICK in self.human.members(CHANNEL):
            return
        self.errbot.stop()
        self.human.wait_member(CHANNEL, BOT_NICK, False, 30)
        self.start_errbot()

    def sigkill_errbot(self) -> None:
        self.errbot.kill9()
        # ngircd notices the closed socket and sends QUIT; a restart must not race its nick
        self.human.wait_member(CHANNEL, BOT_NICK, False, 30)
