"""The plugin's settings: parsed and checked from errbot's config dict and the environment.

errbot's default ``check_configuration`` rejects dict options whose keys differ from the
template (``INBOX_ROUTES`` always does), so every key is checked here instead, and each
refusal names the key. The client secret never lives in the config dict, which
``!plugin config`` prints into chat: it comes from ``ATT_CLIENT_SECRET`` only. The same goes
for the PostgreSQL password: ``DATABASE_URL`` carries none, the password comes from
``ATT_DATABASE_PASSWORD`` (or libpq's own ``PGPASSWORD``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from att_sms.alerts.routes import AlertRoute, RouteError, parse_alert_routes
from att_sms.carrier.transport import is_loopback_host
from att_sms.chat.conversations import BROADCAST_KINDS, DEFAULT_THREAD_BROADCAST
from att_sms.rotations import RotationError, parse_zone
from att_sms.sending.policy import OPT_IN_WORDS, OPT_OUT_WORDS
from att_sms.store.database_url import (
    TLS_MODES,
    DatabaseUrlError,
    PasswordInUrlError,
    check_database_url,
)

SECRET_ENV = "ATT_CLIENT_SECRET"
DATABASE_PASSWORD_ENV = "ATT_DATABASE_PASSWORD"
ENV_PREFIX = "ATT_"

DEFAULT_ACK_WORDS = ("ack", "ok", "yes", "y", "1")
SMART_CHARACTER_MODES = ("replace", "keep")
#: How replicas on one store run a command: see docs/DEPLOYMENT.md.
REPLICA_COMMAND_MODES = ("auto", "once", "all")
_MAX_ACK_WORD = 20
#: Billed segments x recipients per UTC day for the whole bot (0 turns the cap off): a
#: busy team's worst night is far below it, a send loop stops there (README, "Cost").
DEFAULT_DAILY_LIMIT = 1000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)

#: What ``!plugin config AttSms`` shows as a starting point.
CONFIG_TEMPLATE: dict[str, Any] = {
    "API_BASE_URL": "http://127.0.0.1:8080",
    "CLIENT_ID": "your-client-id",
    "SCOPE": "SMS",
    "SENDER_ADDRESS": "",
    "DEFAULT_REGION": "US",
    "ALLOWED_REGIONS": [],
    "INBOX_ROUTES": {"your-registration-id": "#oncall"},
    "POLL_INTERVAL": 30,
    "MAX_PARTS": 4,
    "COMBINE_ABOVE": 10,
    "FOLLOW_UP": True,
    "FOLLOW_UP_LIMIT": 3600,
    "RATE_LIMIT": 0,
    "DAILY_LIMIT": DEFAULT_DAILY_LIMIT,
    "READ_TIMEOUT": 10,
    "MAX_RECIPIENTS": 10,
    "ESCALATE_AFTER": 300,
    "ESCALATE_ROUNDS": 1,
    "ACK_WORDS": list(DEFAULT_ACK_WORDS),
    "SMART_CHARACTERS": "replace",
    "DEDUP_WINDOW": 120,
    "ALERT_AFTER": 600,
    "METRICS_PORT": 0,
    "METRICS_HOST": "127.0.0.1",
    "DATABASE_URL": "",
    "DATABASE_TLS": "verify",
    "REPLICA_COMMANDS": "auto",
    "TIMEZONE": "UTC",
    "HANDOFF_SMS": False,
    "ALERT_ROUTES": {},
    "RESOLVED_SMS": True,
    "REPAGE_AFTER": 14400,
    "ACK_CONFIRM": True,
    "CONVERSATION_WINDOW": 86400,
    "THREAD_BROADCAST": list(DEFAULT_THREAD_BROADCAST),
}

KNOWN_KEYS = frozenset(CONFIG_TEMPLATE)
SECRET_KEYS = frozenset({"CLIENT_SECRET", "SECRET", "ATT_CLIENT_SECRET", "PASSWORD"})
DATABASE_SECRET_KEYS = frozenset({"DATABASE_PASSWORD", "ATT_DATABASE_PASSWORD", "PGPASSWORD"})
#: The alert endpoint's Bearer token (docs/ALERTS.md) comes from the environment only.
WEBHOOK_TOKEN_ENV = "ATT_WEBHOOK_TOKEN"
WEBHOOK_SECRET_KEYS = frozenset({"WEBHOOK_TOKEN", WEBHOOK_TOKEN_ENV})


class SettingsError(ValueError):
    """A configuration value is missing or wrong; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """Checked settings, ready for the client and the poller."""

    api_base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str = "SMS"
    sender_address: str | None = None
    default_region: str = "US"
    allowed_regions: frozenset[str] | None = None
    inbox_routes: dict[str, str] = field(default_factory=dict)
    poll_interval: float = 30.0
    max_parts: int = 4
    combine_above: int = 10
    follow_up: bool = True
    follow_up_limit: float = 3600.0
    rate_limit: int = 0
    daily_limit: int = DEFAULT_DAILY_LIMIT
    read_timeout: float = 10.0
    max_recipients: int = 10
    escalate_after: float = 300.0
    escalate_rounds: int = 1
    ack_words: tuple[str, ...] = DEFAULT_ACK_WORDS
    smart_characters: str = "replace"
    dedup_window: float = 120.0
    alert_after: float = 600.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    database_url: str = ""
    database_tls: str = "verify"
    database_password: str = field(default="", repr=False)
    replica_commands: str = "auto"
    timezone: str = "UTC"  # rotations' default zone (IANA name)
    handoff_sms: bool = False  # text the incoming person at each rotation handoff
    alert_routes: dict[str, AlertRoute] = field(default_factory=dict)
    resolved_sms: bool = True
    repage_after: float = 14400.0
    ack_confirm: bool = True
    conversation_window: float = 86400.0
    thread_broadcast: frozenset[str] = frozenset(DEFAULT_THREAD_BROADCAST)


