"""The AttSms errbot plugin: configuration, activation and the command index.

The commands live in command classes under ``att_sms.commands``, one module per area
(sending, pages, page posts, alerts, rotations, directory, health, inbound polling,
follow-ups, replicas, threads), mixed into :class:`AttSms`. Everything they keep is in one
store (``att_sms.store``).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

# errbot loads this file by path; make the package beside it importable as ``att_sms``
# (a unique name: errbot already owns a module called ``plugins``), ahead of any other copy.
_PLUGINS_DIR = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [_PLUGINS_DIR]:
    sys.path[:] = [_PLUGINS_DIR, *(p for p in sys.path if p != _PLUGINS_DIR)]


def _drop_changed_package() -> None:
    """``!plugin reload`` re-executes only this file: when the package's code changed on
    disk since it was imported (or another copy of it was imported), drop its cached
    modules so that the code beside this file is loaded too."""
    package = sys.modules.get("att_sms")
    if package is None:
        return
    here = str(Path(__file__).resolve().parent)
    where = str(Path(getattr(package, "__file__", "") or "").resolve().parent)
    if where == here and getattr(package, "SOURCE_MTIMES", None) == package.source_mtimes():
        return
    for name in [n for n in sys.modules if n == "att_sms" or n.startswith("att_sms.")]:
        del sys.modules[name]


_drop_changed_package()

from errbot import BotPlugin, ValidationException, botcmd  # noqa: E402

from att_sms.carrier.client import AttSmsClient  # noqa: E402
from att_sms.commands.alerts import ALERT_SMS_TICK, AlertCommands  # noqa: E402
from att_sms.commands.directory import DirectoryCommands  # noqa: E402
from att_sms.commands.followup import FollowUps  # noqa: E402
from att_sms.commands.health import HealthCommands  # noqa: E402
from att_sms.commands.inbound import InboundPoller  # noqa: E402
from att_sms.commands.pages import PageCommands  # noqa: E402
from att_sms.commands.replicas import ReplicaCoordination  # noqa: E402
from att_sms.commands.rotations import RotationCommands  # noqa: E402
from att_sms.commands.sending import SendCommands  # noqa: E402
from att_sms.commands.threads import ConversationThreads  # noqa: E402
from att_sms.ops.metrics import Metrics  # noqa: E402
from att_sms.ops.sigterm import (  # noqa: E402
    NOT_MAIN_THREAD,
    forget_before_shutdown,
    install_sigterm_shutdown,
    run_before_shutdown,
)
from att_sms.setting_values import SettingsError  # noqa: E402
from att_sms.settings import (  # noqa: E402
    CONFIG_TEMPLATE,
    SECRET_ENV,
    Settings,
    has_env_configuration,
    parse_settings,
)
from att_sms.store import Store, StoredInbound, StoreError, open_store  # noqa: E402
from att_sms.store.legacy import import_legacy, legacy_ledger_path  # noqa: E402
from att_sms.text.formatting import echo  # noqa: E402
from att_sms.text.numbers import NumberRules  # noqa: E402

log = logging.getLogger("errbot.plugins.AttSms")

#: How long deactivation waits for commands that are talking to the carrier.
INFLIGHT_WAIT = 30.0


def _own_commands(cls: type) -> type:
    """Make the mixins' commands the plugin class's own.

    errbot files a command under the class whose ``__dict__`` holds it (``!help AttSms``,
    ``AttSms:sms_send`` in ACCESS_CONTROLS), not under the plugin that has it.
    """
    for base in cls.__mro__[1:]:
        for name, value in vars(base).items():
            if getattr(value, "_err_command", False) and name not in cls.__dict__:
                setattr(cls, name, value)
    return cls


@_own_commands
class AttSms(
    SendCommands,
    PageCommands,
    AlertCommands,
    DirectoryCommands,
    RotationCommands,
    HealthCommands,
    InboundPoller,
    FollowUps,
    ReplicaCoordination,
    ConversationThreads,
    BotPlugin,
):
    """Send SMS, check delivery and see the replies, through an AT&T-style SMS API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings: Settings | None = None
        self._settings_problem: str | None = None
        self._client: AttSmsClient | None = None
        self._rules: NumberRules | None = None
        self._sms_store: Store | None = None
        self._generation = 0  # bumped by every (de)activation; stale poll chains stop
        # True while activate() runs: errbot already routes commands to the plugin then, and
        # a command that arrives meanwhile waits for it (commands/replicas.py).
        self._starting = False
        self._inflight = 0
        self._inflight_done = threading.Condition()
        self.metrics = Metrics()
        self._init_inbound()
        # errbot builds plugins in its main thread, where a signal handler can be installed.
        self._sigterm = install_sigterm_shutdown(getattr(self.bot_config, "BACKEND", ""))

    # ----------------------------------------------------------------- configuration

    def get_configuration_template(self) -> dict[str, Any]:
        """The template ``!plugin config AttSms`` shows (no secret: it is ATT_CLIENT_SECRET)."""
        return dict(CONFIG_TEMPLATE)

    def check_configuration(self, configuration: Any) -> None:
        """Check every key ourselves; errbot's default refuses INBOX_ROUTES' own keys."""
        if not isinstance(configuration, dict):
            raise ValidationException("the configuration must be a dict")
        try:
            parse_settings(configuration, require_secret=False)
        except SettingsError as exc:
            raise ValidationException(str(exc)) from None

    def activate(self) -> None:
        self._starting = True
        try:
            self._activate()
        finally:
            self._starting = False

    def _activate(self) -> None:
        super().activate()
        self._sigterm = install_sigterm_shutdown(getattr(self.bot_config, "BACKEND", ""))
        if self._sigterm == NOT_MAIN_THREAD:
            log.warning("AttSms cannot make SIGTERM a clean stop from this thread")
        run_before_shutdown(self.name, self._stop_before_shutdown)
        self._generation += 1
        generation = self._generation
        self._load_settings()
        if self._settings is None:
            log.warning("AttSms is not configured: %s", self._settings_problem)
            return
        try:
            self._sms_store = self._open_store(self._settings)
        except StoreError as exc:
            self._settings, self._settings_problem = None, str(exc)
            log.error("AttSms cannot open its store: %s", exc)
            return
        self._start_replicas(generation)
        self._start_inbound(generation)
        if self._settings.follow_up:
            self.start_poller(1.0, self._follow_up_tick, args=(generation,))
        self._start_pages(generation)
        self._start_handoffs(generation)
        self.start_poller(ALERT_SMS_TICK, self._alert_sms_tick, args=(generation,))
        self._start_health(generation)

    def _open_store(self, settings: Settings) -> Store:
        data_dir = Path(self.bot_config.BOT_DATA_DIR)
        store = open_store(
            data_dir,
            database_url=settings.database_url,
            password=settings.database_password or None,
            default_region=settings.default_region,
        )
        import_legacy(store, self, legacy_ledger_path(data_dir))
        return store

    def deactivate(self) -> None:
        forget_before_shutdown(self.name)
        self._generation += 1
        # stop_poller raises ValueError after super().deactivate() has cleared the pollers.
        for method, args, kwargs in list(self.current_pollers):
            try:
                self.stop_poller(method, args, kwargs)
            except ValueError:
                pass
        super().deactivate()
        self._stop_health()
        self._stop_pages()
        self._stop_inbound()
        self._stop_replicas()
        # A send that reached the carrier still gets its reply, audit entry and follow-up.
        with self._inflight_done:
            self._inflight_done.wait_for(lambda: self._inflight == 0, timeout=INFLIGHT_WAIT)
        for resource in (self._client, self._sms_store):
            if resource is not None:
                resource.close()
        self._client = None
        self._sms_store = None

    def _stop_before_shutdown(self) -> None:
        """On SIGTERM, before errbot disconnects from the chat: deactivate through errbot."""
        self._bot.plugin_manager.deactivate_plugin(self.name)

    def _load_settings(self) -> None:
        self._settings = None
        self._client = None
        if self.config is None and not has_env_configuration():
            self._settings_problem = "no configuration yet"
            return
        try:
            settings = parse_settings(self.config or {})
        except SettingsError as exc:
            self._settings_problem = str(exc)
            return
        self._settings = settings
        self._settings_problem = None
        self._rules = NumberRules(settings.default_region, settings.allowed_regions)
        self._client = AttSmsClient(
            settings.api_base_url,
            settings.client_id,
            settings.client_secret,
            settings.scope,
            read_timeout=settings.read_timeout,
            observer=self.metrics.observe_exchange,
        )

    def _not_configured(self) -> str:
        problem = f" ({echo(self._settings_problem, 200)})" if self._settings_problem else ""
        return (
            f"AttSms is not configured{problem}. Configure it with "
            f"`{self._bot.prefix}plugin config AttSms {{'API_BASE_URL': 'https://...', "
            f"'CLIENT_ID': '...', 'INBOX_ROUTES': {{'<registrationId>': '#room'}}}}` "
            f"(`{self._bot.prefix}plugin config AttSms` shows every key) and set "
            f"{SECRET_ENV} in the bot's environment."
        )

    def _begin_command(self) -> None:
        with self._inflight_done:
            self._inflight += 1

    def _end_command(self) -> None:
        with self._inflight_done:
            self._inflight -= 1
            self._inflight_done.notify_all()

    # ----------------------------------------------------------------- the index

    @botcmd
    def sms(self, msg: Any, args: str) -> str:
        """Lists the SMS commands."""
        word = args.split()[0] if args.split() else ""
        p = self._bot.prefix
        head = f"Unknown sms command '{echo(word, 40)}'. " if word else ""
        return (
            f"{head}Use {p}sms send <to>[,<to>...] <text> | {p}sms page <to>[,<to>...] <text> | "
            f"{p}sms ack <page> | {p}sms cancel <page> | {p}sms pages | {p}sms alerts | "
            f"{p}sms status <messageId> | {p}sms inbox [<registrationId>] | "
            f"{p}sms reply <handle> <text> | {p}sms contacts | {p}sms groups | "
            f"{p}sms rotations | {p}sms oncall [<rotation>] | {p}sms override <rotation> ... | "
            f"{p}sms optouts | {p}sms log [N] | {p}sms health | {p}sms replicas "
            f"(details: {p}help AttSms)"
        )

    # ----------------------------------------------------------------- wiring

    def _inbound_notes(self, messages: list[StoredInbound]) -> dict[str, str]:
        """Notes for the inbound posts (by message key): the pages each SMS reply
        acknowledged. Wired here, not by base-class order: inbound posting asks, pages answer."""
        return self._page_ack_notes(messages)

    # ----------------------------------------------------------------- small helpers

    @staticmethod
    def _user_of(msg: Any) -> str:
        frm = msg.frm
        person = getattr(frm, "person", None)
        return str(person or frm)

    @staticmethod
    def _reply_target(msg: Any) -> str:
        """Where an answer to ``msg`` goes: the room for a room message, else the person."""
        if getattr(msg, "is_group", False):
            return str(msg.to)
        return str(msg.frm)
