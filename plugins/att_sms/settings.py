"""The plugin's settings: parsed and checked from errbot's config dict and the environment.

errbot's default ``check_configuration`` rejects dict options whose keys differ from the
template (``INBOX_ROUTES`` always does), so every key is checked here instead, and each
refusal names the key. The client secret never lives in the config dict, which
``!plugin config`` prints into chat: it comes from ``ATT_CLIENT_SECRET`` only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

SECRET_ENV = "ATT_CLIENT_SECRET"
ENV_PREFIX = "ATT_"

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
    "DAILY_LIMIT": 0,
    "READ_TIMEOUT": 10,
}

KNOWN_KEYS = frozenset(CONFIG_TEMPLATE)
SECRET_KEYS = frozenset({"CLIENT_SECRET", "SECRET", "ATT_CLIENT_SECRET", "PASSWORD"})


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
    daily_limit: int = 0
    read_timeout: float = 10.0


def parse_settings(
    config: Mapping[str, Any] | None,
    env: Mapping[str, str] | None = None,
    *,
    require_secret: bool = True,
) -> Settings:
    """Check ``config`` (errbot's dict, may be None) with ``ATT_<KEY>`` environment fallbacks.

    Raises SettingsError naming the first wrong key.
    """
    env = os.environ if env is None else env
    config = dict(config or {})
    if not isinstance(config, dict):
        raise SettingsError("config", "must be a dict")
    for key in config:
        if not isinstance(key, str):
            raise SettingsError(repr(key), "config keys must be strings")
        if key.upper() in SECRET_KEYS:
            raise SettingsError(
                key,
                f"never put the secret in the plugin config (it is shown by !plugin config); "
                f"set {SECRET_ENV} in the bot's environment",
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

    return Settings(
        api_base_url=_url(value("API_BASE_URL")),
        client_id=_text("CLIENT_ID", value("CLIENT_ID"), required=True),
        client_secret=secret,
        scope=_text("SCOPE", value("SCOPE", "SMS"), required=True),
        sender_address=_text("SENDER_ADDRESS", value("SENDER_ADDRESS")) or None,
        default_region=_region("DEFAULT_REGION", value("DEFAULT_REGION", "US")),
        allowed_regions=_regions(value("ALLOWED_REGIONS")),
        inbox_routes=_routes(value("INBOX_ROUTES", {})),
        poll_interval=_number("POLL_INTERVAL", value("POLL_INTERVAL", 30), low=0, high=86400),
        max_parts=int(_number("MAX_PARTS", value("MAX_PARTS", 4), low=1, high=10, integer=True)),
        combine_above=int(
            _number("COMBINE_ABOVE", value("COMBINE_ABOVE", 10), low=1, high=1000, integer=True)
        ),
        follow_up=_flag("FOLLOW_UP", value("FOLLOW_UP", True)),
        follow_up_limit=_number(
            "FOLLOW_UP_LIMIT", value("FOLLOW_UP_LIMIT", 3600), low=1, high=7 * 86400
        ),
        rate_limit=int(
            _number("RATE_LIMIT", value("RATE_LIMIT", 0), low=0, high=10**6, integer=True)
        ),
        daily_limit=int(
            _number("DAILY_LIMIT", value("DAILY_LIMIT", 0), low=0, high=10**7, integer=True)
        ),
        read_timeout=_number("READ_TIMEOUT", value("READ_TIMEOUT", 10), low=0.1, high=300),
    )


def has_env_configuration(env: Mapping[str, str] | None = None) -> bool:
    """True when the environment alone names a carrier (used when no config is stored)."""
    env = os.environ if env is None else env
    return bool(env.get(ENV_PREFIX + "API_BASE_URL") and env.get(ENV_PREFIX + "CLIENT_ID"))


def _decode_env(key: str, raw: str) -> Any:
    if key in ("INBOX_ROUTES", "ALLOWED_REGIONS") and raw.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SettingsError(key, f"{ENV_PREFIX}{key} is not valid JSON ({exc.msg})") from None
    if key == "ALLOWED_REGIONS":
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
    return raw.strip().rstrip("/")


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
    if isinstance(raw, str) and raw.strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    raise SettingsError(key, f"must be true or false, got {raw!r}")