def parse_settings(
    config: Mapping[str, Any] | None,
    env: Mapping[str, str] | None = None,
    *,
    require_secret: bool = True,
) -> Settings:
    """Check ``config`` (errbot's dict, may be None) with ``ATT_<KEY>`` environment fallbacks.

    Raises SettingsError naming the first wrong key.

    Longer than 50 lines on purpose: one line per key, in the template's order, each
    reading its own parser; split, it would only scatter the keys.
    """
    env = os.environ if env is None else env
    config = dict(config or {})
    if not isinstance(config, dict):
        raise SettingsError("config", "must be a dict")
    for key in config:
        if not isinstance(key, str):
            raise SettingsError(repr(key), "config keys must be strings")
        if key.upper() in SECRET_KEYS | DATABASE_SECRET_KEYS | WEBHOOK_SECRET_KEYS:
            where = DATABASE_PASSWORD_ENV if key.upper() in DATABASE_SECRET_KEYS else SECRET_ENV
            where = WEBHOOK_TOKEN_ENV if key.upper() in WEBHOOK_SECRET_KEYS else where
            raise SettingsError(
                key,
                f"never put the secret in the plugin config (it is shown by !plugin config); "
                f"set {where} in the bot's environment",
            )
        if key not in KNOWN_KEYS:
            raise SettingsError(key, f"unknown key; known keys: {', '.join(sorted(KNOWN_KEYS))}")

    def value(key: str, default: Any = None) -> Any:
        if key in config and config[key] not in (None, ""):
            return config[key]
        raw = env.get(ENV_PREFIX + key)
        if raw is None or raw == "":
            return default
        return _decode_env(key, raw)

    secret = env.get(SECRET_ENV, "")
    if not secret and require_secret:
        raise SettingsError(SECRET_ENV, "the client secret is not set in the bot's environment")

    database_tls = _choice("DATABASE_TLS", value("DATABASE_TLS", "verify"), TLS_MODES)
    return Settings(
        api_base_url=_url(value("API_BASE_URL")),
        client_id=_text("CLIENT_ID", value("CLIENT_ID"), required=True),
        client_secret=secret,
        scope=_text("SCOPE", value("SCOPE", "SMS"), required=True),
        sender_address=_text("SENDER_ADDRESS", value("SENDER_ADDRESS")) or None,
        default_region=_region("DEFAULT_REGION", value("DEFAULT_REGION", "US")),
        allowed_regions=_regions(value("ALLOWED_REGIONS")),
        inbox_routes=_routes(value("INBOX_ROUTES", {})),
        poll_interval=_poll_interval(value("POLL_INTERVAL", 30)),
        max_parts=_whole("MAX_PARTS", value("MAX_PARTS", 4), low=1, high=10),
        combine_above=_whole("COMBINE_ABOVE", value("COMBINE_ABOVE", 10), low=1, high=1000),
        follow_up=_flag("FOLLOW_UP", value("FOLLOW_UP", True)),
        follow_up_limit=_number(
            "FOLLOW_UP_LIMIT", value("FOLLOW_UP_LIMIT", 3600), low=1, high=7 * 86400
        ),
        rate_limit=_whole("RATE_LIMIT", value("RATE_LIMIT", 0), low=0, high=10**6),
        daily_limit=_whole(
            "DAILY_LIMIT", value("DAILY_LIMIT", DEFAULT_DAILY_LIMIT), low=0, high=10**7
        ),
        read_timeout=_number("READ_TIMEOUT", value("READ_TIMEOUT", 10), low=0.1, high=300),
        max_recipients=_whole("MAX_RECIPIENTS", value("MAX_RECIPIENTS", 10), low=1, high=50),
        **_paging(value),
        **_operability(value),
        **_rotation_settings(value),
        **_alerts(value),
        database_url=_database_url(value("DATABASE_URL", ""), database_tls, env),
        database_tls=database_tls,
        database_password=env.get(DATABASE_PASSWORD_ENV, ""),
        **_threads(value),
    )


