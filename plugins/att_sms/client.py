"""HTTP client for the carrier's SMS REST API.

:class:`AttSmsClient` owns one :class:`requests.Session` (keep-alive, a bounded
connection pool, ``(connect, read)`` timeouts on every call) and an OAuth token
cache.  It sends messages, reads delivery statuses and drains the inbound box,
and it turns every failure into one of the types in :mod:`att_sms.errors`.

Retry policy, in short:

* GETs are retried by urllib3 (``Retry``) on 429/500/502/503/504 and on read
  errors, with exponential backoff, honouring ``Retry-After`` (capped).
* Any request may be retried when the connection could not be opened at all:
  nothing reached the carrier.
* A send (POST) is never repeated where the carrier may have taken it: only a
  connection that could not be opened, or a 401 answered by one token refresh,
  sends it again.  A 429 is reported as a refusal (with its ``Retry-After``) for
  a person to resend; every other unknown outcome raises
  :class:`~att_sms.errors.SendUncertain`.
* A 401 on an API call drops the token (if it is still the cached one),
  fetches a new one and repeats the call once.

Idle connections: NAT and load balancers silently drop connections idle for a
minute or more, and a send on such a connection gets no answer (an uncertain
outcome).  Pooled sockets therefore use TCP keepalive, and a pooled connection
idle longer than ``max_idle`` is closed before it is used again.

Responses are read in the spec's lowerCamel keys and in the historical
production service's PascalCase keys; keys are matched without regard to case.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from cachetools import TLRUCache
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    NameResolutionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from .errors import (
    AuthenticationError,
    CarrierError,
    CarrierUnavailable,
    NotFoundError,
    ProtocolError,
    SendUncertain,
    carrier_error_details,
)

__all__ = [
    "AttSmsClient",
    "ExchangeObserver",
    "DeliveryInfo",
    "InboundBatch",
    "InboundMessage",
    "SendResult",
]

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/v4/token"
OUTBOX_PATH = "/sms/v3/messaging/outbox"
INBOX_PATH = "/sms/v3/messaging/inbox"

#: Statuses on which a GET is retried by urllib3.
GET_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Statuses with which the carrier explicitly refuses a send before taking it.
SEND_REFUSED_STATUSES = frozenset({429})
#: Token lifetime assumed when the carrier gives none (or nonsense).
DEFAULT_TOKEN_LIFETIME = 3600.0
#: Longest carrier text kept in an exception message.
MAX_TEXT = 300
#: Pooled connections idle longer than this (seconds) are closed before reuse.
DEFAULT_MAX_IDLE = 30.0
#: TCP keepalive: first probe after this many idle seconds, then every
#: ``KEEPALIVE_INTERVAL`` s; the connection is dead after ``KEEPALIVE_COUNT`` misses.
KEEPALIVE_IDLE = 15
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
#: Longest description of a skipped inbound item.
MAX_SKIPPED_TEXT = 120

#: Called after each HTTP exchange with ``(operation, seconds, outcome)``:
#: operation ``"token"``, ``"send"``, ``"status"`` or ``"inbox"``; outcome ``"ok"``
#: (2xx), ``"http_<status>"`` or ``"error"`` (no HTTP answer).
ExchangeObserver = Callable[[str, float, str], None]

_TOKEN_KEY = "token"
_UNCERTAIN_HINT = "the message may have been sent: check before sending it again"


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """The carrier's answer to a send."""

    message_id: str
    resource_url: str | None
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class DeliveryInfo:
    """Delivery status of a message for one recipient."""

    address: str
    status: str


@dataclass(frozen=True)
class InboundMessage:
    """One message taken from the carrier's inbound box."""

    message_id: str
    message: str
    sender_address: str
    destination_address: str | None
    date_time: str | None


@dataclass(frozen=True)
class InboundBatch:
    """One batch of inbound messages; ``pending`` is what the carrier still holds.

    ``skipped`` describes the items of the answer that could not be used (no text
    and no sender, not an object...), for the caller to log; it holds no message text.
    """

    messages: list[InboundMessage]
    pending: int | None
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Token cache
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """An access token; its value is kept out of ``repr``."""

    value: str = field(repr=False)
    lifetime: float


