"""Processes of the Slack suite: the carrier sandbox CLI and errbot with BACKEND 'SlackV3'.

errbot runs as its own process with the real slackv3 backend and slack_sdk. The only test
shim is in the generated config.py: slackv3 0.3.2 builds ``WebClient(token=..., proxy=...)``
without a base URL, so before errbot loads the backend the config points slack_sdk's
*default* base URL at the local stand-in (``BaseClient.__init__``'s default argument and
``BaseClient.BASE_URL``). Socket Mode then connects wherever the stand-in's
``apps.connections.open`` says. Nothing else of the backend, errbot or the plugin changes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from slack_standin import SlackStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The tree whose plugin errbot loads (another checkout's, to compare; default: this one).
PLUGIN_ROOT = Path(os.environ.get("SLACK_SUITE_PLUGIN_ROOT") or REPO_ROOT).resolve()
VENV_BIN = Path(sys.executable).parent
CARRIER_CLIENT_ID = "slack-suite-client"
CARRIER_SECRET = "slack-suite-secret-7d2e"  # sentinel: must never show in a log
ADMIN_ID = "U0ADMIN01"
PROBE_ID = "U0PROBE01"
_LISTENING = re.compile(r"sandbox listening on (http://\S+)")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _pythonpath() -> str:
    return os.pathsep.join(
        [str(PLUGIN_ROOT / "plugins"), str(REPO_ROOT / "plugins"), str(REPO_ROOT)]
    )


class CarrierProcess:
    """``python -m carrier_sandbox --port 0`` with a SQLite --db, driven over its control API."""

    def __init__(self, workdir: Path, registrations: list[str]) -> None:
        self.log_path = workdir / "carrier.out"
        env = dict(os.environ, PYTHONPATH=_pythonpath(), PYTHONUNBUFFERED="1")
        env["SANDBOX_CLIENT_SECRET"] = CARRIER_SECRET  # not on the command line
        argv = [
            sys.executable, "-m", "carrier_sandbox", "--host", "127.0.0.1", "--port", "0",
            "--db", str(workdir / "carrier.sqlite3"), "--client-id", CARRIER_CLIENT_ID,
            "--delivery-delay", "0.1",
        ]  # fmt: skip
        for registration in registrations:
            argv += ["--registration", registration]
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: S603
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1).rstrip("/")
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"carrier sandbox did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def inject(
        self, registration: str, sender: str, message: str, message_id: str, when: str | None = None
    ) -> None:
        body = {
            "registrationId": registration,
            "senderAddress": sender,
            "message": message,
            "messageId": message_id,
        }
        if when:
            body["dateTime"] = when
        self.call("POST", "/sandbox/inbound", body)

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


def errbot_config(
    workdir: Path, standin: SlackStandIn, *, admins: tuple[str, ...] = (ADMIN_ID,),
    access_controls: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """config.py for errbot with the real SlackV3 backend, its Web API at the stand-in."""
    data = workdir / "errbot-data"
    data.mkdir(exist_ok=True)
    config = workdir / "config.py"
    config.write_text(
        textwrap.dedent(
            f"""\
            import logging

            # Test shim (tests/slack): slackv3 0.3.2 calls WebClient(token=..., proxy=...)
            # without a base_url, so point slack_sdk's default base URL at the local
            # stand-in of Slack before errbot loads the backend.
            from slack_sdk.web import base_client as _slack_base

            _STANDIN_API = {standin.api_url!r}
            _defaults = list(_slack_base.BaseClient.__init__.__defaults__)
            _defaults[_defaults.index(_slack_base.BaseClient.BASE_URL)] = _STANDIN_API
            _slack_base.BaseClient.__init__.__defaults__ = tuple(_defaults)
            _slack_base.BaseClient.BASE_URL = _STANDIN_API

            BACKEND = "SlackV3"
            BOT_IDENTITY = {{"token": {standin.bot_token!r}, "app_token": {standin.app_token!r}}}
            BOT_DATA_DIR = {str(data)!r}
            BOT_EXTRA_PLUGIN_DIR = {str(PLUGIN_ROOT)!r}
            BOT_LOG_FILE = {str(workdir / "errbot.log")!r}
            BOT_LOG_LEVEL = logging.DEBUG
            BOT_ADMINS = {admins!r}
            BOT_ADMINS_NOTIFICATIONS = ()
            BOT_PREFIX = "!"
            CHATROOM_PRESENCE = ()
            AUTOINSTALL_DEPS = False
            ACCESS_CONTROLS = {access_controls or {}!r}
            """
        )
    )
    return config


class ErrbotSlack:
    """One errbot process (SlackV3 backend) configured from ATT_* variables."""

    def __init__(self, workdir: Path, index: int, config: Path, env: dict[str, str]) -> None:
        self.index = index
        self.log_path = workdir / "errbot.log"
        self.out_path = workdir / f"errbot-run{index:02d}.out"
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603
            [str(VENV_BIN / "errbot"), "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT, env=env,
            cwd=workdir, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, standin: SlackStandIn, timeout: float = 60) -> float:
        """Seconds until the plugin answers ``!sms`` in a DM (errbot connected, plugins active).

        Until AttSms is active errbot answers 'Command "sms" not found'; the probe is repeated.
        """
        probe_dm = standin.im_channel(PROBE_ID)
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"errbot exited with {self.proc.returncode}:\n{self.tail()}")
            if not standin.connected:
                time.sleep(0.05)
                continue
            seen = len(standin.posts(probe_dm))
            standin.say(PROBE_ID, probe_dm, "!sms")
            try:
                standin.wait_for(
                    lambda seen=seen: any(
                        "not found" not in p.text for p in standin.posts(probe_dm)[seen:]
                    ),
                    2.0,
                    "the plugin's answer to the probe",
                )
                return time.monotonic() - self.started
            except AssertionError:
                continue
        raise RuntimeError(f"errbot run {self.index} not ready in {timeout} s:\n{self.tail()}")

    def log(self) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def tail(self, lines: int = 60) -> str:
        out = self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
        return "\n".join((out + "\n" + self.log()).splitlines()[-lines:])

    def sigkill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._out.close()

    def stop(self) -> None:
        _stop(self.proc)
        if not self._out.closed:
            self._out.close()


def errbot_env(carrier_url: str, routes: dict[str, str], **settings: str) -> dict[str, str]:
    """The bot's environment: the plugin configured from ATT_*, no proxy between it and Slack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATT_") and k not in _PROXY_VARS}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "ATT_API_BASE_URL": carrier_url,
            "ATT_CLIENT_ID": CARRIER_CLIENT_ID,
            "ATT_CLIENT_SECRET": CARRIER_SECRET,
            "ATT_INBOX_ROUTES": json.dumps(routes),
            "ATT_POLL_INTERVAL": "1",
            "ATT_DEFAULT_REGION": "US",
        }
    )
    env.update({f"ATT_{key.upper()}": value for key, value in settings.items()})
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


__all__ = [
    "ADMIN_ID",
    "CARRIER_SECRET",
    "CarrierProcess",
    "ErrbotSlack",
    "errbot_config",
    "errbot_env",
]
