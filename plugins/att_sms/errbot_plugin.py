"""The AttSms errbot plugin: the only module of the project that imports errbot.

It wires chat commands to the plain modules (arguments -> numbers/splitting -> client)
and the carrier inbox to the chat (client -> inbox ledger -> posts -> chat).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

# errbot loads this file by path; make the package beside it importable as ``att_sms``
# (a unique name: errbot already owns a module called ``plugins``).
_PLUGINS_DIR = str(Path(__file__).resolve().parent.parent)
if _PLUGINS_DIR not in sys.path:
    sys.path.insert(0, _PLUGINS_DIR)

from errbot import BotPlugin, ValidationException, botcmd  # noqa: E402

from att_sms.arguments import ArgumentError, single_word, split_recipients_and_text  # noqa: E402
from att_sms.client import AttSmsClient  # noqa: E402
from att_sms.errors import AttSmsError, CarrierError, NotFoundError, SendUncertain  # noqa: E402
from att_sms.inbox import InboxLedger, StoredInbound  # noqa: E402
from att_sms.numbers import NumberError, NumberRules, display_number  # noqa: E402
from att_sms.posts import build_posts  # noqa: E402
from att_sms.settings import (  # noqa: E402
    CONFIG_TEMPLATE,
    SECRET_ENV,
    Settings,
    SettingsError,
    has_env_configuration,
    parse_settings,
)
from att_sms.splitting import MessageError, split_message  # noqa: E402

log = logging.getLogger("errbot.plugins.AttSms")

STATUS_WORDS = {
    "DeliveredToTerminal": "delivered to the phone",
    "DeliveredToNetwork": "with the network, not yet on the phone",
    "MessageWaiting": "waiting: the phone is not reachable yet",
    "DeliveryImpossible": "could not be delivered",
}
MAX_BACKOFF = 300.0
MAX_FETCHES_PER_ROUTE = 50
POLL_LOCK_WAIT = 60.0


class AttSms(BotPlugin):
    """Send SMS, check delivery and see the replies, through an AT&T-style SMS API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings: Settings | None = None
        self._settings_problem: str | None = None
        self._client: AttSmsClient | None = None
        self._rules: NumberRules | None = None
        self._ledger: InboxLedger | None = None
        self._poll_lock = threading.Lock()  # one inbox fetch+post at a time
        self._generation = 0  # bumped by every (de)activation; stale poll chains stop
        self._failures = 0
        self._next_poll_at = 0.0
        self._route_problems: dict[str, str] = {}

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
        super().activate()
        self._generation += 1
        generation = self._generation
        self._failures = 0
        self._next_poll_at = 0.0
        self._ledger = InboxLedger(Path(self.bot_config.BOT_DATA_DIR) / "att_sms" / "inbox.sqlite3")
        self._load_settings()
        if self._settings is None:
            log.warning("AttSms is not configured: %s", self._settings_problem)
            return
        if self._settings.poll_interval > 0 and self._settings.inbox_routes:
            self.start_poller(self._settings.poll_interval, self._poll_tick, args=(generation,))
        # Post what an earlier run stored but did not post, without waiting a whole interval.
        threading.Thread(
            target=self._flush_pending, args=(generation,), name="AttSms resume", daemon=True
        ).start()

    def deactivate(self) -> None:
        self._generation += 1
        # stop_poller raises ValueError after super().deactivate() has cleared the pollers.
        for method, args, kwargs in list(self.current_pollers):
            if method == self._poll_tick:
                try:
                    self.stop_poller(method, args, kwargs)
                except ValueError:
                    pass
        super().deactivate()
        # Let a running poll finish its storage writes before the ledger closes.
        got_lock = self._poll_lock.acquire(timeout=POLL_LOCK_WAIT)
        try:
            if self._client is not None:
                self._client.close()
            if self._ledger is not None:
                self._ledger.close()
        finally:
            self._client = None
            self._ledger = None
            if got_lock:
                self._poll_lock.release()

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
        )

    def _not_configured(self) -> str:
        problem = f" ({self._settings_problem})" if self._settings_problem else ""
        return (
            f"AttSms is not configured{problem}. Configure it with "
            f"`{self._bot.prefix}plugin config AttSms {{'API_BASE_URL': 'https://...', "
            f"'CLIENT_ID': '...', 'INBOX_ROUTES': {{'<registrationId>': '#room'}}}}` "
            f"(`{self._bot.prefix}plugin config AttSms` shows every key) and set "
            f"{SECRET_ENV} in the bot's environment."
        )

    # ----------------------------------------------------------------- commands

    @botcmd
    def sms(self, msg: Any, args: str) -> str:
        """Lists the SMS commands: send, status, inbox."""
        word = args.split()[0] if args.split() else ""
        prefix = self._bot.prefix
        head = f"Unknown sms command {word!r}. " if word else ""
        return (
            f"{head}Use {prefix}sms send <to>[,<to>...] <text> | {prefix}sms status <messageId> | "
            f"{prefix}sms inbox [<registrationId>]"
        )

    @botcmd
    def sms_send(self, msg: Any, args: str) -> str:
        """<to>[,<to>...] <text>: send an SMS (quote numbers with spaces).

        Recipients are numbers in any usual format, comma-separated; a number with spaces
        goes in double quotes: !sms send +12125551234,"(212) 555-0199" db-1 is down
        """
        if self._settings is None:
            return self._not_configured()
        try:
            raw_recipients, text = split_recipients_and_text(args)
            addresses = self._normalise_all(raw_recipients)
            parts = split_message(text, max_parts=self._settings.max_parts)
        except (ArgumentError, MessageError, NumberError) as exc:
            return f"Not sent: {exc}"
        return self._send_parts(addresses, parts)

    @botcmd
    def sms_status(self, msg: Any, args: str) -> str:
        """<messageId>: the delivery state of each recipient of a sent SMS."""
        if self._settings is None:
            return self._not_configured()
        try:
            message_id = single_word(args, "message id", "usage: !sms status <messageId>")
            infos = self._client_or_raise().delivery_status(message_id)
        except ArgumentError as exc:
            return str(exc)
        except NotFoundError as exc:
            return f"No message {args.strip()!r} at the carrier: {exc}"
        except AttSmsError as exc:
            return f"Status not available: {exc}"
        if not infos:
            return f"Message {message_id}: the carrier reports no recipients yet."
        lines = [
            f"{display_number(info.address)}: {STATUS_WORDS.get(info.status, 'unknown state')} ({info.status})"
            for info in infos
        ]
        return f"Message {message_id}: " + "; ".join(lines)

    @botcmd
    def sms_inbox(self, msg: Any, args: str) -> str:
        """[<registrationId>]: fetch inbound SMS now and post them to their rooms."""
        if self._settings is None:
            return self._not_configured()
        routes = self._settings.inbox_routes
        wanted = args.split()
        if len(wanted) > 1:
            return "usage: !sms inbox [<registrationId>]"
        if wanted and wanted[0] not in routes:
            known = ", ".join(sorted(routes)) or "none"
            return f"No route for registration {wanted[0]!r} in INBOX_ROUTES (configured: {known})."
        if not routes:
            return "No INBOX_ROUTES configured: nowhere to post inbound SMS."
        registrations = wanted or sorted(routes)
        if not self._poll_lock.acquire(timeout=POLL_LOCK_WAIT):
            return "The inbox is busy with another fetch; try again in a minute."
        try:
            fetched, errors, problems = self._fetch_and_post(registrations)
        except AttSmsError as exc:
            return f"Inbox not fetched: {exc}"
        finally:
            self._poll_lock.release()
        errors.update(problems)
        summary = ", ".join(f"{reg}: {fetched.get(reg, 0)} new" for reg in registrations)
        pending = self._ledger.counts()["pending"] if self._ledger else 0
        extra = f"; {pending} still waiting to be posted" if pending else ""
        problems = "".join(f"; {reg}: {err}" for reg, err in errors.items())
        total = sum(fetched.values())
        return f"Inbox: {total} message{'s' if total != 1 else ''} arrived ({summary}){extra}{problems}"

    # ----------------------------------------------------------------- sending

    def _normalise_all(self, raw_recipients: list[str]) -> list[str]:
        rules = self._rules
        assert rules is not None
        addresses: list[str] = []
        problems: list[str] = []
        for raw in raw_recipients:
            try:
                tel = rules.normalise(raw)
            except NumberError as exc:
                problems.append(str(exc))
                continue
            if tel not in addresses:
                addresses.append(tel)
        if problems:
            raise ArgumentError("; ".join(problems))
        return addresses

    def _send_parts(self, addresses: list[str], parts: list[str]) -> str:
        client = self._client_or_raise()
        sender = self._settings.sender_address if self._settings else None
        ids: list[str] = []
        who = ", ".join(addresses)
        for index, part in enumerate(parts, start=1):
            try:
                result = client.send(addresses, part, sender)
            except AttSmsError as exc:
                return self._send_failure(exc, who, ids, index, len(parts))
            ids.append(result.message_id)
        if len(ids) == 1:
            return f"Sent to {who}: message id {ids[0]}"
        listed = ", ".join(f"part {i}/{len(ids)} {mid}" for i, mid in enumerate(ids, start=1))
        return f"Sent to {who} in {len(ids)} parts: message ids {listed}"

    @staticmethod
    def _send_failure(exc: AttSmsError, who: str, ids: list[str], index: int, total: int) -> str:
        done = f" Parts already sent: {', '.join(ids)}." if ids else ""
        part = f" (part {index}/{total})" if total > 1 else ""
        if isinstance(exc, SendUncertain):
            return (
                f"Send to {who}{part} may or may not have gone out: {exc}. "
                f"Do not resend blindly: check the carrier first.{done}"
            )
        if isinstance(exc, CarrierError):
            return f"Not sent to {who}{part}: carrier refused it: {exc}.{done}"
        return f"Not sent to {who}{part}: {exc}.{done}"

    def _client_or_raise(self) -> AttSmsClient:
        if self._client is None:
            raise AttSmsError("the plugin is not active")
        return self._client

    # ----------------------------------------------------------------- inbound

    def _poll_tick(self, generation: int) -> None:
        """One poller run: fetch every route, store, post. Never raises."""
        if generation != self._generation or self._settings is None:
            return
        if time.monotonic() < self._next_poll_at:
            return
        if not self._poll_lock.acquire(blocking=False):
            return  # a slow poll or an !sms inbox is still running
        try:
            if generation != self._generation:
                return
            _, errors, _ = self._fetch_and_post(sorted(self._settings.inbox_routes))
        except Exception as exc:  # the poller must survive anything
            errors = {"*": f"{type(exc).__name__}: {exc}"}
            log.exception("AttSms poll failed unexpectedly")
        finally:
            self._poll_lock.release()
        self._schedule_after(errors)

    def _schedule_after(self, errors: dict[str, str]) -> None:
        if not errors:
            self._failures = 0
            self._next_poll_at = 0.0
            return
        self._failures += 1
        interval = self._settings.poll_interval if self._settings else 30.0
        delay = min(MAX_BACKOFF, interval * 2 ** min(self._failures, 10))
        self._next_poll_at = time.monotonic() + delay
        log.warning(
            "AttSms poll failed (%d in a row), next try in %.0f s: %s",
            self._failures,
            delay,
            "; ".join(f"{reg}: {err}" for reg, err in errors.items()),
        )

    def _flush_pending(self, generation: int) -> None:
        """Post what was stored but not posted (after a restart)."""
        if not self._poll_lock.acquire(timeout=POLL_LOCK_WAIT):
            return
        try:
            if generation == self._generation and self._ledger is not None:
                self._post_pending()
        except Exception:
            log.exception("AttSms could not post stored inbound messages")
        finally:
            self._poll_lock.release()

    def _fetch_and_post(
        self, registrations: list[str]
    ) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
        """Fetch each registration's inbox into the ledger, then post everything pending.

        Caller holds the poll lock. Returns new messages per registration, fetch errors
        and posting problems (a room that cannot be reached keeps its messages pending).
        """
        client, ledger = self._client_or_raise(), self._ledger
        assert ledger is not None
        fetched: dict[str, int] = {}
        errors: dict[str, str] = {}
        for registration in registrations:
            try:
                fetched[registration] = self._drain(client, ledger, registration)
            except AttSmsError as exc:
                errors[registration] = str(exc)
        return fetched, errors, self._post_pending()

    @staticmethod
    def _drain(client: AttSmsClient, ledger: InboxLedger, registration: str) -> int:
        new = 0
        for _ in range(MAX_FETCHES_PER_ROUTE):
            batch = client.fetch_inbound(registration)
            # Stored before anything is posted: the carrier has already forgotten them.
            new += len(ledger.record_fetched(registration, batch.messages))
            if not batch.messages or not batch.pending:
                break
        return new

    def _post_pending(self) -> dict[str, str]:
        """Post every pending message to its route; mark each post done. Returns problems."""
        ledger, settings = self._ledger, self._settings
        if ledger is None or settings is None:
            return {}
        problems: dict[str, str] = {}
        by_registration: dict[str, list[StoredInbound]] = {}
        for message in ledger.pending():
            by_registration.setdefault(message.registration_id, []).append(message)
        for registration, messages in by_registration.items():
            target = settings.inbox_routes.get(registration)
            if target is None:
                problems[registration] = "no route in INBOX_ROUTES; kept until one is configured"
                continue
            try:
                identifier = self.build_identifier(target)
            except Exception as exc:  # ValueError and backend-specific errors
                problems[registration] = f"cannot post to {target!r}: {exc}"
                continue
            for post in build_posts(messages, combine_above=settings.combine_above):
                try:
                    self.send(identifier, post.text)
                except Exception as exc:  # RoomDoesNotExistError, network errors of the backend
                    problems[registration] = f"cannot post to {target!r}: {exc}"
                    break
                ledger.mark_posted(post.keys)
        for registration, problem in problems.items():
            if self._route_problems.get(registration) != problem:
                log.warning("AttSms inbound for %s not posted: %s", registration, problem)
        self._route_problems = problems
        return problems