def _token_expiry(_key: str, token: _Token, now: float) -> float:
    """TLRU time-to-use: when the cached *token* stops being used."""
    return now + token.lifetime


def _usable_lifetime(expires_in: float) -> float:
    """Lifetime minus a safety margin, so a token is never used at its edge."""
    return expires_in - min(60.0, expires_in / 10.0)


class _TokenCache:
    """One cached token; a lock makes concurrent cold callers fetch it once."""

    def __init__(self, fetch: Callable[[], _Token]) -> None:
        self._fetch = fetch
        self._cache: TLRUCache[str, _Token] = TLRUCache(maxsize=1, ttu=_token_expiry)
        self._lock = threading.Lock()

    def get(self) -> _Token:
        """Return the cached token, fetching a new one if there is none."""
        with self._lock:
            token = self._cache.get(_TOKEN_KEY)
            if token is None:
                token = self._fetch()
                self._cache[_TOKEN_KEY] = token
            return token

    def discard(self, token: _Token) -> None:
        """Drop *token*, unless another caller already replaced it."""
        with self._lock:
            if self._cache.get(_TOKEN_KEY) is token:
                self._cache.pop(_TOKEN_KEY, None)

    def clear(self) -> None:
        """Forget any cached token."""
        with self._lock:
            self._cache.clear()


# --------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------


class _CappedRetry(Retry):
    """urllib3 ``Retry`` that never waits longer than ``max_retry_after``."""

    def __init__(self, *args: Any, max_retry_after: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after

    def new(self, **kw: Any) -> _CappedRetry:
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.max_retry_after)


def _build_retry(retries: int, backoff_factor: float, max_retry_after: float) -> _CappedRetry:
    """Retry for every request: GETs on errors, anything on connect failure."""
    return _CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=GET_RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=max(max_retry_after, backoff_factor),
        respect_retry_after_header=True,
        raise_on_status=False,
        max_retry_after=max_retry_after,
    )


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """urllib3's default socket options plus TCP keepalive, where the platform has it."""
    options = list(HTTPConnection.default_socket_options or [])
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    # Linux names the first-probe delay TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
    idle = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
    for option, value in (
        (idle, KEEPALIVE_IDLE),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_COUNT),
    ):
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    return options


class _IdleRetirement:
    """Connection-pool mixin: a connection idle over ``max_idle`` s is closed on checkout.

    The closed connection object is handed out as usual and opens a fresh socket
    for its request, so nothing is ever written to a socket a NAT may have dropped.
    """

    max_idle: float | None = None

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        since = getattr(conn, "_att_idle_since", None)
        if self.max_idle is None or since is None or getattr(conn, "sock", None) is None:
            return conn
        idle = time.monotonic() - since
        if idle > self.max_idle:
            log.debug("closing a pooled connection idle for %.1f s before reuse", idle)
            conn.close()
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn._att_idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]


def _idle_pool_classes(max_idle: float | None) -> dict[str, type]:
    """urllib3 pool classes (per scheme) that retire connections idle over *max_idle*."""
    attrs = {"max_idle": max_idle}
    return {
        "http": type("IdleRetiringHTTPPool", (_IdleRetirement, HTTPConnectionPool), attrs),
        "https": type("IdleRetiringHTTPSPool", (_IdleRetirement, HTTPSConnectionPool), attrs),
    }


