"""HTTP client for the carrier's SMS REST API.

:class:`AttSmsClient` owns one :class:`requests.Session` (keep-alive, a bounded
connection pool, ``(connect, read)`` timeouts on every call) and an OAuth token
cache.  It sends messages, reads delivery statuses and drains the inbound box,
and it turns every failure into one of the types in :mod:`att_sms.carrier.errors`.
The session (retries, keepalive, idle connections) is built in
:mod:`att_sms.carrier.transport`; the answers are read in :mod:`att_sms.carrier.answers`;
failed exchanges become typed errors in :mod:`att_sms.carrier.failures`.

Retry policy, in short:

* GETs are retried by urllib3 (``Retry``) on 429/500/502/503/504 and on read
  errors, with exponential backoff, honouring ``Retry-After`` (capped).
* Any request may be retried when the connection could not be opened at all:
  nothing reached the carrier.
* A send (POST) is never repeated where the carrier may have taken it: only a
  connection that could not be opened, or a 401 answered by one token refresh,
  sends it again.  A 429 is reported as a refusal (with its ``Retry-After``) for
  a person to resend; every other unknown outcome raises
  :class:`~att_sms.carrier.errors.SendUncertain`.
* A 401 on an API call drops the token (if it is still the cached one),
  fetches a new one and repeats the call once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import requests

from .answer_limits import MAX_ANSWER_BYTES, AnswerTooLarge, read_capped
from .answers import (
    DeliveryInfo,
    InboundBatch,
    InboundMessage,
    SendResult,
    json_body,
    read_delivery_infos,
    read_inbound_batch,
    read_send_result,
    send_unreadable,
)
from .errors import AuthenticationError, CarrierUnavailable
from .failures import UNCERTAIN_HINT, FailureReader
from .tokens import Token, TokenCache, TokenStatus, read_token
from .transport import (
    DEFAULT_MAX_IDLE,
    KEEPALIVE_IDLE,
    PreparedRequests,
    build_retry,
    build_session,
    keepalive_socket_options,
)

__all__ = [
    "AttSmsClient",
    "ExchangeObserver",
    "DeliveryInfo",
    "InboundBatch",
    "InboundMessage",
    "SendResult",
    "TokenStatus",
    # Re-exported from att_sms.carrier.transport for callers that read them here.
    "KEEPALIVE_IDLE",
    "keepalive_socket_options",
]

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/v4/token"
OUTBOX_PATH = "/sms/v3/messaging/outbox"
INBOX_PATH = "/sms/v3/messaging/inbox"

#: Longest wait (seconds) for the carrier's answer to a reachability check.
REACHABILITY_READ_TIMEOUT = 5.0
#: Answers to the reachability probe that mean "no carrier behind this gateway".
UNREACHABLE_STATUSES = frozenset({502, 503, 504})

#: Called after each HTTP exchange with ``(operation, seconds, outcome)``:
#: operation ``"token"``, ``"send"``, ``"status"`` or ``"inbox"``; outcome ``"ok"``
#: (2xx), ``"http_<status>"`` or ``"error"`` (no HTTP answer).
ExchangeObserver = Callable[[str, float, str], None]

#: What each operation's answer is, in an error text.
_ANSWER_OF = {"token": "access token", "send": "send", "status": "delivery status",
              "inbox": "inbound messages"}  # fmt: skip


# --------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------


class AttSmsClient:
    """Client for the carrier's OAuth and SMS endpoints.

    Thread-safe: one instance may be shared by every command of the plugin.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        scope: str = "SMS",
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        pool_size: int = 10,
        get_retries: int = 3,
        backoff_factor: float = 0.3,
        max_retry_after: float = 10.0,
        inbox_read_timeout: float = 60.0,
        max_idle: float | None = DEFAULT_MAX_IDLE,
        observer: ExchangeObserver | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.scope = scope
        self.timeout = (connect_timeout, read_timeout)
        # The inbox read is destructive: an answer we stop waiting for is lost, so its
        # read timeout is long (and never shorter than the others).
        self.inbox_timeout = (connect_timeout, max(read_timeout, inbox_read_timeout))
        self.backoff_factor = backoff_factor
        self.max_retry_after = max_retry_after
        self._observer = observer
        self.max_answer_bytes = max_answer_bytes
        #: Tokens requested from the carrier so far by this client.
        self.token_requests = 0
        self._client_secret = client_secret
        self._issued: deque[str] = deque(maxlen=8)
        self._retry = build_retry(get_retries, backoff_factor, max_retry_after)
        self._session = build_session(pool_size, self._retry, max_idle, self.base_url)
        self._requests = PreparedRequests(
            self._session,
            [("POST", self.base_url + OUTBOX_PATH), ("POST", self.base_url + TOKEN_PATH)],
        )
        self._tokens = TokenCache(self._fetch_token)
        self._failures = FailureReader(
            base_url=self.base_url,
            client_id=client_id,
            client_secret=client_secret,
            issued=self._issued,
            timeout=self.timeout,
            retry=self._retry,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, client_id={self.client_id!r})"

    __str__ = __repr__

    def __enter__(self) -> AttSmsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections and forget the token."""
        self._tokens.clear()
        self._session.close()

    # -- public API ---------------------------------------------------------

    def send(
        self,
        addresses: Sequence[str],
        message: str,
        sender_address: str | None = None,
    ) -> SendResult:
        """Send *message* to *addresses* (``tel:+E164``); return the carrier's id.

        Raises :class:`SendUncertain` when the carrier may have taken the
        message without confirming it: do not resend blindly.
        """
        recipients = _address_tuple(addresses)
        request: dict[str, Any] = {"address": list(recipients), "message": message}
        if sender_address:
            request["senderAddress"] = sender_address
        response = self._post_send({"outboundSMSRequest": request})
        body = json_body(response, send_unreadable)
        return read_send_result(body, recipients, response.status_code)

    def delivery_status(self, message_id: str) -> list[DeliveryInfo]:
        """Return the delivery status of *message_id* for each recipient."""
        path = f"{OUTBOX_PATH}/{_path_param(message_id, 'message_id')}"
        body = self._get_json(path, "status", "delivery status")
        return read_delivery_infos(body)

    def fetch_inbound(self, registration_id: str) -> InboundBatch:
        """Take one batch of inbound messages for *registration_id*."""
        path = f"{INBOX_PATH}/{_path_param(registration_id, 'registration_id')}"
        body = self._get_json(path, "inbox", "inbound messages", timeout=self.inbox_timeout)
        return read_inbound_batch(body)

    # -- health -------------------------------------------------------------

    def check_reachable(self) -> float:
        """Round trip (seconds) of a ``HEAD`` on the token endpoint; any HTTP answer counts.

        Nothing is sent that could change anything at the carrier, no token is used,
        and the exchange is not reported to the observer (it is no carrier operation).
        A gateway that does not implement ``HEAD`` answers 501 (or 405, 404): the carrier
        answered, so it is reachable. Raises :class:`CarrierUnavailable` when no answer
        came (connection error, timeout) or a gateway said the carrier is not there
        (502, 503, 504).
        """
        timeout = (self.timeout[0], min(self.timeout[1], REACHABILITY_READ_TIMEOUT))
        started = time.monotonic()
        try:
            response = self._session.request(
                "HEAD", self.base_url + TOKEN_PATH, timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise self._failures.network_error(exc, sending=False) from None
        elapsed = time.monotonic() - started
        response.close()
        if response.status_code in UNREACHABLE_STATUSES:
            raise CarrierUnavailable(
                f"HTTP {response.status_code} from carrier", status=response.status_code
            )
        return elapsed

    def ensure_token(self) -> None:
        """Fetch an access token unless one is cached; raises what a token request raises."""
        self._tokens.get()

    def token_status(self) -> TokenStatus:
        """How long the cached token is still used, or why the last token request failed."""
        return self._tokens.status()

    # -- requests -----------------------------------------------------------

    def _get_json(
        self, path: str, operation: str, what: str, timeout: tuple[float, float] | None = None
    ) -> Any:
        """GET *path* with the token and return its JSON body."""
        response = self._authorized("GET", path, operation, timeout=timeout or self.timeout)
        self._failures.raise_for_status(response)
        return json_body(response, lambda reason: f"{what}: {reason}")

    def _post_send(self, payload: dict[str, Any]) -> requests.Response:
        """POST a send once: it is never repeated where the carrier may have taken it."""
        response = self._authorized("POST", OUTBOX_PATH, "send", json=payload, sending=True)
        self._failures.raise_for_status(response, sending=True)
        return response

    def _authorized(
        self, method: str, path: str, operation: str, *, sending: bool = False, **kwargs: Any
    ) -> requests.Response:
        """Make an API call with the token; on 401 refresh it and call once more."""
        token = self._tokens.get()
        response = self._request(
            method, path, token=token, sending=sending, operation=operation, **kwargs
        )
        if response.status_code != 401:
            return response
        log.debug("%s %s got 401; refreshing the access token once", method, path)
        response.close()
        self._tokens.discard(token)
        token = self._tokens.get()
        return self._request(
            method, path, token=token, sending=sending, operation=operation, **kwargs
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        token: Token | None = None,
        sending: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP exchange; network failures become :class:`CarrierUnavailable`."""
        headers = {"Authorization": f"Bearer {token.value}"} if token else None
        timeout = kwargs.pop("timeout", self.timeout)
        started = time.monotonic()
        try:
            response = self._requests.send(
                method, self.base_url + path, headers=headers, timeout=timeout, **kwargs
            )
            read_capped(response, _ANSWER_OF.get(operation, operation), self.max_answer_bytes)
        except AnswerTooLarge as exc:
            log.warning("%s %s: %s", method, path, exc)
            self._observe(operation, time.monotonic() - started, "too_large")
            if sending:
                raise AnswerTooLarge(f"{exc}; {UNCERTAIN_HINT}") from None
            raise
        except requests.RequestException as exc:
            log.debug("%s %s failed: %s", method, path, type(exc).__name__)
            self._observe(operation, time.monotonic() - started, "error")
            raise self._failures.network_error(exc, sending) from None
        elapsed = time.monotonic() - started
        log.debug("%s %s -> HTTP %s (%.3f s)", method, path, response.status_code, elapsed)
        status = response.status_code
        self._observe(operation, elapsed, "ok" if 200 <= status < 300 else f"http_{status}")
        return response

    def _observe(self, operation: str, seconds: float, outcome: str) -> None:
        """Tell the observer about one exchange; its failures never reach the caller."""
        if self._observer is None:
            return
        try:
            self._observer(operation, seconds, outcome)
        except Exception as exc:  # noqa: BLE001 - a metrics hook must never break a send
            log.warning("exchange observer failed (%s); ignored", type(exc).__name__)

    # -- token --------------------------------------------------------------

    def _fetch_token(self) -> Token:
        """Ask the carrier for a client-credentials token (called under the lock)."""
        self.token_requests += 1
        log.debug("requesting an access token for client id %s", self.client_id)
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "scope": self.scope,
        }
        response = self._request("POST", TOKEN_PATH, operation="token", data=form)
        if response.status_code in (400, 401, 403):
            raise self._failures.carrier_error(
                response, AuthenticationError, "access token refused"
            )
        self._failures.raise_for_status(response)
        body = json_body(response, lambda reason: f"access token: {reason}")
        token = read_token(body)
        self._issued.append(token.value)
        log.debug("access token received, used for %.1f s", token.lifetime)
        return token


# --------------------------------------------------------------------------
# Small helpers: input
# --------------------------------------------------------------------------


def _address_tuple(addresses: Sequence[str] | str) -> tuple[str, ...]:
    """Recipients as a tuple; a single string is one recipient."""
    if isinstance(addresses, str):
        addresses = [addresses]
    recipients = tuple(addresses)
    if not recipients or not all(isinstance(a, str) and a for a in recipients):
        raise ValueError("addresses must be one or more non-empty strings")
    return recipients


def _path_param(value: str, name: str) -> str:
    """*value* quoted as one path segment."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")