def _threads(value: Callable[..., Any]) -> dict[str, Any]:
    """SMS conversations as chat threads (Slack): see docs/SLACK.md."""
    return {
        "conversation_window": _number(
            "CONVERSATION_WINDOW", value("CONVERSATION_WINDOW", 86400), low=0, high=30 * 86400
        ),
        "thread_broadcast": _broadcast(value("THREAD_BROADCAST", DEFAULT_THREAD_BROADCAST)),
    }


def _broadcast(raw: Any) -> frozenset[str]:
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple)):
        raise SettingsError("THREAD_BROADCAST", f"must be a list, not {type(raw).__name__}")
    kinds = [str(item).strip().lower() for item in raw if str(item).strip().lower() != "none"]
    unknown = [k for k in kinds if k not in BROADCAST_KINDS]
    if unknown:
        raise SettingsError(
            "THREAD_BROADCAST",
            f"unknown {unknown[0]!r}; choose from {', '.join(BROADCAST_KINDS)} (or [] for none)",
        )
    return frozenset(kinds)


def _paging(value: Callable[..., Any]) -> dict[str, Any]:
    """Escalation, acknowledgement, encoding and de-duplication settings."""
    return {
        "escalate_after": _number(
            "ESCALATE_AFTER", value("ESCALATE_AFTER", 300), low=1, high=86400
        ),
        "escalate_rounds": _whole("ESCALATE_ROUNDS", value("ESCALATE_ROUNDS", 1), low=1, high=10),
        "ack_words": _ack_words(value("ACK_WORDS", DEFAULT_ACK_WORDS)),
        "smart_characters": _choice(
            "SMART_CHARACTERS", value("SMART_CHARACTERS", "replace"), SMART_CHARACTER_MODES
        ),
        "dedup_window": _number("DEDUP_WINDOW", value("DEDUP_WINDOW", 120), low=0, high=86400),
    }


def _operability(value: Callable[..., Any]) -> dict[str, Any]:
    """Alerting in the room and the metrics endpoint."""
    return {
        "alert_after": _number("ALERT_AFTER", value("ALERT_AFTER", 600), low=0, high=7 * 86400),
        "metrics_port": _whole("METRICS_PORT", value("METRICS_PORT", 0), low=0, high=65535),
        "metrics_host": _host("METRICS_HOST", value("METRICS_HOST", "127.0.0.1")),
        "replica_commands": _choice(
            "REPLICA_COMMANDS", value("REPLICA_COMMANDS", "auto"), REPLICA_COMMAND_MODES
        ),
    }


