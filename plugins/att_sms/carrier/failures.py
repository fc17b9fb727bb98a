"""What went wrong with a carrier exchange, as the typed errors of :mod:`att_sms.carrier.errors`.

:class:`FailureReader` turns a non-2xx answer (its error document, OAuth error or bare
status) or an exchange that failed on the network into one exception whose text is one
line, bounded, with the client secret and every issued token blanked out. A send whose
outcome is unknown becomes :class:`~att_sms.carrier.errors.SendUncertain`; a 429 on a
send is a refusal with the carrier's ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from .answers import json_or_none, oauth_error_text
from .errors import (
    AuthenticationError,
    CarrierError,
    CarrierUnavailable,
    NotFoundError,
    SendUncertain,
    carrier_error_details,
)
from .redaction import redact
from .transport import connect_failure, exchange_failure, host_of, not_sent

#: Statuses with which the carrier explicitly refuses a send before taking it.
SEND_REFUSED_STATUSES = frozenset({429})
#: Longest carrier text kept in an exception message.
MAX_TEXT = 300
#: Said of every send whose outcome is unknown.
UNCERTAIN_HINT = "the message may have been sent: check before sending it again"


class FailureReader:
    """Typed, secret-free errors for one client's failed exchanges.

    ``issued`` is the client's own (mutable) record of the tokens it was given: they are
    blanked wherever they show up, as is ``client_secret``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        issued: Sequence[str],
        timeout: tuple[float, float],
        retry: Retry,
    ) -> None:
        self._base_url = base_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._issued = issued
        self._timeout = timeout
        self._retry = retry

    def retry_after(self, response: requests.Response) -> float | None:
        """The response's ``Retry-After`` in seconds, or ``None``."""
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return self._retry.parse_retry_after(value)
        except InvalidHeader:
            return None

    def raise_for_status(self, response: requests.Response, *, sending: bool = False) -> None:
        """Raise the typed error for a non-2xx *response*."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise self.carrier_error(response, AuthenticationError)
        if status == 404:
            raise self.carrier_error(response, NotFoundError)
        if status == 429 or status >= 500:
            raise self.unavailable(response, sending)
        raise self.carrier_error(response, CarrierError)

    def carrier_error(
        self,
        response: requests.Response,
        error_type: type[CarrierError],
        fallback: str | None = None,
    ) -> CarrierError:
        """Build *error_type* from the carrier's error document."""
        status = response.status_code
        kind, message_id, text = self.error_details(response, fallback)
        return error_type(text, status=status, message_id=message_id, kind=kind)

    def unavailable(self, response: requests.Response, sending: bool) -> CarrierUnavailable:
        """5xx/429: the carrier is unavailable; a send may or may not be taken."""
        message = str(self.carrier_error(response, CarrierError))
        status = response.status_code
        if sending and status not in SEND_REFUSED_STATUSES:
            return SendUncertain(f"{message}; {UNCERTAIN_HINT}", status=status)
        if sending:
            wait = self.retry_after(response)
            later = f"; try again in {wait:.0f} s" if wait else "; try again shortly"
            return CarrierUnavailable(
                f"{message}; the carrier refused the message (rate limit){later}", status=status
            )
        return CarrierUnavailable(message, status=status)

    def error_details(
        self, response: requests.Response, fallback: str | None
    ) -> tuple[str | None, str | None, str]:
        """``(kind, message_id, text)`` of an error response, redacted."""
        body = json_or_none(response)
        details = carrier_error_details(body)
        if details is not None:
            kind, message_id, text = details
            return kind, message_id, self.clean(text)
        oauth = oauth_error_text(body)
        if oauth:
            return None, None, self.clean(f"{oauth} (HTTP {response.status_code})")
        plain = f"HTTP {response.status_code} from carrier"
        return None, None, f"{fallback}: {plain}" if fallback else plain

    def network_error(self, exc: requests.RequestException, sending: bool) -> CarrierUnavailable:
        """A plain, secret-free error for a failed exchange."""
        where = host_of(self._base_url)
        if not_sent(exc):
            return CarrierUnavailable(connect_failure(exc, where, self._timeout[0]))
        reason = exchange_failure(exc, where, self._timeout[1])
        if sending:
            return SendUncertain(f"{reason}; {UNCERTAIN_HINT}")
        return CarrierUnavailable(reason)

    def clean(self, text: str) -> str:
        """One line, bounded, with the secret and tokens blanked out."""
        secrets = (self._client_secret, *self._issued)
        text = redact(
            " ".join(redact(text, secrets, self._client_id).split()), secrets, self._client_id
        )
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 3] + "..."
        return text
