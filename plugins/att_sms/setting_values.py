"""One setting's value, checked: each function takes the raw value (from errbot's config dict
or an ``ATT_<KEY>`` variable) and returns it normalised, or raises SettingsError naming the
key. ``att_sms.settings`` puts them together into ``Settings``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from att_sms.carrier.transport import is_loopback_host
from att_sms.chat.conversations import BROADCAST_KINDS
from att_sms.sending.policy import OPT_IN_WORDS, OPT_OUT_WORDS
from att_sms.store.database_url import DatabaseUrlError, PasswordInUrlError, check_database_url

DATABASE_PASSWORD_ENV = "ATT_DATABASE_PASSWORD"
MAX_ACK_WORD = 20
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


class SettingsError(ValueError):
    """A configuration value is missing or wrong; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def base_url(raw: Any) -> str:
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


def poll_interval(raw: Any) -> float:
    seconds = number_between("POLL_INTERVAL", raw, low=0, high=86400)
    if 0 < seconds < 1:
        raise SettingsError(
            "POLL_INTERVAL", f"must be 0 (off) or at least 1 second, got {seconds:g}"
        )
    return seconds


def database_url(raw: Any, tls: str, env: Mapping[str, str]) -> str:
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


def ack_words(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple)):
        raise SettingsError("ACK_WORDS", f"must be a list of words, not {type(raw).__name__}")
    words: list[str] = []
    for item in raw:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise SettingsError("ACK_WORDS", f"{item!r} is not a word")
        word = str(item).strip().lower()
        if not word or len(word) > MAX_ACK_WORD or any(c.isspace() for c in word):
            raise SettingsError(
                "ACK_WORDS", f"{item!r} must be one word of 1 to {MAX_ACK_WORD} characters"
            )
        if word.upper() in OPT_OUT_WORDS | OPT_IN_WORDS:
            raise SettingsError(
                "ACK_WORDS", f"{word!r} is an opt-out/opt-in keyword and cannot acknowledge"
            )
        if word not in words:
            words.append(word)
    return tuple(words)


def one_of(key: str, raw: Any, choices: tuple[str, ...]) -> str:
    if isinstance(raw, str) and raw.strip().lower() in choices:
        return raw.strip().lower()
    raise SettingsError(key, f"must be one of {', '.join(choices)}, got {raw!r}")


def host_name(key: str, raw: Any) -> str:
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


def whole_number(key: str, raw: Any, *, low: int, high: int) -> int:
    return int(number_between(key, raw, low=low, high=high, integer=True))


def text_value(key: str, raw: Any, *, required: bool = False) -> str:
    if raw is None:
        if required:
            raise SettingsError(key, "missing")
        return ""
    if not isinstance(raw, str):
        raise SettingsError(key, f"must be a string, not {type(raw).__name__}")
    if required and not raw.strip():
        raise SettingsError(key, "must not be empty")
    return raw.strip()


def region_code(key: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise SettingsError(
            key, f"must be a region code string like 'US', not {type(raw).__name__}"
        )
    code = raw.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(key, f"unknown region code {raw!r} (use ISO codes like 'US', 'GB')")
    return code


def region_codes(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple, set, frozenset)):
        raise SettingsError(
            "ALLOWED_REGIONS", f"must be a list of region codes, not {type(raw).__name__}"
        )
    regions = frozenset(region_code("ALLOWED_REGIONS", item) for item in raw)
    return regions or None


def inbox_routes(raw: Any) -> dict[str, str]:
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


def number_between(key: str, raw: Any, *, low: float, high: float, integer: bool = False) -> float:
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


def flag(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise SettingsError(key, f"must be true or false, got {raw!r}")


def broadcast_kinds(raw: Any) -> frozenset[str]:
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
