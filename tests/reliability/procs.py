"""Processes for the crash test: the carrier sandbox CLI and errbot with the Text backend."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = REPO_ROOT / "plugins"
VENV_BIN = Path(sys.executable).parent
_LISTENING = re.compile(r"sandbox listening on (http://\S+)")
#: The Text backend prints every message four times (MD, HTML, TEXT, IM sections);
#: the MD section holds the raw body.
SECTION_BAR = "\u254c\u254c["
MD_BAR = SECTION_BAR + "MD  ]"


class SandboxProcess:
    """``python -m carrier_sandbox`` with a SQLite --db, driven over its control endpoints."""

    def __init__(
        self, workdir: Path, client_id: str, client_secret: str, registration: str
    ) -> None:
        self.db = workdir / "carrier.sqlite3"
        self.log_path = workdir / "sandbox.out"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS_DIR), str(REPO_ROOT)])
        env["PYTHONUNBUFFERED"] = "1"
        env["SANDBOX_CLIENT_SECRET"] = client_secret  # not on the command line
        argv = [
            sys.executable, "-m", "carrier_sandbox", "--port", "0", "--db", str(self.db),
            "--client-id", client_id, "--registration", registration, "--delivery-delay", "0.1",
        ]  # fmt: skip
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
                raise RuntimeError(f"sandbox did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def state(self) -> dict[str, Any]:
        return self.call("GET", "/sandbox/state")

    def inject(self, registration: str, sender: str, message: str, message_id: str) -> None:
        self.call(
            "POST",
            "/sandbox/inbound",
            {
                "registrationId": registration,
                "senderAddress": sender,
                "message": message,
                "messageId": message_id,
            },
        )

    def token_digests(self) -> set[str]:
        """SHA-256 digests of the tokens the sandbox still remembers (it never stores them)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            return {row[0] for row in db.execute("SELECT digest FROM tokens")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def errbot_config(workdir: Path) -> Path:
    data = workdir / "errbot-data"
    data.mkdir(exist_ok=True)
    config = workdir / "config.py"
    config.write_text(
        textwrap.dedent(
            f"""\
            import logging
            BACKEND = "Text"
            BOT_DATA_DIR = {str(data)!r}
            BOT_EXTRA_PLUGIN_DIR = {str(REPO_ROOT)!r}
            BOT_LOG_FILE = {str(workdir / "errbot.log")!r}
            BOT_LOG_LEVEL = logging.DEBUG
            BOT_ADMINS = ("@ops",)
            BOT_PREFIX = "!"
            AUTOINSTALL_DEPS = False
            TEXT_DEMO_MODE = False
            """
        )
    )
    return config


class ErrbotRun:
    """One errbot process (Text backend); stdin is a pipe kept open; stdout unbuffered."""

    def __init__(self, workdir: Path, index: int, config: Path, env: dict[str, str]) -> None:
        self.index = index
        self.out_path = workdir / f"errbot-run{index:02d}.out"
        self.err_path = workdir / f"errbot-run{index:02d}.err"
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.killed = False
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603
            [str(VENV_BIN / "errbot"), "-c", str(config)],
            stdin=subprocess.PIPE, stdout=self._out, stderr=self._err, env=env,
            cwd=workdir, start_new_session=True,
        )  # fmt: skip

    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30) -> float:
        """Seconds until the Text backend printed its intro (plugins are active by then)."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if MD_BAR in self.stdout():
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"errbot run {self.index} exited with {self.proc.returncode}:\n"
                    + self.err_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.02)
        raise RuntimeError(f"errbot run {self.index} not ready in {timeout} s")

    def sigkill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.killed = True
        self._close()

    def stop(self) -> None:
        """A clean stop: end of input (the Text backend shuts down), then SIGTERM if needed."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        for handle in (self._out, self._err):
            if not handle.closed:
                handle.close()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


def md_sections(stdout: str) -> list[str]:
    """The MD sections (raw message bodies) of a Text backend's stdout, in order."""
    sections: list[str] = []
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(SECTION_BAR):
            if current is not None:
                sections.append("\n".join(current))
            current = [] if line.startswith(MD_BAR) else None
            continue
        if current is not None:
            current.append(line)
    if current is not None:
        sections.append("\n".join(current))
    return sections


def ledger_keys(path: Path) -> tuple[set[str], set[str]]:
    """(pending keys, posted keys) of inbound messages in the plugin's store file."""
    if not path.exists():
        return set(), set()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT key, posted_at IS NULL FROM att_inbound").fetchall()
    return {k for k, waiting in rows if waiting}, {k for k, waiting in rows if not waiting}


def carrier_pending_ids(db: Path, registration: str) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute(
            "SELECT message_id FROM inbound WHERE registration = ?", (registration,)
        )
        return {row[0] for row in rows}


__all__ = [
    "ErrbotRun",
    "SandboxProcess",
    "carrier_pending_ids",
    "errbot_config",
    "ledger_keys",
    "md_sections",
]


# ----------------------------------------------------------------- a service's processes

#: Set in a bot's environment; the fetch child inherits it. Every live process carrying the
#: same value is "the service", as a systemd control group would be.
SERVICE_TAG_VARIABLE = "RELIABILITY_SERVICE"


def errbot_sqlite_storage_config(workdir: Path) -> Path:
    """``errbot_config`` plus errbot's own settings in the repository's SQLite storage plugin."""
    config = errbot_config(workdir)
    storage_dir = REPO_ROOT / "errbot_storage" / ".errbot_plugin"
    config.write_text(
        config.read_text()
        + f"BOT_EXTRA_STORAGE_PLUGINS_DIR = {str(storage_dir)!r}\n"
        + 'STORAGE = "SQLite"\n'
    )
    return config


def service_pids(tag: str) -> list[int]:
    """Live (not zombie) processes whose environment holds ``SERVICE_TAG_VARIABLE=tag``."""
    wanted = f"{SERVICE_TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if wanted in environ.split(b"\0") and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_fetch_child(pid: int) -> bool:
    """True when ``pid`` runs the plugin's inbox fetch child (``python -m att_sms.inbound.fetcher``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"att_sms.inbound.fetcher" in argv


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """``sig`` to the process group ``proc`` leads (ErrbotRun starts a new session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def exited_within(proc: subprocess.Popen, bound: float) -> bool:
    try:
        proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        return False
    return True


def wait_until(condition: Any, bound: float, *, quiet: bool = False) -> bool:
    """Poll ``condition()`` for ``bound`` seconds; AssertionError at the end unless ``quiet``."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    if not quiet:
        raise AssertionError(f"not reached within {bound} s: {condition}")
    return False


def kill_service_after(tag: str, deadline: float) -> int:
    """Wait for every process of service ``tag`` to end; SIGKILL those left at ``deadline``.

    Returns how many had to be killed (a systemd stop's final SIGKILL).
    """
    while time.monotonic() < deadline:
        if not service_pids(tag):
            return 0
        time.sleep(0.02)
    left = service_pids(tag)
    signal_pids(left, signal.SIGKILL)
    wait_until(lambda: not service_pids(tag), 10)
    return len(left)


def ignores_signal(pid: int, sig: int) -> bool:
    """True when process ``pid`` has ``sig`` set to SIG_IGN (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


__all__ += [
    "SERVICE_TAG_VARIABLE",
    "errbot_sqlite_storage_config",
    "exited_within",
    "ignores_signal",
    "kill_service_after",
    "is_fetch_child",
    "process_alive",
    "service_pids",
    "signal_group",
    "signal_pids",
    "wait_until",
]