def _rotation_settings(value: Callable[..., Any]) -> dict[str, Any]:
    """Rotations: the default zone and whether handoffs are texted."""
    zone = value("TIMEZONE", "UTC")
    if not isinstance(zone, str):
        raise SettingsError("TIMEZONE", f"must be an IANA zone name, not {type(zone).__name__}")
    try:
        parse_zone(zone)
    except RotationError as exc:
        raise SettingsError("TIMEZONE", str(exc)) from None
    return {
        "timezone": zone.strip(),
        "handoff_sms": _flag("HANDOFF_SMS", value("HANDOFF_SMS", False)),
    }


def _alerts(value: Callable[..., Any]) -> dict[str, Any]:
    """Pages from alerts (docs/ALERTS.md) and the answers to acknowledgements by SMS."""
    try:
        routes = parse_alert_routes(value("ALERT_ROUTES", {}))
    except RouteError as exc:
        raise SettingsError("ALERT_ROUTES", str(exc)) from None
    return {
        "alert_routes": routes,
        "resolved_sms": _flag("RESOLVED_SMS", value("RESOLVED_SMS", True)),
        "repage_after": _number(
            "REPAGE_AFTER", value("REPAGE_AFTER", 14400), low=1, high=30 * 86400
        ),
        "ack_confirm": _flag("ACK_CONFIRM", value("ACK_CONFIRM", True)),
    }


def has_env_configuration(env: Mapping[str, str] | None = None) -> bool:
    """True when the environment alone names a carrier (used when no config is stored)."""
    env = os.environ if env is None else env
    return bool(env.get(ENV_PREFIX + "API_BASE_URL") and env.get(ENV_PREFIX + "CLIENT_ID"))


_JSON_KEYS = ("INBOX_ROUTES", "ALERT_ROUTES", "ALLOWED_REGIONS", "ACK_WORDS", "THREAD_BROADCAST")


def _decode_env(key: str, raw: str) -> Any:
    if key in _JSON_KEYS and raw.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(key, f"{ENV_PREFIX}{key} is not valid JSON ({exc.msg})") from None
    if key in ("ALLOWED_REGIONS", "ACK_WORDS"):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _url(raw: Any) -> str:
    if raw is None:
        raise SettingsError(
            "API_BASE_URL", "missing: the carrier's base URL, e.g. http://127.0.0.1:8080"
        )
    if not isinstance(raw, str):
        raise SettingsError("API_BASE_URL", f"must be a string URL, not {type(raw).__name__}")
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError("API_BASE_URL", f"must be an http(s) URL, got {raw!r}")
    if parts.username or parts.password:
        raise SettingsError("API_BASE_URL", "must not carry credentials")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise SettingsError(
            "API_BASE_URL",
            f"plain http:// to {parts.hostname or ''!r} would send the client secret in clear; "
            "use https:// (http:// is allowed only to loopback: 127.0.0.0/8, ::1, localhost)",
        )
    return raw.strip().rstrip("/")


def _poll_interval(raw: Any) -> float:
    seconds = _number("POLL_INTERVAL", raw, low=0, high=86400)
    if 0 < seconds < 1:
        raise SettingsError(
            "POLL_INTERVAL", f"must be 0 (off) or at least 1 second, got {seconds:g}"
        )
    return seconds


def _database_url(raw: Any, tls: str, env: Mapping[str, str]) -> str:
    """``""`` (SQLite in the bot's data directory) or a password-less PostgreSQL URL, with
    TLS to any other machine (``att_sms.store.database_url``).

    The URL is never quoted back: it may hold the very password being refused.
    """
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str):
        raise SettingsError("DATABASE_URL", f"must be a string, not {type(raw).__name__}")
    url = raw.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise SettingsError(
            "DATABASE_URL",
            "must be a postgresql:// URL (leave it empty for SQLite in the bot's data directory)",
        )
    try:
        return check_database_url(url, tls, env)
    except PasswordInUrlError as exc:
        raise SettingsError(
            "DATABASE_URL",
            f"{exc}; remove it and set {DATABASE_PASSWORD_ENV} (or PGPASSWORD) in the bot's "
            "environment",
        ) from None
    except DatabaseUrlError as exc:
        raise SettingsError("DATABASE_URL", str(exc)) from None