class _CarrierAdapter(HTTPAdapter):
    """HTTPAdapter whose connections use TCP keepalive and are retired when idle too long."""

    def __init__(self, *, max_idle: float | None, **kwargs: Any) -> None:
        self._max_idle = max_idle  # set first: HTTPAdapter.__init__ builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
        pool_kwargs.setdefault("socket_options", keepalive_socket_options())
        super().init_poolmanager(*args, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _idle_pool_classes(self._max_idle)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy in self.proxy_manager:
            return self.proxy_manager[proxy]
        proxy_kwargs.setdefault("socket_options", keepalive_socket_options())
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _idle_pool_classes(self._max_idle)
        return manager


def _build_session(pool_size: int, retry: Retry, max_idle: float | None) -> requests.Session:
    """One keep-alive session with a blocking pool of *pool_size* connections."""
    session = requests.Session()
    adapter = _CarrierAdapter(
        max_idle=max_idle, pool_maxsize=pool_size, pool_block=True, max_retries=retry
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = "application/json"
    return session


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
        #: Tokens requested from the carrier so far by this client.
        self.token_requests = 0
        self._client_secret = client_secret
        self._issued: deque[str] = deque(maxlen=8)
        self._retry = _build_retry(get_retries, backoff_factor, max_retry_after)
        self._session = _build_session(pool_size, self._retry, max_idle)
        self._tokens = _TokenCache(self._fetch_token)

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
        body = self._json_body(response, _send_unreadable)
        return _read_send_result(body, recipients, response.status_code)

    def delivery_status(self, message_id: str) -> list[DeliveryInfo]:
        """Return the delivery status of *message_id* for each recipient."""
        path = f"{OUTBOX_PATH}/{_path_param(message_id, 'message_id')}"
        body = self._get_json(path, "status", "delivery status")
        return _read_delivery_infos(body)

    def fetch_inbound(self, registration_id: str) -> InboundBatch:
        """Take one batch of inbound messages for *registration_id*."""
        path = f"{INBOX_PATH}/{_path_param(registration_id, 'registration_id')}"
        body = self._get_json(path, "inbox", "inbound messages", timeout=self.inbox_timeout)
        return _read_inbound_batch(body)

    # -- requests -----------------------------------------------------------

    def _get_json(
        self, path: str, operation: str, what: str, timeout: tuple[float, float] | None = None
    ) -> Any:
        """GET *path* with the token and return its JSON body."""
        response = self._authorized("GET", path, operation, timeout=timeout or self.timeout)
        self._raise_for_status(response)
        return self._json_body(response, lambda reason: f"{what}: {reason}")

    def _post_send(self, payload: dict[str, Any]) -> requests.Response:
        """POST a send once: it is never repeated where the carrier may have taken it."""
        response = self._authorized("POST", OUTBOX_PATH, "send", json=payload, sending=True)
        self._raise_for_status(response, sending=True)
        return response

    def _retry_after(self, response: requests.Response) -> float | None:
        """The response's ``Retry-After`` in seconds, or ``None``."""
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return self._retry.parse_retry_after(value)
        except InvalidHeader:
            return None

    def _authorized(
        self, method: str, path: str, operation: str, *, sending: bool = False, **kwargs: Any
    ) -> requests.Response:
        """Make an API call with the token; on 401 refresh it and call once more."""
        token = self._tokens.get()
        call = {"token": token, "sending": sending, "operation": operation}
        response = self._request(method, path, **call, **kwargs)
        if response.status_code != 401:
            return response
        log.debug("%s %s got 401; refreshing the access token once", method, path)
        response.close()
        self._tokens.discard(token)
        call["token"] = self._tokens.get()
        return self._request(method, path, **call, **kwargs)

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        token: _Token | None = None,
        sending: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP exchange; network failures become :class:`CarrierUnavailable`."""
        headers = {"Authorization": f"Bearer {token.value}"} if token else None
        timeout = kwargs.pop("timeout", self.timeout)
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as exc:
            log.debug("%s %s failed: %s", method, path, type(exc).__name__)
            self._observe(operation, time.monotonic() - started, "error")
            raise self._network_error(exc, sending) from None
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

    def _fetch_token(self) -> _Token:
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
            raise self._carrier_error(response, AuthenticationError, "access token refused")
        self._raise_for_status(response)
        body = self._json_body(response, lambda reason: f"access token: {reason}")
        token = _read_token(body)
        self._issued.append(token.value)
        log.debug("access token received, used for %.1f s", token.lifetime)
        return token

    # -- errors -------------------------------------------------------------

    def _raise_for_status(self, response: requests.Response, *, sending: bool = False) -> None:
        """Raise the typed error for a non-2xx *response*."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise self._carrier_error(response, AuthenticationError)
        if status == 404:
            raise self._carrier_error(response, NotFoundError)
        if status == 429 or status >= 500:
            raise self._unavailable(response, sending)
        raise self._carrier_error(response, CarrierError)

    def _carrier_error(
        self,
        response: requests.Response,
        error_type: type[CarrierError],
        fallback: str | None = None,
    ) -> CarrierError:
        """Build *error_type* from the carrier's error document."""
        status = response.status_code
        kind, message_id, text = self._error_details(response, fallback)
        return error_type(text, status=status, message_id=message_id, kind=kind)

    def _unavailable(self, response: requests.Response, sending: bool) -> CarrierUnavailable:
        """5xx/429: the carrier is unavailable; a send may or may not be taken."""
        message = str(self._carrier_error(response, CarrierError))
        status = response.status_code
        if sending and status not in SEND_REFUSED_STATUSES:
            return SendUncertain(f"{message}; {_UNCERTAIN_HINT}", status=status)
        if sending:
            wait = self._retry_after(response)
            later = f"; try again in {wait:.0f} s" if wait else "; try again shortly"
            return CarrierUnavailable(
                f"{message}; the carrier refused the message (rate limit){later}", status=status
            )
        return CarrierUnavailable(message, status=status)

    def _error_details(
        self, response: requests.Response, fallback: str | None
    ) -> tuple[str | None, str | None, str]:
        """``(kind, message_id, text)`` of an error response, redacted."""
        body = _json_or_none(response)
        details = carrier_error_details(body)
        if details is not None:
            kind, message_id, text = details
            return kind, message_id, self._clean(text)
        oauth = _oauth_error_text(body)
        if oauth:
            return None, None, self._clean(f"{oauth} (HTTP {response.status_code})")
        plain = f"HTTP {response.status_code} from carrier"
        return None, None, f"{fallback}: {plain}" if fallback else plain

    def _network_error(self, exc: requests.RequestException, sending: bool) -> CarrierUnavailable:
        """A plain, secret-free error for a failed exchange."""
        where = _host_of(self.base_url)
        if _not_sent(exc):
            return CarrierUnavailable(_connect_failure(exc, where, self.timeout[0]))
        reason = _exchange_failure(exc, where, self.timeout[1])
        if sending:
            return SendUncertain(f"{reason}; {_UNCERTAIN_HINT}")
        return CarrierUnavailable(reason)

    def _json_body(self, response: requests.Response, describe: Callable[[str], str]) -> Any:
        """The JSON body of a 2xx *response*, or :class:`ProtocolError`.

        A body that parses as JSON is read whatever its Content-Type: carriers have
        served JSON as ``text/plain``, ``text/json`` or with no type at all.
        """
        content_type = response.headers.get("Content-Type", "")
        try:
            body = response.json()
        except ValueError:
            status = response.status_code
            if _is_json_type(content_type):
                reason = f"malformed JSON in an HTTP {status} answer"
            else:
                shown = content_type.split(";")[0].strip() or "no content type"
                reason = f"expected JSON, got {shown} in an HTTP {status} answer"
            raise ProtocolError(describe(reason)) from None
        if not _is_json_type(content_type):
            shown = content_type.split(";")[0].strip() or "no content type"
            log.debug("read a JSON answer served as %s", shown)
        return body

    def _clean(self, text: str) -> str:
        """One line, bounded, with the secret and tokens blanked out."""
        text = " ".join(text.split())
        for secret in (self._client_secret, *self._issued):
            if secret:
                text = text.replace(secret, "***")
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 3] + "..."
        return text


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


def _host_of(base_url: str) -> str:
    """``host:port`` of *base_url*, without any user information."""
    parts = urlsplit(base_url)
    host = parts.hostname or "carrier"
    return f"{host}:{parts.port}" if parts.port else host


# --------------------------------------------------------------------------
# Small helpers: network errors
# --------------------------------------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    """*exc*, its arguments' and reasons' exceptions and its causes, in order."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__"):
            inner = getattr(current, attr, None)
            if isinstance(inner, BaseException):
                pending.append(inner)
    return seen


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the connection could not be opened: nothing reached the carrier."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    return any(isinstance(c, ConnectTimeoutError) for c in _causes(exc))


def _connect_failure(exc: requests.RequestException, where: str, timeout: float) -> str:
    """Message for a connection that could not be opened."""
    causes = _causes(exc)
    if any(isinstance(c, NameResolutionError) for c in causes):
        return f"could not reach the carrier at {where}: host name not found"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"could not reach the carrier at {where}: connection refused"
    if isinstance(exc, requests.ConnectTimeout):
        return f"could not reach the carrier at {where}: no connection within {timeout:g} s"
    return f"could not reach the carrier at {where}"


def _exchange_failure(exc: requests.RequestException, where: str, timeout: float) -> str:
    """Message for an exchange that broke after the connection was opened."""
    if isinstance(exc, requests.ReadTimeout) or any(
        isinstance(c, ReadTimeoutError) for c in _causes(exc)
    ):
        return f"the carrier at {where} did not answer within {timeout:g} s"
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return f"the connection to the carrier at {where} broke before a complete answer"
    return f"the request to the carrier at {where} failed ({type(exc).__name__})"


# --------------------------------------------------------------------------
# Small helpers: reading bodies
# --------------------------------------------------------------------------


def _is_json_type(content_type: str) -> bool:
    """True for ``application/json`` and ``application/*+json`` media types."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json":
        return True
    return media.startswith("application/") and media.endswith("+json")


def _json_or_none(response: requests.Response) -> Any:
    """The body as JSON whatever its content type, or ``None``."""
    try:
        return response.json()
    except ValueError:
        return None


def _oauth_error_text(body: Any) -> str | None:
    """``error_description`` (or ``error``) of an OAuth error document."""
    description = _field(body, "error_description")
    code = _field(body, "error")
    if isinstance(description, str) and description:
        return f"{code}: {description}" if isinstance(code, str) and code else description
    return code if isinstance(code, str) and code else None


def _field(mapping: Any, name: str) -> Any:
    """``mapping[name]`` matched case-insensitively; ``None`` if absent."""
    if not isinstance(mapping, Mapping):
        return None
    if name in mapping:
        return mapping[name]
    wanted = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _as_list(value: Any) -> list[Any]:
    """A list of objects: a single object becomes one item, nothing is empty."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _text(mapping: Any, name: str, what: str) -> str:
    """A required scalar field as a string, or :class:`ProtocolError`."""
    value = _optional_text(mapping, name)
    if not value:
        raise ProtocolError(f"{what}: the carrier's answer has no {name}")
    return value


def _optional_text(mapping: Any, name: str) -> str | None:
    """An optional scalar field as a string."""
    value = _field(mapping, name)
    if value is None or isinstance(value, (Mapping, list, bool)):
        return None
    return str(value)


def _optional_int(value: Any) -> int | None:
    """An integer given as a number or a numeric string; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def _read_token(body: Any) -> _Token:
    """Token and usable lifetime from the token endpoint's answer."""
    value = _field(body, "access_token")
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n"):
        raise ProtocolError("access token: the carrier's answer has no usable access_token")
    expires_in = _optional_int(_field(body, "expires_in"))
    lifetime = float(expires_in) if expires_in and expires_in > 0 else DEFAULT_TOKEN_LIFETIME
    return _Token(value=value.strip(), lifetime=_usable_lifetime(lifetime))


def _send_unreadable(reason: str) -> str:
    """Message for an accepted send whose answer cannot be read."""
    return (
        f"the carrier accepted the message but its answer could not be read ({reason}); "
        "the message id is unknown: do not send it again"
    )


def _read_send_result(body: Any, recipients: tuple[str, ...], status: int) -> SendResult:
    """:class:`SendResult` from ``outboundSMSResponse`` / ``OutboundSMSResponse``."""
    outbound = _field(body, "outboundSMSResponse")
    message_id = _optional_text(outbound, "messageId")
    if not message_id:
        raise ProtocolError(_send_unreadable(f"no messageId in an HTTP {status} answer"))
    reference = _field(outbound, "resourceReference")
    resource_url = _optional_text(reference, "resourceURL")
    return SendResult(message_id=message_id, resource_url=resource_url, addresses=recipients)


def _read_delivery_infos(body: Any) -> list[DeliveryInfo]:
    """Delivery infos from ``deliveryInfoList`` / ``DeliveryInfoList``."""
    if not isinstance(body, Mapping):
        raise ProtocolError("delivery status: the carrier's answer is not a JSON object")
    info_list = _field(body, "deliveryInfoList")
    if isinstance(info_list, list):
        items = info_list
    else:
        items = _as_list(_field(info_list, "deliveryInfo"))
    return [_read_delivery_info(item) for item in items]


def _read_delivery_info(item: Any) -> DeliveryInfo:
    """One :class:`DeliveryInfo`."""
    what = "delivery status"
    return DeliveryInfo(
        address=_text(item, "address", what),
        status=_text(item, "deliveryStatus", what),
    )


def _read_inbound_batch(body: Any) -> InboundBatch:
    """Messages and pending count from ``inboundSMSMessageList``, item by item.

    The inbox read is destructive: an item that cannot be used is described in
    ``skipped`` and never costs the rest of the batch.
    """
    if not isinstance(body, Mapping):
        raise ProtocolError("inbound messages: the carrier's answer is not a JSON object")
    box = _field(body, "inboundSMSMessageList")
    container = box if isinstance(box, Mapping) else body
    skipped: list[str] = []
    if isinstance(box, list):
        items = box
    else:
        items = _as_list(_field(container, "inboundSMSMessage"))
        if box is not None and not isinstance(box, Mapping):
            skipped.append(f"the message list is a {_kind(box)}, not an object or a list")
    messages: list[InboundMessage] = []
    for index, item in enumerate(items, start=1):
        message = _read_inbound_message(item)
        if isinstance(message, InboundMessage):
            messages.append(message)
        else:
            skipped.append(f"item {index}: {message}")
    stated = _optional_int(_field(container, "numberOfMessagesInThisBatch"))
    if stated is not None and stated > len(items):
        skipped.append(f"the carrier counted {stated} messages in this batch but sent {len(items)}")
    pending = _field(container, "totalNumberOfPendingMessages")
    if pending is None:
        pending = _field(body, "totalNumberOfPendingMessages")
    return InboundBatch(messages=messages, pending=_optional_int(pending), skipped=skipped)


def _read_inbound_message(item: Any) -> InboundMessage | str:
    """One :class:`InboundMessage`, or why the item cannot be used (no message text in it).

    An item is kept when it has a text or a sender; a missing id is ``""`` (the
    caller then keys the message by its content).
    """
    if not isinstance(item, Mapping):
        return f"a {_kind(item)}, not an object"
    text = _optional_text(item, "message")
    sender = (_optional_text(item, "senderAddress") or "").strip()
    if not text and not sender:
        return _cut(f"no message text and no sender (fields: {_field_names(item)})")
    return InboundMessage(
        message_id=(_optional_text(item, "messageId") or "").strip(),
        message=text or "",
        sender_address=sender,
        destination_address=_optional_text(item, "destinationAddress"),
        date_time=_optional_text(item, "dateTime"),
    )


def _kind(value: Any) -> str:
    """A JSON type name for *value*, for a description."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else type(value).__name__


def _field_names(item: Mapping[Any, Any], limit: int = 6) -> str:
    """The first few key names of *item* (carrier field names, never values)."""
    names = [str(key)[:30] for key in list(item)[:limit]]
    more = len(item) - len(names)
    shown = ", ".join(names) or "none"
    return f"{shown} and {more} more" if more > 0 else shown


def _cut(text: str) -> str:
    """*text* on one line, at most ``MAX_SKIPPED_TEXT`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_SKIPPED_TEXT else text[: MAX_SKIPPED_TEXT - 3] + "..."
