"""The AttSms errbot plugin: configuration, activation, scheduling and the commands.

Each command here is a thin wrapper whose docstring is its ``!help``; the work is done by
one plain class per area under ``att_sms.commands`` (sending, pages, alerts, rotations,
directory, health, inbound polling, follow-ups, replicas, threads), built over one
``Runtime`` at each activation by ``att_sms.commands.wiring``. Everything they keep is in
one store (``att_sms.store``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
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

from errbot import BotPlugin, ValidationException, botcmd, cmdfilter, webhook  # noqa: E402

from att_sms.chat.conversation_posting import poster_id  # noqa: E402
from att_sms.commands import wiring  # noqa: E402
from att_sms.commands.activation import (  # noqa: E402
    not_configured_text,
    open_runtime,
    read_settings,
)
from att_sms.commands.alerts import webhook_unconfigured  # noqa: E402
from att_sms.commands.index import command_index  # noqa: E402
from att_sms.commands.replicas import CommandOnce, put_filter_first  # noqa: E402
from att_sms.commands.runtime import Activations, InFlight  # noqa: E402
from att_sms.commands.wiring import Locks, Services  # noqa: E402
from att_sms.ops.metrics import Metrics  # noqa: E402
from att_sms.ops.sigterm import (  # noqa: E402
    NOT_MAIN_THREAD,
    forget_before_shutdown,
    install_sigterm_shutdown,
    run_before_shutdown,
)
from att_sms.setting_values import SettingsError  # noqa: E402
from att_sms.settings import CONFIG_TEMPLATE, Settings, parse_settings  # noqa: E402
from att_sms.store import StoreError  # noqa: E402

log = logging.getLogger("errbot.plugins.AttSms")

#: How long deactivation waits for commands and poller runs that are talking to the carrier.
INFLIGHT_WAIT = 30.0

Command = Callable[[Services], str | None]


class AttSms(BotPlugin):
    """Send SMS, check delivery and see the replies, through an AT&T-style SMS API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = Metrics()
        self._settings: Settings | None = None  # the configuration as last parsed
        self._settings_problem: str | None = None
        self._services: Services | None = None  # the current activation's parts
        self._activations = Activations()
        self._inflight = InFlight()
        self._locks = Locks(pages=threading.Lock(), poll=threading.Lock())
        self._thread_holder = poster_id(str(getattr(self.bot_config, "BOT_DATA_DIR", "") or "."))
        # True while activate() runs: errbot already routes commands to the plugin then, and
        # a command that arrives meanwhile waits for it (commands/replicas.py).
        self._starting = False
        self._command_once = CommandOnce(
            self._bot,
            is_own_command=self._is_own_command,
            replicas=lambda: self._services.replicas if self._services else None,
            starting=lambda: self._starting,
            database_configured=lambda: bool(self._settings and self._settings.database_url),
            replica_commands=lambda: self._settings.replica_commands if self._settings else "auto",
        )
        # errbot builds plugins in its main thread, where a signal handler can be installed.
        self._sigterm = install_sigterm_shutdown(getattr(self.bot_config, "BACKEND", ""))

    @property
    def services(self) -> Services | None:
        """The current activation's parts (None while not active): for operators and tests."""
        return self._services

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

    # ----------------------------------------------------------------- activation

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
        generation = self._activations.bump()
        self._settings, self._settings_problem = read_settings(self.config)
        if self._settings is None:
            log.warning("AttSms is not configured: %s", self._settings_problem)
            return
        try:
            runtime = open_runtime(
                self._settings,
                generation=generation,
                activations=self._activations,
                metrics=self.metrics,
                bot=self._bot,
                build_identifier=self.build_identifier,
                data_dir=str(self.bot_config.BOT_DATA_DIR),
                plugin_storage=self,
            )
        except StoreError as exc:
            self._settings, self._settings_problem = None, str(exc)
            log.error("AttSms cannot open its store: %s", exc)
            return
        services = wiring.build_services(
            runtime,
            locks=self._locks,
            thread_holder=self._thread_holder,
            run_pages_soon=lambda: self._in_background(generation, self._pages_tick),
        )
        self._services = services
        wiring.start(services, lambda every, tick: self._schedule(generation, every, tick))
        if services.replicas.replicated:
            put_filter_first(self._bot, self._replica_command_filter)

    def deactivate(self) -> None:
        forget_before_shutdown(self.name)
        self._activations.bump()
        # stop_poller raises ValueError after super().deactivate() has cleared the pollers.
        for method, args, kwargs in list(self.current_pollers):
            try:
                self.stop_poller(method, args, kwargs)
            except ValueError:
                pass
        super().deactivate()
        services, self._services = self._services, None
        if services is None:
            return
        wiring.stop(services)
        # A send that reached the carrier still gets its reply, audit entry and follow-up.
        self._inflight.wait_idle(INFLIGHT_WAIT)
        services.runtime.client.close()
        services.runtime.store.close()

    def _stop_before_shutdown(self) -> None:
        """On SIGTERM, before errbot disconnects from the chat: deactivate through errbot."""
        self._bot.plugin_manager.deactivate_plugin(self.name)

    # ----------------------------------------------------------------- running the parts

    def _command(self, run: Command) -> str | None:
        """Run a command on the current activation's parts; deactivation waits for it."""
        with self._inflight.running():
            services = self._services
            if services is None:
                return self._not_active()
            return run(services)

    def _schedule(self, generation: int, every: float, tick: Callable[[], None]) -> None:
        self.start_poller(every, self._tick, args=(generation, tick))

    def _tick(self, generation: int, tick: Callable[[], None]) -> None:
        """One poller run of ``generation`` (skipped once another activation began)."""
        if not self._activations.is_current(generation):
            return
        with self._inflight.running():
            tick()

    def _in_background(self, generation: int, tick: Callable[[], None]) -> None:
        threading.Thread(
            target=self._tick, args=(generation, tick), name="AttSms now", daemon=True
        ).start()

    def _pages_tick(self) -> None:
        """The page poller's run, now (a page an alert just opened sends its first SMS)."""
        services = self._services
        if services is not None:
            services.pages.tick()

    def _is_own_command(self, cmd: Any) -> bool:
        """True when errbot's command ``cmd`` is one of this plugin's."""
        if not isinstance(cmd, str):
            return False
        method = self._bot.commands.get(cmd) or self._bot.re_commands.get(cmd)
        return getattr(method, "__self__", None) is self

    def _not_active(self) -> str:
        if self._settings is None:
            return self._not_configured()
        return "Nothing done: the plugin is being reconfigured; try again in a moment."

    def _not_configured(self) -> str:
        return not_configured_text(self._bot.prefix, self._settings_problem)

    # ----------------------------------------------------------------- the index

    @botcmd
    def sms(self, msg: Any, args: str) -> str:
        """Lists the SMS commands."""
        return command_index(self._bot.prefix, args)

    # ----------------------------------------------------------------- sending

    @botcmd
    def sms_send(self, msg: Any, args: str) -> str | None:
        """[--again] <to>[,<to>...] <text>: send an SMS to numbers, contacts or groups.

        Recipients are comma-separated; a number with spaces goes in double quotes:
        !sms send oncall,+12125551234,"(212) 555-0199" db-1 is down
        The same text to the same people within DEDUP_WINDOW is not sent twice unless
        --again is given.
        """
        return self._command(lambda s: s.sending.send(msg, args))

    @botcmd
    def sms_reply(self, msg: Any, args: str) -> str | None:
        """<handle> <text>: answer the sender of an inbound post (its handle, e.g. r7).

        On Slack, typed inside an SMS conversation's thread: !sms reply <text> answers it.
        """
        return self._command(lambda s: s.sending.reply(msg, args))

    @botcmd
    def sms_status(self, msg: Any, args: str) -> str | None:
        """<messageId>: the delivery state of each recipient of a sent SMS."""
        return self._command(lambda s: s.sending.status(msg, args))

    @botcmd
    def sms_log(self, msg: Any, args: str) -> str | None:
        """[N]: the last N sends from the audit log (default 10)."""
        return self._command(lambda s: s.sending.log(msg, args))

    @botcmd
    def sms_inbox(self, msg: Any, args: str) -> str | None:
        """[<registrationId>]: fetch inbound SMS now and post them to their rooms."""
        return self._command(lambda s: s.inbound.inbox(msg, args))

    # ----------------------------------------------------------------- pages and alerts

    @botcmd
    def sms_page(self, msg: Any, args: str) -> str | None:
        """[--again] <to>[,<to>...] <text>: page each in turn until one acknowledges.

        Recipients as in !sms send (numbers, contacts, groups in the order added). Each
        waits ESCALATE_AFTER seconds for an acknowledgement (an SMS reply such as ACK or OK,
        or !sms ack) before the next is paged. The same page within DEDUP_WINDOW is refused
        unless --again is given.
        """
        return self._command(lambda s: s.pages.page(msg, args))

    @botcmd
    def sms_ack(self, msg: Any, args: str) -> str | None:
        """<page>: acknowledge a page from chat (P7); nobody else is paged."""
        return self._command(lambda s: s.pages.ack(msg, args))

    @botcmd
    def sms_cancel(self, msg: Any, args: str) -> str | None:
        """<page>: stop a page (P7); nobody else is paged."""
        return self._command(lambda s: s.pages.cancel(msg, args))

    @botcmd
    def sms_pages(self, msg: Any, args: str) -> str | None:
        """The open pages: step, who was paged when, what comes next, the text."""
        return self._command(lambda s: s.pages.pages(msg, args))

    @botcmd
    def sms_alerts(self, msg: Any, args: str) -> str | None:
        """The alert groups still firing, with their pages (from Alertmanager or Grafana)."""
        return self._command(lambda s: s.alerts.alerts(msg, args))

    @webhook("/att_sms/alerts", methods=("POST",), raw=True)
    def att_sms_alerts(self, request: Any) -> tuple[str, int, dict[str, str]]:
        """Alertmanager's / Grafana's webhook (see docs/ALERTS.md)."""
        with self._inflight.running():
            services = self._services
            if services is None:  # the same checks as when active, then 503: Alertmanager retries
                return webhook_unconfigured(request)
            return services.alerts.webhook(request)

    # ----------------------------------------------------------------- rotations

    @botcmd
    def sms_rotation_add(self, msg: Any, args: str) -> str | None:
        """<name> <member>[,<member>...] [--shift 1w] [--start YYYY-MM-DDTHH:MM] [--tz Zone] [--room #room]

        Creates or replaces a rotation: members (contacts or numbers) take turns, one shift
        each, handing off on the zone's wall clock (default: weekly, next Monday 09:00,
        TIMEZONE, this room). Its name is a recipient for !sms send and !sms page.
        """
        return self._command(lambda s: s.rotations.rotation_add(msg, args))

    @botcmd
    def sms_rotation_remove(self, msg: Any, args: str) -> str | None:
        """<name>: removes a rotation and its overrides."""
        return self._command(lambda s: s.rotations.rotation_remove(msg, args))

    @botcmd
    def sms_rotations(self, msg: Any, args: str) -> str | None:
        """Lists the rotations: who is on call, until when (in the rotation's zone), who is next."""
        return self._command(lambda s: s.rotations.rotations(msg, args))

    @botcmd
    def sms_oncall(self, msg: Any, args: str) -> str | None:
        """[<rotation>]: who is on call now (overrides included), until when, and who is next."""
        return self._command(lambda s: s.rotations.oncall(msg, args))

    @botcmd
    def sms_override(self, msg: Any, args: str) -> str | None:
        """<rotation> <member> <duration|--until YYYY-MM-DDTHH:MM>: puts a member on call from now.

        The newest override wins over older ones and over the rotation.
        """
        return self._command(lambda s: s.rotations.override(msg, args))

    @botcmd
    def sms_override_remove(self, msg: Any, args: str) -> str | None:
        """<rotation>: ends the override in force now."""
        return self._command(lambda s: s.rotations.override_remove(msg, args))

    # ----------------------------------------------------------------- the address book

    @botcmd
    def sms_contact_add(self, msg: Any, args: str) -> str | None:
        """<name> <number>: add or replace a contact."""
        return self._command(lambda s: s.directory.contact_add(msg, args))

    @botcmd
    def sms_contact_remove(self, msg: Any, args: str) -> str | None:
        """<name>: remove a contact (and from every group)."""
        return self._command(lambda s: s.directory.contact_remove(msg, args))

    @botcmd
    def sms_contacts(self, msg: Any, args: str) -> str | None:
        """Lists the contacts."""
        return self._command(lambda s: s.directory.contacts(msg, args))

    @botcmd
    def sms_group_add(self, msg: Any, args: str) -> str | None:
        """<group> <member>...: create a group or add contacts/numbers to it."""
        return self._command(lambda s: s.directory.group_add(msg, args))

    @botcmd
    def sms_group_remove(self, msg: Any, args: str) -> str | None:
        """<group> [<member>...]: remove members, or the whole group when none are named."""
        return self._command(lambda s: s.directory.group_remove(msg, args))

    @botcmd
    def sms_groups(self, msg: Any, args: str) -> str | None:
        """Lists the groups and their members."""
        return self._command(lambda s: s.directory.groups(msg, args))

    @botcmd
    def sms_optouts(self, msg: Any, args: str) -> str | None:
        """Lists the numbers that opted out by texting STOP."""
        return self._command(lambda s: s.directory.optouts(msg, args))

    # ----------------------------------------------------------------- operations

    @botcmd
    def sms_health(self, msg: Any, args: str) -> str | None:
        """The bot's health at a glance, problems first: carrier, token, polls, posts, sends, store."""
        return self._command(lambda s: s.health.health(msg, args))

    @botcmd
    def sms_replicas(self, msg: Any, args: str) -> str | None:
        """Which replica does the background work (inbox, follow-ups, pages) and how commands run."""
        return self._command(lambda s: s.replicas.replicas(msg, args))

    @cmdfilter
    def _replica_command_filter(
        self, msg: Any, cmd: Any, args: Any, dry_run: bool
    ) -> tuple[Any, Any, Any]:
        """Let this replica run an AttSms command only if no other replica runs it."""
        return self._command_once.filter(msg, cmd, args, dry_run)
