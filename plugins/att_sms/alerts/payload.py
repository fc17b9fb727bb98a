"""Alertmanager's webhook payload (version "4"), and Grafana's (the same shape plus extra
fields), parsed into typed dataclasses. Every refusal is one line saying what is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FIRING", "RESOLVED", "Alert", "Notification", "PayloadError", "parse_notification"]

FIRING, RESOLVED = "firing", "resolved"
_STATUSES = (FIRING, RESOLVED)
#: Alertmanager's webhook is version "4"; Grafana's webhook contact point says "1".
_VERSIONS = ("4", "1")
MAX_ALERTS = 10_000
MAX_GROUP_KEY = 4096


class PayloadError(ValueError):
    """The body is not JSON, or not an Alertmanager/Grafana notification (one-line reason)."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: str = ""
    ends_at: str = ""
    generator_url: str = ""


@dataclass(frozen=True)
class Notification:
    group_key: str
    status: str
    receiver: str
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    truncated_alerts: int = 0
    external_url: str = ""
    title: str = ""  # Grafana only

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == FIRING)

    @property
    def firing_fingerprints(self) -> tuple[str, ...]:
        """The firing alerts' fingerprints, sorted (the set that says whether the group changed)."""
        return tuple(sorted({a.fingerprint for a in self.firing}))


def parse_notification(body: bytes | str) -> Notification:
    """The notification in ``body``; ``PayloadError`` naming the first problem."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, not {_kind(data)}")
    version = data.get("version")
    if version not in _VERSIONS:
        raise PayloadError(
            f'"version" must be "4" (Alertmanager) or "1" (Grafana), got {_show(version)}'
        )
    group_key = data.get("groupKey")
    if not isinstance(group_key, str) or not group_key.strip():
        raise PayloadError('"groupKey" must be a non-empty string')
    if len(group_key) > MAX_GROUP_KEY:
        raise PayloadError(f'"groupKey" is longer than {MAX_GROUP_KEY} characters')
    status = _status(data.get("status"), '"status"')
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError(f'"alerts" must be a list, not {_kind(raw_alerts)}')
    if len(raw_alerts) > MAX_ALERTS:
        raise PayloadError(f'"alerts" has more than {MAX_ALERTS} entries')
    alerts = tuple(_alert(item, index) for index, item in enumerate(raw_alerts))
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError('"truncatedAlerts" must be a whole number >= 0')
    if status == FIRING and not any(a.status == FIRING for a in alerts):
        raise PayloadError('"status" is "firing" but no alert in "alerts" is firing')
    return Notification(
        group_key=group_key,
        status=status,
        receiver=_string(data.get("receiver"), '"receiver"'),
        alerts=alerts,
        group_labels=_labels(data.get("groupLabels"), '"groupLabels"'),
        common_labels=_labels(data.get("commonLabels"), '"commonLabels"'),
        common_annotations=_labels(data.get("commonAnnotations"), '"commonAnnotations"'),
        truncated_alerts=truncated,
        external_url=_string(data.get("externalURL"), '"externalURL"'),
        title=_string(data.get("title"), '"title"'),
    )


def _alert(item: Any, index: int) -> Alert:
    where = f'"alerts"[{index}]'
    if not isinstance(item, dict):
        raise PayloadError(f"{where} must be an object, not {_kind(item)}")
    labels = _labels(item.get("labels"), f"{where}.labels")
    fingerprint = item.get("fingerprint")
    if fingerprint in (None, ""):
        # Older senders leave it out: the sorted label set identifies the alert as well.
        fingerprint = json.dumps(sorted(labels.items()), separators=(",", ":"))
    if not isinstance(fingerprint, str):
        raise PayloadError(f"{where}.fingerprint must be a string")
    return Alert(
        status=_status(item.get("status"), f"{where}.status"),
        labels=labels,
        annotations=_labels(item.get("annotations"), f"{where}.annotations"),
        fingerprint=fingerprint,
        starts_at=_string(item.get("startsAt"), f"{where}.startsAt"),
        ends_at=_string(item.get("endsAt"), f"{where}.endsAt"),
        generator_url=_string(item.get("generatorURL"), f"{where}.generatorURL"),
    )


def _status(raw: Any, where: str) -> str:
    if raw not in _STATUSES:
        raise PayloadError(f'{where} must be "firing" or "resolved", got {_show(raw)}')
    return str(raw)


def _labels(raw: Any, where: str) -> dict[str, str]:
    """A label or annotation map (absent or null: empty); values must be strings."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PayloadError(f"{where} must be an object of strings, not {_kind(raw)}")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise PayloadError(f"{where}.{_show(key)} must be a string, not {_kind(value)}")
    return dict(raw)


def _string(raw: Any, where: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise PayloadError(f"{where} must be a string, not {_kind(raw)}")
    return raw


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True) if value is not None else "nothing"
    return text if len(text) <= 40 else text[:39] + "\u2026"