def _ack_words(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple)):
        raise SettingsError("ACK_WORDS", f"must be a list of words, not {type(raw).__name__}")
    words: list[str] = []
    for item in raw:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise SettingsError("ACK_WORDS", f"{item!r} is not a word")
        word = str(item).strip().lower()
        if not word or len(word) > _MAX_ACK_WORD or any(c.isspace() for c in word):
            raise SettingsError(
                "ACK_WORDS", f"{item!r} must be one word of 1 to {_MAX_ACK_WORD} characters"
            )
        if word.upper() in OPT_OUT_WORDS | OPT_IN_WORDS:
            raise SettingsError(
                "ACK_WORDS", f"{word!r} is an opt-out/opt-in keyword and cannot acknowledge"
            )
        if word not in words:
            words.append(word)
    return tuple(words)


def _choice(key: str, raw: Any, choices: tuple[str, ...]) -> str:
    if isinstance(raw, str) and raw.strip().lower() in choices:
        return raw.strip().lower()
    raise SettingsError(key, f"must be one of {', '.join(choices)}, got {raw!r}")


def _host(key: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise SettingsError(key, f"must be a host name or IP address, not {type(raw).__name__}")
    host = raw.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise SettingsError(key, f"must be a host name or IP address (no port), got {raw!r}")
    return host.lower()


def _whole(key: str, raw: Any, *, low: int, high: int) -> int:
    return int(_number(key, raw, low=low, high=high, integer=True))


def _text(key: str, raw: Any, *, required: bool = False) -> str:
    if raw is None:
        if required:
            raise SettingsError(key, "missing")
        return ""
    if not isinstance(raw, str):
        raise SettingsError(key, f"must be a string, not {type(raw).__name__}")
    if required and not raw.strip():
        raise SettingsError(key, "must not be empty")
    return raw.strip()


def _region(key: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise SettingsError(
            key, f"must be a region code string like 'US', not {type(raw).__name__}"
        )
    code = raw.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(key, f"unknown region code {raw!r} (use ISO codes like 'US', 'GB')")
    return code


def _regions(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple, set, frozenset)):
        raise SettingsError(
            "ALLOWED_REGIONS", f"must be a list of region codes, not {type(raw).__name__}"
        )
    regions = frozenset(_region("ALLOWED_REGIONS", item) for item in raw)
    return regions or None


def _routes(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise SettingsError(
            "INBOX_ROUTES", f"must be a dict of registration id -> room, not {type(raw).__name__}"
        )
    routes: dict[str, str] = {}
    for registration, target in raw.items():
        if not isinstance(registration, str) or not registration.strip():
            raise SettingsError(
                "INBOX_ROUTES", f"registration id {registration!r} must be a non-empty string"
            )
        if not isinstance(target, str) or not target.strip():
            raise SettingsError(
                "INBOX_ROUTES",
                f"route of {registration!r} must be a room or person identifier string",
            )
        routes[registration.strip()] = target.strip()
    return routes


def _number(key: str, raw: Any, *, low: float, high: float, integer: bool = False) -> float:
    if isinstance(raw, str):
        try:
            raw = float(raw) if not integer else int(raw)
        except ValueError:
            raise SettingsError(key, f"must be a number, got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise SettingsError(key, f"must be a number, not {type(raw).__name__}")
    if integer and int(raw) != raw:
        raise SettingsError(key, f"must be a whole number, got {raw!r}")
    if not low <= raw <= high:
        raise SettingsError(key, f"must be between {low:g} and {high:g}, got {raw!r}")
    return float(raw)


def _flag(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise SettingsError(key, f"must be true or false, got {raw!r}")
