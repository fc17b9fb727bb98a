"""Alertmanager-shaped notifications for the alert tests."""

from __future__ import annotations

import json
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def alert(
    name: str = "DiskFull", status: str = "firing", fp: str | None = None, **labels: str
) -> dict[str, Any]:
    labels = {"alertname": name, **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on {labels.get('instance', 'db1')}"},
        "startsAt": "2026-12-06T20:00:00Z",
        "endsAt": ZERO_TIME if status == "firing" else "2026-12-06T21:00:00Z",
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=up",
        "fingerprint": fp or f"fp-{name}-{labels.get('instance', 'db1')}",
    }


def notification(
    *alerts: dict[str, Any],
    group_key: str = '{}:{alertname="DiskFull"}',
    status: str | None = None,
    receiver: str = "ops",
    summary: str | None = "Disk full on db1",
    truncated: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    alerts = alerts or (alert(),)
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {"summary": summary} if summary else {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": list(alerts),
        **extra,
    }


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
