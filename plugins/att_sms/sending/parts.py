"""The send pipeline for one page: requests of bounded size, a refusal split per recipient.

:func:`send_parts` sends every part of a message to every address and returns a
:class:`SendReport` saying, per recipient, whether it was sent, refused, uncertain or
not sent, which the caller turns into the chat reply, the audit entry and the quota.

* No request carries more than ``max_recipients`` addresses.
* A multi-recipient request refused with a 4xx carrier error took nothing (a real
  carrier refuses the whole request for one landline, invalid or duplicate address):
  its part is sent to each of its recipients on their own, and who could not be
  reached is named with the carrier's reason.
* An uncertain outcome (:class:`SendUncertain`, :class:`ProtocolError`) is never
  repeated. A carrier that could not be reached, throttles (429) or refuses the
  credentials stops the page: everything not sent yet is "not sent".
* A recipient whose part failed or is uncertain gets no later part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from att_sms.carrier.errors import (
    AttSmsError,
    AuthenticationError,
    CarrierError,
    ProtocolError,
    SendUncertain,
)

if TYPE_CHECKING:
    from att_sms.carrier.client import AttSmsClient

__all__ = [
    "NOT_SENT",
    "REFUSED",
    "SENT",
    "UNCERTAIN",
    "RecipientOutcome",
    "RequestOutcome",
    "SendReport",
    "send_parts",
]

SENT = "sent"
REFUSED = "refused"
UNCERTAIN = "uncertain"
NOT_SENT = "not_sent"

DEFAULT_MAX_RECIPIENTS = 10
#: Addresses named in a reply before "and N more".
MAX_NAMED = 5
#: Message ids listed per part in a reply before "(+N more)".
MAX_IDS = 10
#: Failure sentences per outcome kind in a reply; the rest are counted.
MAX_GROUPS = 5
_MORE = {
    UNCERTAIN: "Send to {n} more recipient(s) may or may not have gone out (other errors).",
    REFUSED: "Not sent to {n} more recipient(s): carrier refused it (other reasons).",
    NOT_SENT: "Not sent to {n} more recipient(s) (other errors).",
}
#: Longest audit outcome.
MAX_AUDIT = 300


@dataclass
class RecipientOutcome:
    """What came of the page for one recipient.

    ``message_ids`` are the ids of the requests that took this recipient's parts, in
    part order; ``failed_part`` (1-based) and ``reason`` say where and why it stopped.
    """

    address: str
    status: str = SENT
    message_ids: list[str] = field(default_factory=list)
    failed_part: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RequestOutcome:
    """One request made to the carrier: its part (1-based), recipients and result."""

    part: int
    addresses: tuple[str, ...]
    status: str
    message_id: str | None = None
    reason: str | None = None


@dataclass
class SendReport:
    """The outcome of :func:`send_parts`."""

    parts: int
    recipients: list[RecipientOutcome]
    requests: list[RequestOutcome] = field(default_factory=list)
    #: Why the page stopped early (carrier unreachable, throttling), or ``None``.
    stopped: str | None = None

    @property
    def billed(self) -> int:
        """Parts x recipients the carrier took or may have taken (for quotas)."""
        return sum(len(r.addresses) for r in self.requests if r.status in (SENT, UNCERTAIN))

    @property
    def message_ids(self) -> list[str]:
        """Every message id the carrier returned, in request order."""
        return [r.message_id for r in self.requests if r.message_id]

    def addresses(self, status: str) -> list[str]:
        """Recipients whose outcome is *status*."""
        return [r.address for r in self.recipients if r.status == status]

    def reply_line(self) -> str:
        """The chat reply: one line per outcome kind (sent, uncertain, refused, not sent)."""
        lines = [self._sent_line()] if self.addresses(SENT) else []
        for status in (UNCERTAIN, REFUSED, NOT_SENT):
            groups = self._groups(status)
            if groups:
                lines.append(self._failure_line(status, groups))
        return "\n".join(lines)

    @property
    def outcome_kind(self) -> str:
        """``sent`` (every recipient), ``partial``, ``uncertain`` or ``failed`` (none taken)."""
        sent = len(self.addresses(SENT))
        if sent == len(self.recipients):
            return SENT
        if sent:
            return "partial"
        return "uncertain" if self.addresses(UNCERTAIN) else "failed"

    def audit_outcome(self) -> str:
        """``sent``, or ``partial: ...``, ``uncertain: ...``, ``failed: ...`` (short)."""
        label = self.outcome_kind
        if label == SENT:
            return SENT
        counts = {s: len(self.addresses(s)) for s in (SENT, UNCERTAIN, REFUSED, NOT_SENT)}
        groups = [g for s in (UNCERTAIN, REFUSED, NOT_SENT) for g in self._groups(s)]
        if len(groups) == 1 and not counts[SENT]:
            return _cut(f"{label}: {groups[0][0].reason}", MAX_AUDIT)
        summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
        details = "; ".join(f"{_who(_addrs(g))}: {g[0].reason}" for g in groups[:3])
        return _cut(f"{label}: {summary}; {details}", MAX_AUDIT)

    # -- reply pieces ---------------------------------------------------------

    def _sent_line(self) -> str:
        sent = self.addresses(SENT)
        per_part = [self._ids(part, sent) for part in range(1, self.parts + 1)]
        who = _who(sent)
        if all(len(ids) == 1 for ids in per_part):
            if self.parts == 1:
                return f"Sent to {who}: message id {per_part[0][0]}"
            listed = ", ".join(
                f"part {i}/{self.parts} {ids[0]}" for i, ids in enumerate(per_part, start=1)
            )
            return f"Sent to {who} in {self.parts} parts: message ids {listed}"
        if self.parts == 1:
            return f"Sent to {who}: message ids {_id_list(per_part[0])}"
        listed = "; ".join(
            f"part {i}/{self.parts} {_id_list(ids)}" for i, ids in enumerate(per_part, start=1)
        )
        return f"Sent to {who} in {self.parts} parts: message ids {listed}"

    def _failure_line(self, status: str, groups: list[list[RecipientOutcome]]) -> str:
        """The sentences of one outcome kind on one line; groups past ``MAX_GROUPS`` counted."""
        line = " ".join(self._failure(group) for group in groups[:MAX_GROUPS])
        rest = sum(len(group) for group in groups[MAX_GROUPS:])
        return f"{line} {_MORE[status].format(n=rest)}" if rest else line

    def _failure(self, group: list[RecipientOutcome]) -> str:
        first = group[0]
        who = _who(_addrs(group))
        part = f" (part {first.failed_part}/{self.parts})" if self.parts > 1 else ""
        reason = (first.reason or "unknown reason").rstrip(".")
        earlier = range(1, first.failed_part or 1)
        ids = [i for p in earlier for i in self._ids(p, _addrs(group))]
        done = f" Parts already sent: {_id_list(ids)}." if ids else ""
        if first.status == UNCERTAIN:
            return (
                f"Send to {who}{part} may or may not have gone out: {reason}. "
                f"Do not resend blindly: check the carrier first.{done}"
            )
        if first.status == REFUSED:
            return f"Not sent to {who}{part}: carrier refused it: {reason}.{done}"
        return f"Not sent to {who}{part}: {reason}.{done}"

    def _groups(self, status: str) -> list[list[RecipientOutcome]]:
        """Recipients of *status* grouped by (failed part, reason), in order of appearance."""
        groups: dict[tuple[int | None, str | None], list[RecipientOutcome]] = {}
        for outcome in self.recipients:
            if outcome.status == status:
                groups.setdefault((outcome.failed_part, outcome.reason), []).append(outcome)
        return sorted(groups.values(), key=lambda g: g[0].failed_part or 0)

    def _ids(self, part: int, addresses: Iterable[str]) -> list[str]:
        """Ids of the taken requests of *part* that went to any of *addresses*."""
        wanted = set(addresses)
        return [
            r.message_id
            for r in self.requests
            if r.part == part and r.status == SENT and r.message_id and wanted & set(r.addresses)
        ]


# --------------------------------------------------------------------------- the pipeline


def send_parts(
    client: AttSmsClient,
    addresses: list[str],
    parts: list[str],
    *,
    sender: str | None = None,
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
) -> SendReport:
    """Send each of *parts* to every one of *addresses*; see the module docstring."""
    if isinstance(max_recipients, bool) or not isinstance(max_recipients, int):
        raise ValueError("max_recipients must be an integer")
    if max_recipients < 1:
        raise ValueError("max_recipients must be at least 1")
    unique = list(dict.fromkeys(addresses))
    if not unique or not parts:
        raise ValueError("a send needs at least one address and one part")
    report = SendReport(parts=len(parts), recipients=[RecipientOutcome(a) for a in unique])
    run = _Run(client, sender, report)
    for index, text in enumerate(parts, start=1):
        active = [r for r in report.recipients if r.status == SENT]
        for start in range(0, len(active), max_recipients):
            run.send(index, text, active[start : start + max_recipients])
    return report


class _Run:
    """The state of one page while it is being sent."""

    def __init__(self, client: AttSmsClient, sender: str | None, report: SendReport) -> None:
        self.client = client
        self.sender = sender
        self.report = report

    def send(self, part: int, text: str, chunk: list[RecipientOutcome]) -> None:
        """One request for *chunk*; a refused group is split into one request each."""
        if self.report.stopped:
            _fail(chunk, NOT_SENT, part, self.report.stopped)
            return
        addresses = tuple(r.address for r in chunk)
        try:
            result = self.client.send(list(addresses), text, self.sender)
        except AttSmsError as exc:
            self._failed(part, text, chunk, exc)
            return
        self.report.requests.append(RequestOutcome(part, addresses, SENT, result.message_id))
        for recipient in chunk:
            recipient.message_ids.append(result.message_id)

    def _failed(
        self, part: int, text: str, chunk: list[RecipientOutcome], exc: AttSmsError
    ) -> None:
        status = _status_of(exc)
        reason = str(exc)
        addresses = tuple(r.address for r in chunk)
        self.report.requests.append(RequestOutcome(part, addresses, status, None, reason))
        if status == REFUSED and len(chunk) > 1:
            for recipient in chunk:  # a refusal took nothing: one request each is safe
                self.send(part, text, [recipient])
            return
        _fail(chunk, status, part, reason)
        if status == NOT_SENT:
            self.report.stopped = reason


def _status_of(exc: AttSmsError) -> str:
    """``uncertain`` (may have been taken), ``refused`` (a 4xx answer) or ``not_sent``.

    Credentials refused even after a fresh token refuse every request alike: that is
    "not sent" (and stops the page), not a refusal of these recipients.
    """
    if isinstance(exc, (SendUncertain, ProtocolError)):
        return UNCERTAIN
    if isinstance(exc, AuthenticationError):
        return NOT_SENT
    if isinstance(exc, CarrierError) and exc.status is not None and 400 <= exc.status < 500:
        return REFUSED
    return NOT_SENT


def _fail(chunk: list[RecipientOutcome], status: str, part: int, reason: str) -> None:
    for recipient in chunk:
        recipient.status = status
        recipient.failed_part = part
        recipient.reason = reason


# --------------------------------------------------------------------------- text helpers


def _addrs(group: list[RecipientOutcome]) -> list[str]:
    return [r.address for r in group]


def _who(addresses: list[str]) -> str:
    """The recipients, named when few, counted when many."""
    if len(addresses) <= MAX_NAMED:
        return ", ".join(addresses)
    shown = ", ".join(addresses[:3])
    return f"{len(addresses)} recipients ({shown} and {len(addresses) - 3} more)"


def _id_list(ids: list[str]) -> str:
    if len(ids) <= MAX_IDS:
        return ", ".join(ids)
    return ", ".join(ids[:MAX_IDS]) + f" (+{len(ids) - MAX_IDS} more)"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
