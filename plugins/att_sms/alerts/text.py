"""What an alert group's page says (SMS) and the lines its room gets.

The page text is the summary (``commonAnnotations.summary``, else the ``alertname`` label),
the number of firing alerts and ``+N more`` when Alertmanager left alerts out
(``truncatedAlerts``); the summary is shortened until the whole SMS fits ``MAX_PARTS``.
Room lines go through ``formatting.neutralise`` and show URLs defanged (``hxxps://host[.]tld``)
so that no chat turns them into links.
"""

from __future__ import annotations

from collections.abc import Callable

from att_sms.text.formatting import neutralise

from .payload import Notification

__all__ = [
    "changed_line", "defang", "opened_line", "page_text", "repaged_line", "resolved_line",
    "resolved_sms", "summary_of",
]  # fmt: skip

_FALLBACK_SUMMARY = "alert"
_ELLIPSIS = "..."


def summary_of(notification: Notification) -> str:
    """``commonAnnotations.summary``, else the ``alertname`` label, else the Grafana title."""
    candidates = [notification.common_annotations.get("summary", "")]
    candidates.append(notification.common_labels.get("alertname", ""))
    candidates.append(notification.group_labels.get("alertname", ""))
    for alert in notification.firing or notification.alerts:
        candidates.append(alert.annotations.get("summary", ""))
        candidates.append(alert.labels.get("alertname", ""))
    candidates.append(notification.title)
    for candidate in candidates:
        line = " ".join(candidate.split())
        if line:
            return line
    return _FALLBACK_SUMMARY


def count_text(notification: Notification) -> str:
    """``3 firing`` and `` (+2 more)`` when alerts were left out of the notification."""
    text = f"{len(notification.firing)} firing"
    if notification.truncated_alerts > 0:
        text += f" (+{notification.truncated_alerts} more)"
    return text


def page_text(notification: Notification, fits: Callable[[str], bool]) -> str:
    """The page text: ``<summary> - 3 firing (+2 more)``, the summary cut until ``fits``.

    ``fits(text)`` says whether the SMS made of ``text`` fits ``MAX_PARTS``.
    """
    summary, counts = summary_of(notification), count_text(notification)
    text = f"{summary} - {counts}"
    if fits(text):
        return text
    low, high = 0, len(summary)  # the longest prefix of the summary that still fits
    while low < high:
        middle = (low + high + 1) // 2
        if fits(_cut(summary, middle, counts)):
            low = middle
        else:
            high = middle - 1
    text = _cut(summary, low, counts)
    if not fits(text):
        raise ValueError("not even the alert counts fit in MAX_PARTS")
    return text


def _cut(summary: str, size: int, counts: str) -> str:
    return f"{summary[:size].rstrip()}{_ELLIPSIS} - {counts}"


def defang(url: str) -> str:
    """``https://grafana.example.com/x`` -> ``hxxps://grafana[.]example[.]com/x``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host, slash, path = rest.partition("/")
    shown_scheme = scheme.lower().replace("http", "hxxp") + "://" if sep else ""
    return f"{shown_scheme}{host.replace('.', '[.]')}{slash}{path}"


def _where(notification: Notification) -> str:
    return (
        f" ({neutralise(defang(notification.external_url), max_length=120)})"
        if notification.external_url
        else ""
    )


def opened_line(page_id: str, route: str, notification: Notification, targets: str) -> str:
    return (
        f"Alert {_summary(notification)} ({_firing_on(route, notification)}):"
        f" page {page_id} opened, paging {neutralise(targets, max_length=120)}"
        f"{_where(notification)}."
    )


def repaged_line(page_id: str, earlier: str, route: str, notification: Notification) -> str:
    return (
        f"Alert {_summary(notification)} is still firing ({_firing_on(route, notification)})"
        f" after page {earlier} closed: page {page_id} opened{_where(notification)}."
    )


def changed_line(page_id: str, notification: Notification, before: int) -> str:
    return (
        f"Alert {_summary(notification)} (page {page_id}):"
        f" now {count_text(notification)} (was {before})."
    )


def resolved_line(page_id: str, notification: Notification, closed: bool) -> str:
    then = "; the page is closed, nobody else is paged" if closed else ""
    return f"Alert {_summary(notification)} (page {page_id}) resolved{then}."


def _summary(notification: Notification) -> str:
    return neutralise(summary_of(notification), max_length=160)


def _firing_on(route: str, notification: Notification) -> str:
    """``3 firing (+2 more), route ops``."""
    return f"{count_text(notification)}, route {neutralise(route, max_length=64)}"


def resolved_sms(page_id: str, notification: Notification) -> str:
    return f"{page_id} resolved: {summary_of(notification)[:100]}"
