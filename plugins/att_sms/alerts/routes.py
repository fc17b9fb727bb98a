"""``ALERT_ROUTES``: route name -> whom to page and which room to tell; and which route a
notification takes (the ``route`` query parameter, else the payload's ``receiver``, else
``default``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ROUTE", "AlertRoute", "RouteError", "parse_alert_routes", "select_route"]

DEFAULT_ROUTE = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class RouteError(ValueError):
    """A bad ``ALERT_ROUTES`` entry (one line naming it)."""


@dataclass(frozen=True)
class AlertRoute:
    name: str
    page: str  # targets as ``!sms page`` takes them, comma-separated
    room: str

    @property
    def targets(self) -> list[str]:
        return [t.strip() for t in self.page.split(",") if t.strip()]


def parse_alert_routes(raw: Any) -> dict[str, AlertRoute]:
    """``{"name": {"page": "alice,oncall", "room": "#ops"}}`` checked; ``RouteError`` if not."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RouteError(
            f"must be a dict of route -> {{'page': ..., 'room': ...}}, not {type(raw).__name__}"
        )
    routes: dict[str, AlertRoute] = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RouteError(
                f"route name {name!r} must be 1-64 letters, digits, '_', '.', ':' or '-'"
            )
        if not isinstance(entry, Mapping) or set(entry) != {"page", "room"}:
            raise RouteError(f"route {name!r} must be {{'page': '<targets>', 'room': '<room>'}}")
        page, room = entry["page"], entry["room"]
        if not isinstance(page, str) or not [t for t in page.split(",") if t.strip()]:
            raise RouteError(
                f"route {name!r}: 'page' must name whom to page (as !sms page takes it)"
            )
        if not isinstance(room, str) or not room.strip():
            raise RouteError(f"route {name!r}: 'room' must be a room identifier")
        routes[name] = AlertRoute(name, page.strip(), room.strip())
    return routes


def select_route(
    routes: Mapping[str, AlertRoute], query_route: str | None, receiver: str
) -> AlertRoute | None:
    """The route a notification takes, or None when that route is not configured."""
    name = selected_name(query_route, receiver)
    return routes.get(name)


def selected_name(query_route: str | None, receiver: str) -> str:
    if query_route:
        return query_route
    return receiver or DEFAULT_ROUTE
