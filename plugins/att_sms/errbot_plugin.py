"""The AttSms errbot plugin: the only module of the project that imports errbot.

It wires chat commands to the plain modules (arguments -> numbers/splitting -> client)
and the carrier inbox to the chat (client -> inbox ledger -> posts -> chat).
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# errbot loads this file by path; make the package beside it importable as ``att_sms``
# (a unique name: errbot already owns a module called ``plugins``).
_PLUGINS_DIR = str(Path(__file__).resolve().parent.parent)
if _PLUGINS_DIR not in sys.path:
    sys.path.insert(0, _PLUGINS_DIR)

from att_sms import audit, directory, policy  # noqa: E402
from att_sms.arguments import ArgumentError, single_word, split_recipients_and_text  # noqa: E402
from att_sms.client import AttSmsClient, DeliveryInfo  # noqa: E402
from att_sms.errors import (  # noqa: E402
    AttSmsError,
    CarrierError,
    NotFoundError,
    ProtocolError,
    SendUncertain,
)
from att_sms.fetcher import FetcherExited, FetcherProcess, drain_into  # noqa: E402
from att_sms.inbox import InboxLedger, StoredInbound, handle_for  # noqa: E402
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
from errbot import BotPlugin, ValidationException, botcmd  # noqa: E402
from errbot.backends.base import Room  # noqa: E402

log = logging.getLogger("errbot.plugins.AttSms")

STATUS_WORDS = {
    "DeliveredToTerminal": "delivered to the phone",
    "DeliveredToNetwork": "with the network, not yet on the phone",
    "MessageWaiting": "waiting: the phone is not reachable yet",
    "DeliveryImpossible": "could not be delivered",
}
FINAL_STATES = frozenset({"DeliveredToTerminal", "DeliveryImpossible"})
MAX_BACKOFF = 300.0
FETCH_REPLY_TIMEOUT = 300.0  # a fetch child that says nothing for this long is abandoned
POLL_LOCK_WAIT = 60.0
FOLLOW_UP_TICK = 1.0  # how often due follow-ups are looked at
FOLLOW_UP_FIRST = 2.0  # first status check after a send; then doubling
FOLLOW_UP_MAX_GAP = 300.0
OPT_NOTES = {
    "out": "opted out: sends to this number are refused until it texts START",
    "in": "opted back in",
}


class AttSms(BotPlugin):
    """Send SMS, check delivery and see the replies, through an AT&T-style SMS API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings: Settings | None = None
        self._settings_problem: str | None = None
        self._client: AttSmsClient | None = None
        self._rules: NumberRules | None = None
        self._ledger: InboxLedger | None = None
        self._fetcher: FetcherProcess | None = None
        self._fetch_in_process = False  # set when no fetch child can run here
        self._poll_lock = threading.Lock()  # one inbox fetch+post at a time
        self._generation = 0  # bumped by every (de)activation; stale poll chains stop
        self._failures = 0
        self._next_poll_at = 0.0
        self._route_problems: dict[str, str] = {}
        self._state_lock = threading.RLock()  # every read-modify-write of errbot storage

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
        self._fetch_in_process = False
        self._failures = 0
        self._next_poll_at = 0.0
        self._ledger = InboxLedger(self._ledger_path())
        self._load_settings()
        if self._settings is None:
            log.warning("AttSms is not configured: %s", self._settings_problem)
            return
        if self._settings.poll_interval > 0 and self._settings.inbox_routes:
            self.start_poller(self._settings.poll_interval, self._poll_tick, args=(generation,))
        if self._settings.follow_up:
            self.start_poller(FOLLOW_UP_TICK, self._follow_up_tick, args=(generation,))
        # Post what an earlier run stored but did not post, without waiting a whole interval.
        threading.Thread(
            target=self._flush_pending, args=(generation,), name="AttSms resume", daemon=True
        ).start()

    def deactivate(self) -> None:
        self._generation += 1
        # stop_poller raises ValueError after super().deactivate() has cleared the pollers.
        for method, args, kwargs in list(self.current_pollers):
            if method in (self._poll_tick, self._follow_up_tick):
                try:
                    self.stop_poller(method, args, kwargs)
                except ValueError:
                    pass
        super().deactivate()
        # Let a running poll finish its storage writes before the ledger closes.
        got_lock = self._poll_lock.acquire(timeout=POLL_LOCK_WAIT)
        try:
            if self._fetcher is not None:
                self._fetcher.close()
            if self._client is not None:
                self._client.close()
            if self._ledger is not None:
                self._ledger.close()
        finally:
            self._fetcher = None
            self._client = None
            self._ledger = None
            if got_lock:
                self._poll_lock.release()

    def _ledger_path(self) -> Path:
        return Path(self.bot_config.BOT_DATA_DIR) / "att_sms" / "inbox.sqlite3"

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
        """Lists the SMS commands."""
        word = args.split()[0] if args.split() else ""
        p = self._bot.prefix
        head = f"Unknown sms command {_short(word)!r}. " if word else ""
        return (
            f"{head}Use {p}sms send <to>[,<to>...] <text> | {p}sms status <messageId> | "
            f"{p}sms inbox [<registrationId>] | {p}sms reply <handle> <text> | "
            f"{p}sms contacts | {p}sms groups | {p}sms optouts | {p}sms log [N] "
            f"(details: {p}help AttSms)"
        )

    @botcmd
    def sms_send(self, msg: Any, args: str) -> str:
        """<to>[,<to>...] <text>: send an SMS to numbers, contacts or groups.

        Recipients are comma-separated; a number with spaces goes in double quotes:
        !sms send oncall,+12125551234,"(212) 555-0199" db-1 is down
        """
        if self._settings is None:
            return self._not_configured()
        try:
            tokens, text = split_recipients_and_text(args)
        except ArgumentError as exc:
            return f"Not sent: {exc}"
        return self._page(msg, tokens, text)

    @botcmd
    def sms_reply(self, msg: Any, args: str) -> str:
        """<handle> <text>: answer the sender of an inbound post (its handle, e.g. r7)."""
        if self._settings is None:
            return self._not_configured()
        handle, _, text = (args or "").strip().partition(" ")
        if not handle or not text.strip():
            return "usage: !sms reply <handle> <text> (the handle is shown in each inbound post)"
        sender = self._ledger.sender_for_handle(handle) if self._ledger else None
        if sender is None:
            return f"Not sent: no inbound SMS with handle {handle!r} (handles are shown in inbound posts)."
        return self._page(msg, [sender], text.strip().strip('"').strip() or text.strip())

    # ----------------------------------------------------------------- contacts and groups

    @botcmd
    def sms_contact_add(self, msg: Any, args: str) -> str:
        """<name> <number>: add or replace a contact."""
        if self._settings is None:
            return self._not_configured()
        name, _, number = (args or "").strip().partition(" ")
        if not name or not number.strip():
            return "usage: !sms contact add <name> <number>"
        try:
            with self._state("directory", directory.new_directory) as book:
                tel = directory.add_contact(
                    book, name, number.strip().strip('"'), self._rules_or_default()
                )
        except (directory.DirectoryError, NumberError) as exc:
            return f"Contact not saved: {exc}"
        return f"Contact {name.lower()} is {tel} ({display_number(tel)})."

    @botcmd
    def sms_contact_remove(self, msg: Any, args: str) -> str:
        """<name>: remove a contact (and from every group)."""
        if self._settings is None:
            return self._not_configured()
        try:
            name = single_word(args, "contact name", "usage: !sms contact remove <name>")
            with self._state("directory", directory.new_directory) as book:
                groups = directory.remove_contact(book, name)
        except (ArgumentError, directory.DirectoryError) as exc:
            return f"Nothing removed: {exc}"
        also = f" (also removed from {', '.join(groups)})" if groups else ""
        return f"Contact {name.lower()} removed{also}."

    @botcmd
    def sms_contacts(self, msg: Any, args: str) -> str:
        """Lists the contacts."""
        if self._settings is None:
            return self._not_configured()
        contacts = directory.list_contacts(self._read("directory", directory.new_directory))
        if not contacts:
            return "No contacts yet: !sms contact add <name> <number>"
        return "Contacts: " + "; ".join(f"{name} {display_number(tel)}" for name, tel in contacts)

    @botcmd
    def sms_group_add(self, msg: Any, args: str) -> str:
        """<group> <member>...: create a group or add contacts/numbers to it."""
        if self._settings is None:
            return self._not_configured()
        words = (args or "").split()
        if len(words) < 2:
            return "usage: !sms group add <group> <member>..."
        try:
            with self._state("directory", directory.new_directory) as book:
                members = directory.add_group(book, words[0], words[1:], self._rules_or_default())
        except (directory.DirectoryError, NumberError) as exc:
            return f"Group not changed: {exc}"
        return f"Group {words[0].lower()}: {', '.join(members)}."

    @botcmd
    def sms_group_remove(self, msg: Any, args: str) -> str:
        """<group> [<member>...]: remove members, or the whole group when none are named."""
        if self._settings is None:
            return self._not_configured()
        words = (args or "").split()
        if not words:
            return "usage: !sms group remove <group> [<member>...]"
        try:
            with self._state("directory", directory.new_directory) as book:
                directory.remove_group(
                    book, words[0], words[1:] or None, rules=self._rules_or_default()
                )
        except (directory.DirectoryError, NumberError) as exc:
            return f"Group not changed: {exc}"
        if len(words) == 1:
            return f"Group {words[0].lower()} removed."
        return f"Removed {', '.join(words[1:])} from group {words[0].lower()}."

    @botcmd
    def sms_groups(self, msg: Any, args: str) -> str:
        """Lists the groups and their members."""
        if self._settings is None:
            return self._not_configured()
        groups = directory.list_groups(self._read("directory", directory.new_directory))
        if not groups:
            return "No groups yet: !sms group add <group> <member>..."
        return "Groups: " + "; ".join(f"{g}: {', '.join(m) or '(empty)'}" for g, m in groups)

    @botcmd
    def sms_optouts(self, msg: Any, args: str) -> str:
        """Lists the numbers that opted out by texting STOP."""
        if self._settings is None:
            return self._not_configured()
        optouts = self._read("optouts", dict)
        if not optouts:
            return "No number has opted out."
        listed = "; ".join(
            f"{display_number(tel)} since {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(since))}"
            for tel, since in sorted(optouts.items())
        )
        return f"Opted out ({len(optouts)}): {listed}"

    @botcmd
    def sms_log(self, msg: Any, args: str) -> str:
        """[N]: the last N sends from the audit log (default 10)."""
        if self._settings is None:
            return self._not_configured()
        words = (args or "").split()
        try:
            count = int(words[0]) if words else 10
        except ValueError:
            return "usage: !sms log [N]"
        if len(words) > 1 or not 1 <= count <= 100:
            return "usage: !sms log [N] with N from 1 to 100"
        entries = audit.last(self._read("audit", list), count)
        if not entries:
            return "No sends recorded yet."
        return "\n".join(audit.format_entry(entry) for entry in entries)

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
            return f"No message {_short(args.strip())!r} at the carrier: {exc}"
        except AttSmsError as exc:
            return f"Status not available: {exc}"
        if not infos:
            return f"Message {message_id}: the carrier reports no recipients yet."
        return f"Message {message_id}: " + "; ".join(
            _status_line(info.address, info.status) for info in infos
        )

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
            return f"No route for registration {_short(wanted[0])!r} in INBOX_ROUTES (configured: {known})."
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

    def _page(self, msg: Any, tokens: list[str], text: str) -> str:
        """The send pipeline: resolve, opt-out, split, quota, send, audit, follow up."""
        settings, rules = self._settings, self._rules
        assert settings is not None and rules is not None
        try:
            parts = split_message(text, max_parts=settings.max_parts)
            recipients = directory.resolve(
                self._read("directory", directory.new_directory), tokens, rules
            )
        except (MessageError, directory.DirectoryError, NumberError) as exc:
            return f"Not sent: {exc}"
        allowed, refused = policy.split_opted_out(
            self._read("optouts", dict), [r.tel for r in recipients]
        )
        opted = (
            f" Not sent to {', '.join(refused)}: opted out (texted STOP; START opts back in)."
            if refused
            else ""
        )
        if not allowed:
            return f"Not sent: every recipient opted out ({', '.join(refused)})."
        user = self._user_of(msg)
        try:
            with self._state("quota", policy.new_quota_state) as quota:
                now = time.time()
                policy.check_quota(
                    quota, user, len(parts), now, settings.rate_limit, settings.daily_limit
                )
                policy.record_send(quota, user, len(parts), now)
        except policy.QuotaError as exc:
            return f"Not sent: {exc}"
        reply, ids, outcome = self._send_parts(allowed, parts)
        with self._state("audit", list, copier=list) as log_entries:
            audit.record(
                log_entries,
                who=user,
                when=time.time(),
                recipients=allowed,
                parts=len(parts),
                message_ids=ids,
                outcome=outcome,
            )
        if ids and settings.follow_up:
            self._start_follow_up(ids, allowed, self._reply_target(msg))
        return reply + opted

    def _send_parts(self, addresses: list[str], parts: list[str]) -> tuple[str, list[str], str]:
        """Send every part to all addresses; return the reply, the ids and the audit outcome."""
        client = self._client_or_raise()
        sender = self._settings.sender_address if self._settings else None
        ids: list[str] = []
        who = ", ".join(addresses)
        for index, part in enumerate(parts, start=1):
            try:
                result = client.send(addresses, part, sender)
            except AttSmsError as exc:
                reply = self._send_failure(exc, who, ids, index, len(parts))
                kind = "uncertain" if _maybe_sent(exc) else "failed"
                return reply, ids, f"{kind}: {exc}"
            ids.append(result.message_id)
        if len(ids) == 1:
            return f"Sent to {who}: message id {ids[0]}", ids, "sent"
        listed = ", ".join(f"part {i}/{len(ids)} {mid}" for i, mid in enumerate(ids, start=1))
        return f"Sent to {who} in {len(ids)} parts: message ids {listed}", ids, "sent"

    @staticmethod
    def _send_failure(exc: AttSmsError, who: str, ids: list[str], index: int, total: int) -> str:
        done = f" Parts already sent: {', '.join(ids)}." if ids else ""
        part = f" (part {index}/{total})" if total > 1 else ""
        if _maybe_sent(exc):
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

    # ----------------------------------------------------------------- storage

    @contextmanager
    def _state(
        self, key: str, default: Callable[[], Any], copier: Callable[[Any], Any] = copy.deepcopy
    ) -> Iterator[Any]:
        """Read-modify-write of one storage entry under the plugin's lock.

        errbot's ``self.mutable`` has no lock and saves nothing if its body raises; this
        works on a copy and saves it only when the body succeeded. ``copier`` may be a
        cheaper copy for entries whose items are never changed in place (the audit log).
        """
        with self._state_lock:
            try:
                value = copier(self[key])
            except KeyError:
                value = default()
            yield value
            self[key] = value
            self._sync_storage()

    def _read(
        self, key: str, default: Callable[[], Any], copier: Callable[[Any], Any] = copy.deepcopy
    ) -> Any:
        """A copy of one storage entry (``default()`` when absent)."""
        with self._state_lock:
            try:
                return copier(self[key])
            except KeyError:
                return default()

    def _sync_storage(self) -> None:
        # errbot's shelf only reaches the disk on close; flush it now so a killed bot
        # keeps what it was told (contacts, opt-outs, audit...).
        shelf = getattr(getattr(self, "_store", None), "shelf", None)
        if shelf is not None and hasattr(shelf, "sync"):
            shelf.sync()

    def _canonical(self, sender: str) -> str:
        """An inbound sender as ``tel:+E164`` when it parses (carriers may omit the ``+``)."""
        region = self._settings.default_region if self._settings else "US"
        try:
            return NumberRules(region).normalise(sender)
        except NumberError:
            return sender

    def _rules_or_default(self) -> NumberRules:
        return self._rules or NumberRules()

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

    # ----------------------------------------------------------------- delivery follow-up

    # Follow-up tasks are replaced, never changed in place, so their list is copied shallowly.

    def _start_follow_up(self, ids: list[str], addresses: list[str], target: str) -> None:
        now = time.time()
        with self._state("followups", list, copier=list) as tasks:
            for message_id in ids:
                tasks.append(
                    {
                        "message_id": message_id,
                        "target": target,
                        "addresses": list(addresses),
                        "started": now,
                        "next_at": now + FOLLOW_UP_FIRST,
                        "attempts": 0,
                        "last": [],
                    }
                )

    def _follow_up_tick(self, generation: int) -> None:
        """Check due follow-ups; post one update per message when final or given up."""
        if generation != self._generation or self._settings is None or self._client is None:
            return
        now = time.time()
        due = [t for t in self._read("followups", list, copier=list) if t["next_at"] <= now]
        if not due:
            return
        updated: dict[str, dict[str, Any] | None] = {}  # message id -> new task, None = done
        for task in due:
            try:
                updated[task["message_id"]] = self._follow_one(task, generation)
            except Exception:  # one bad task must not stop the others
                log.exception("AttSms follow-up of %s failed", task.get("message_id"))
        with self._state("followups", list, copier=list) as tasks:
            kept = [t for t in tasks if t["message_id"] not in updated]
            tasks[:] = kept + [t for t in updated.values() if t is not None]

    def _follow_one(self, task: dict[str, Any], generation: int) -> dict[str, Any] | None:
        """Check one message; post when it is final or given up. Returns the task to keep."""
        settings, client = self._settings, self._client
        if settings is None or client is None or generation != self._generation:
            return task
        infos: list[DeliveryInfo] | None = None
        problem = ""
        gone = False
        try:
            infos = client.delivery_status(task["message_id"])
        except NotFoundError as exc:
            problem, gone = f"the carrier does not know it ({exc})", True
        except AttSmsError as exc:
            problem = str(exc)
        now = time.time()
        task = dict(task)
        if infos:
            task["last"] = [[i.address, i.status] for i in infos]
        final = bool(infos) and all(i.status in FINAL_STATES for i in infos)
        if final or gone or now - task["started"] >= settings.follow_up_limit:
            self._post_to(task["target"], self._follow_up_text(task, final, problem, now))
            return None
        task["attempts"] += 1
        task["next_at"] = now + min(FOLLOW_UP_FIRST * 2 ** task["attempts"], FOLLOW_UP_MAX_GAP)
        return task

    @staticmethod
    def _follow_up_text(task: dict[str, Any], final: bool, problem: str, now: float) -> str:
        states = "; ".join(
            _status_line(address, status) for address, status in task.get("last", [])
        )
        if final:
            return f"Delivery of SMS {task['message_id']}: {states}"
        minutes = max(1, round((now - task["started"]) / 60))
        why = f": {problem}" if problem else ""
        last = f" Last known: {states}" if states else " No delivery status was seen."
        return f"Stopped following SMS {task['message_id']} after {minutes} min{why}.{last}"

    def _post_to(self, target: str, text: str) -> bool:
        """Post ``text`` to a stored room/person identifier string; False if it cannot."""
        try:
            self.send(self.build_identifier(target), text)
        except Exception as exc:  # ValueError, RoomDoesNotExistError, backend errors
            log.warning("AttSms could not post to %r: %s", target, exc)
            return False
        return True

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

    def _drain(self, client: AttSmsClient, ledger: InboxLedger, registration: str) -> int:
        """Fetch a registration's inbox into the ledger (caller holds the poll lock).

        The fetch runs in a child process (see ``att_sms.fetcher``) so that killing the
        bot cannot lose what the carrier already handed over; in-process if no child
        can be started.
        """
        fetcher = None if self._fetch_in_process else self._fetch_process()
        if fetcher is None:
            return drain_into(client, ledger, registration)
        try:
            return fetcher.fetch(registration)
        except FetcherExited as exc:
            # It could not even start (an interpreter without the requirements?): the
            # in-process fetch still works, without the protection against a killed bot.
            log.warning("AttSms fetches the inbox in-process from now on: %s", exc)
            self._fetcher, self._fetch_in_process = None, True
            return drain_into(client, ledger, registration)

    def _fetch_process(self) -> FetcherProcess | None:
        if self._fetcher is not None and self._fetcher.alive:
            return self._fetcher
        settings = self._settings
        if settings is None:
            return None
        try:
            self._fetcher = FetcherProcess(
                {
                    "base_url": settings.api_base_url,
                    "client_id": settings.client_id,
                    "client_secret": settings.client_secret,
                    "scope": settings.scope,
                    "read_timeout": settings.read_timeout,
                },
                self._ledger_path(),
                reply_timeout=FETCH_REPLY_TIMEOUT,
            )
        except OSError as exc:
            log.warning("AttSms fetches the inbox in-process (no child process: %s)", exc)
            self._fetcher = None
        return self._fetcher

    def _apply_opt_keywords(self, messages: list[StoredInbound]) -> dict[str, str]:
        """STOP/START from a sender opts them out/in; return a note per such message."""
        notes: dict[str, str] = {}
        keyworded = [(m, policy.opt_keyword(m.message)) for m in messages]
        keyworded = [(m, k) for m, k in keyworded if k]
        if not keyworded:
            return notes
        with self._state("optouts", dict) as optouts:
            for message, keyword in keyworded:
                try:
                    policy.apply_opt(
                        optouts, self._canonical(message.sender_address), keyword, time.time()
                    )
                except ValueError:
                    continue  # not a number we could ever send to
                notes[message.key] = OPT_NOTES[keyword]
        return notes

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
            if not _in_room(identifier):
                problems[registration] = f"the bot is not in {target} yet (joining); kept"
                continue
            notes = self._apply_opt_keywords(messages)
            book = self._read("directory", directory.new_directory)
            posts = build_posts(
                messages,
                combine_above=settings.combine_above,
                name_of=lambda tel, book=book: directory.name_of(book, self._canonical(tel)),
                handle_of=_handle_of,
                note_of=_note_lookup(notes),
            )
            for post in posts:
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


def _handle_of(message: StoredInbound) -> str:
    return handle_for(message.seq)


def _note_lookup(notes: dict[str, str]) -> Callable[[StoredInbound], str | None]:
    return lambda message: notes.get(message.key)


def _in_room(identifier: Any) -> bool:
    """False when ``identifier`` is a room the bot has not joined (it then asks to join).

    On IRC a post to a channel the bot is not in is silently dropped by the server, and
    right after a restart the bot posts before errbot has re-joined its rooms.
    """
    if not isinstance(identifier, Room):
        return True
    try:
        if identifier.joined:
            return True
        identifier.join()
    except Exception:  # the backend cannot tell: let the send itself decide
        return True
    return False


def _maybe_sent(exc: AttSmsError) -> bool:
    """True when a failed send may still have gone out (never tell the user "not sent")."""
    return isinstance(exc, (SendUncertain, ProtocolError))


def _short(text: str, limit: int = 60) -> str:
    """User input echoed back in a reply, cut so the reply stays one short line."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_line(address: str, status: str) -> str:
    """One recipient's delivery state, in words and by its API name."""
    return f"{display_number(address)}: {STATUS_WORDS.get(status, 'unknown state')} ({status})"
