"""Destination addresses: the requests the carrier refuses whole, and delivery statuses.

Reserved numbers (by their last four digits) make the sandbox behave like the real
carrier did with problem addresses (docs/SANDBOX.md, "Reserved numbers"). A refused
request takes nothing: no message id, nothing recorded as sent, even when only one of
its addresses is a problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .replies import Reply, policy_error, service_error

TEL_RE = re.compile(r"^tel:\+[1-9]\d{1,14}$")
#: Addresses allowed in one send by default (the historical service's tests and other
#: carriers of this API family); 0 means no limit.
DEFAULT_MAX_RECIPIENTS = 10

#: Whole request refused with SVC0001 (a landline cannot receive SMS).
LANDLINE_SUFFIX = "0000"
#: Whole request refused with SVC0004 (an invalid or unreachable address).
UNREACHABLE_SUFFIX = "1111"
#: Accepted, then DeliveryImpossible once the delivery delay has passed.
IMPOSSIBLE_SUFFIX = "9999"
#: Accepted, and MessageWaiting forever.
WAITING_SUFFIX = "8888"

LANDLINE_ERROR_CODE = "Landline"
NO_VALID_ADDRESSES = "No valid addresses provided in message part %1"
# The sandbox's text for malformed addresses predates the reference's wording; clients'
# tests match it, so it stays until they move (both carry SVC0004 / "address").
MALFORMED_ADDRESSES = "No valid addresses provided in the message part %1"


def parse_addresses(value: Any) -> tuple[str, ...] | None:
    """The request's addresses (a single string counts as one), or None when malformed."""
    addresses = [value] if isinstance(value, str) else value
    if (
        not isinstance(addresses, list)
        or not addresses
        or not all(isinstance(a, str) and TEL_RE.match(a) for a in addresses)
    ):
        return None
    return tuple(addresses)


def malformed_addresses() -> Reply:
    """SVC0004 for an address list that is not a non-empty list of ``tel:+E164``."""
    return service_error(400, "SVC0004", MALFORMED_ADDRESSES, "address")


def duplicates(addresses: Sequence[str]) -> list[str]:
    """Addresses given more than once, in order of their first repeat."""
    seen: set[str] = set()
    repeated: list[str] = []
    for address in addresses:
        if address in seen and address not in repeated:
            repeated.append(address)
        seen.add(address)
    return repeated


def refusal(addresses: Sequence[str], max_recipients: int) -> Reply | None:
    """The answer refusing the whole request because of its addresses, or None."""
    if max_recipients and len(addresses) > max_recipients:
        return service_error(400, "SVC0004", NO_VALID_ADDRESSES, "address")
    repeated = duplicates(addresses)
    if repeated:
        return policy_error(400, "POL0013", "Duplicated addresses %1", ",".join(repeated))
    if any(a.endswith(LANDLINE_SUFFIX) for a in addresses):
        return service_error(
            400, "SVC0001", "A service error occurred. Error code is %1", LANDLINE_ERROR_CODE
        )
    if any(a.endswith(UNREACHABLE_SUFFIX) for a in addresses):
        return service_error(400, "SVC0004", NO_VALID_ADDRESSES, "address")
    return None


def delivery_status(address: str, elapsed: float, delivery_delay: float) -> str:
    """The delivery status of one address, ``elapsed`` seconds after its send."""
    if address.endswith(WAITING_SUFFIX):
        return "MessageWaiting"
    if elapsed < delivery_delay:
        return "DeliveredToNetwork"
    return "DeliveryImpossible" if address.endswith(IMPOSSIBLE_SUFFIX) else "DeliveredToTerminal"
