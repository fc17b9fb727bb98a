"""The plugin's settings: parsed and checked from errbot's config dict and the environment.

errbot's default ``check_configuration`` rejects dict options whose keys differ from the
template (``INBOX_ROUTES`` always does), so every key is checked here instead, and each
refusal names the key. The client secret never lives in the config dict, which
``!plugin config`` prints into chat: it comes from ``ATT_CLIENT_SECRET`` only. The same goes
for the PostgreSQL password: ``DATABASE_URL`` carries none, the password comes from
``ATT_DATABASE_PASSWORD`` (or libpq's own ``PGPASSWORD``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from att_sms.alerts.routes import AlertRoute, RouteError, parse_alert_routes
from att_sms.chat.conversations import DEFAULT_THREAD_BROADCAST
from att_sms.rotations import RotationError, parse_zone
from att_sms.setting_values import (
    DATABASE_PASSWORD_ENV,
    SettingsError,
    ack_words,
    base_url,
    broadcast_kinds,
    database_url,
    flag,
    host_name,
    inbox_routes,
    number_between,
    one_of,
    poll_interval,
    region_code,
    region_codes,
    text_value,
    whole_number,
)
from att_sms.store.database_url import TLS_MODES

SECRET_ENV = "ATT_CLIENT_SECRET"
ENV_PREFIX = "ATT_"

DEFAULT_ACK_WORDS = ("ack", "ok", "yes", "y", "1")
SMART_CHARACTER_MODES = ("replace", "keep")
#: How replicas on one store run a command: see docs/DEPLOYMENT.md.
REPLICA_COMMAND_MODES = ("auto", "once", "all")
#: Billed segments x recipients per UTC day for the whole bot (0 turns the cap off): a
#: busy team's worst night is far below it, a send loop stops there (README, "Cost").
DEFAULT_DAILY_LIMIT = 1000

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

    database_tls = one_of("DATABASE_TLS", value("DATABASE_TLS", "verify"), TLS_MODES)
    return Settings(
        api_base_url=base_url(value("API_BASE_URL")),
        client_id=text_value("CLIENT_ID", value("CLIENT_ID"), required=True),
        client_secret=secret,
        scope=text_value("SCOPE", value("SCOPE", "SMS"), required=True),
        sender_address=text_value("SENDER_ADDRESS", value("SENDER_ADDRESS")) or None,
        default_region=region_code("DEFAULT_REGION", value("DEFAULT_REGION", "US")),
        allowed_regions=region_codes(value("ALLOWED_REGIONS")),
        inbox_routes=inbox_routes(value("INBOX_ROUTES", {})),
        poll_interval=poll_interval(value("POLL_INTERVAL", 30)),
        max_parts=whole_number("MAX_PARTS", value("MAX_PARTS", 4), low=1, high=10),
        combine_above=whole_number("COMBINE_ABOVE", value("COMBINE_ABOVE", 10), low=1, high=1000),
        follow_up=flag("FOLLOW_UP", value("FOLLOW_UP", True)),
        follow_up_limit=number_between(
            "FOLLOW_UP_LIMIT", value("FOLLOW_UP_LIMIT", 3600), low=1, high=7 * 86400
        ),
        rate_limit=whole_number("RATE_LIMIT", value("RATE_LIMIT", 0), low=0, high=10**6),
        daily_limit=whole_number(
            "DAILY_LIMIT", value("DAILY_LIMIT", DEFAULT_DAILY_LIMIT), low=0, high=10**7
        ),
        read_timeout=number_between("READ_TIMEOUT", value("READ_TIMEOUT", 10), low=0.1, high=300),
        max_recipients=whole_number("MAX_RECIPIENTS", value("MAX_RECIPIENTS", 10), low=1, high=50),
        **_paging(value),
        **_operability(value),
        **_rotation_settings(value),
        **_alerts(value),
        database_url=database_url(value("DATABASE_URL", ""), database_tls, env),
        database_tls=database_tls,
        database_password=env.get(DATABASE_PASSWORD_ENV, ""),
        **_threads(value),
    )


def _threads(value: Callable[..., Any]) -> dict[str, Any]:
    """SMS conversations as chat threads (Slack): see docs/SLACK.md."""
    return {
        "conversation_window": number_between(
            "CONVERSATION_WINDOW", value("CONVERSATION_WINDOW", 86400), low=0, high=30 * 86400
        ),
        "thread_broadcast": broadcast_kinds(value("THREAD_BROADCAST", DEFAULT_THREAD_BROADCAST)),
    }


def _paging(value: Callable[..., Any]) -> dict[str, Any]:
    """Escalation, acknowledgement, encoding and de-duplication settings."""
    return {
        "escalate_after": number_between(
            "ESCALATE_AFTER", value("ESCALATE_AFTER", 300), low=1, high=86400
        ),
        "escalate_rounds": whole_number(
            "ESCALATE_ROUNDS", value("ESCALATE_ROUNDS", 1), low=1, high=10
        ),
        "ack_words": ack_words(value("ACK_WORDS", DEFAULT_ACK_WORDS)),
        "smart_characters": one_of(
            "SMART_CHARACTERS", value("SMART_CHARACTERS", "replace"), SMART_CHARACTER_MODES
        ),
        "dedup_window": number_between(
            "DEDUP_WINDOW", value("DEDUP_WINDOW", 120), low=0, high=86400
        ),
    }


def _operability(value: Callable[..., Any]) -> dict[str, Any]:
    """Alerting in the room and the metrics endpoint."""
    return {
        "alert_after": number_between(
            "ALERT_AFTER", value("ALERT_AFTER", 600), low=0, high=7 * 86400
        ),
        "metrics_port": whole_number("METRICS_PORT", value("METRICS_PORT", 0), low=0, high=65535),
        "metrics_host": host_name("METRICS_HOST", value("METRICS_HOST", "127.0.0.1")),
        "replica_commands": one_of(
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
        "handoff_sms": flag("HANDOFF_SMS", value("HANDOFF_SMS", False)),
    }


def _alerts(value: Callable[..., Any]) -> dict[str, Any]:
    """Pages from alerts (docs/ALERTS.md) and the answers to acknowledgements by SMS."""
    try:
        routes = parse_alert_routes(value("ALERT_ROUTES", {}))
    except RouteError as exc:
        raise SettingsError("ALERT_ROUTES", str(exc)) from None
    return {
        "alert_routes": routes,
        "resolved_sms": flag("RESOLVED_SMS", value("RESOLVED_SMS", True)),
        "repage_after": number_between(
            "REPAGE_AFTER", value("REPAGE_AFTER", 14400), low=1, high=30 * 86400
        ),
        "ack_confirm": flag("ACK_CONFIRM", value("ACK_CONFIRM", True)),
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
