"""The HTTP transport to the carrier: session, retries, keepalive, failed exchanges.

:func:`build_session` makes the one keep-alive :class:`requests.Session` an
:class:`~att_sms.carrier.client.AttSmsClient` uses (a bounded, blocking connection pool);
:func:`build_retry` makes the urllib3 ``Retry`` it is mounted with: GETs are
retried on 429/500/502/503/504 and on read errors, with exponential backoff,
honouring ``Retry-After`` (capped); any request is retried when the connection
could not be opened at all.  :func:`not_sent`, :func:`connect_failure` and
:func:`exchange_failure` tell what a failed exchange means, in plain words.

Idle connections: NAT and load balancers silently drop connections idle for a
minute or more, and a send on such a connection gets no answer (an uncertain
outcome).  Pooled sockets therefore use TCP keepalive, and a pooled connection
idle longer than ``max_idle`` is closed before it is used again.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, ReadTimeoutError
from urllib3.util.retry import Retry

__all__ = [
    "DEFAULT_MAX_IDLE",
    "GET_RETRY_STATUSES",
    "KEEPALIVE_COUNT",
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "keepalive_socket_options",
]

log = logging.getLogger(__name__)

#: Statuses on which a GET is retried by urllib3.
GET_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Pooled connections idle longer than this (seconds) are closed before reuse.
DEFAULT_MAX_IDLE = 30.0
#: TCP keepalive: first probe after this many idle seconds, then every
#: ``KEEPALIVE_INTERVAL`` s; the connection is dead after ``KEEPALIVE_COUNT`` misses.
KEEPALIVE_IDLE = 15
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


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


def build_retry(retries: int, backoff_factor: float, max_retry_after: float) -> _CappedRetry:
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


#: Pools remembered by one adapter (one per origin and TLS and proxy settings: a few).
_POOLS_KEPT = 32


class _CarrierAdapter(HTTPAdapter):
    """HTTPAdapter whose connections use TCP keepalive and are retired when idle too long,
    and which finds the connection pool of a request once per origin and settings."""

    def __init__(self, *, max_idle: float | None, **kwargs: Any) -> None:
        self._max_idle = max_idle  # set first: HTTPAdapter.__init__ builds the pool manager
        self._pools: dict[tuple[Any, ...], Any] = {}
        super().__init__(**kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: tuple[str, str] | str | None = None,
    ) -> Any:
        """The pool requests would choose, looked up once for each origin, verification,
        certificate and proxies: requests selects the proxy, parses the URL and builds the
        pool manager's key of some thirty fields on every request (~15 us), and the same
        settings always give the same pool. Closing the adapter (the session) forgets
        them, as the pool manager does; a pool closed meanwhile (urllib3 1.x closes the
        pools it evicts) is looked up again."""
        key = (*urlsplit(request.url or "")[:2], verify, cert, tuple(sorted((proxies or {}).items())))
        pool = self._pools.get(key)
        if pool is None or getattr(pool, "pool", None) is None:
            if len(self._pools) >= _POOLS_KEPT:
                self._pools.clear()
            pool = self._pools[key] = super().get_connection_with_tls_context(
                request, verify, proxies=proxies, cert=cert
            )
        return pool

    def close(self) -> None:
        self._pools.clear()
        super().close()

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


def build_session(
    pool_size: int, retry: Retry, max_idle: float | None, base_url: str
) -> requests.Session:
    """One keep-alive session with a blocking pool of *pool_size* connections.

    The environment's proxy and CA-bundle settings for *base_url* are read once, here:
    requests would otherwise read them (and ``~/.netrc``) again on every request.
    """
    session = requests.Session()
    if not _is_loopback_url(base_url):  # a proxy would see the client secret of a local carrier
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    adapter = _CarrierAdapter(
        max_idle=max_idle, pool_maxsize=pool_size, pool_block=True, max_retries=retry
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = "application/json"
    return session


class PreparedRequests:
    """``Session.request`` for a session built by :func:`build_session`, whose settings
    (headers, proxies, verification; no environment, auth, params or hooks) stay fixed.

    A request to one of the ``fixed`` (method, URL) pairs starts from a copy of a request
    prepared once, with the session's headers merged and the URL parsed and checked, and
    gets its own headers, the session's current cookies (if any), its body and the URL's
    auth (if any) in the order ``PreparedRequest.prepare`` applies them; any other request
    is prepared in full by the session. Either is sent with the session's proxies,
    verification and certificate, which is what ``Session.request`` merges on every call
    when ``trust_env`` is off. The same request goes out, ~0.1 ms sooner a send.
    """

    def __init__(self, session: requests.Session, fixed: Iterable[tuple[str, str]]) -> None:
        self._session = session
        self._fixed = frozenset(fixed)
        self._templates: dict[tuple[str, str], requests.PreparedRequest] = {}
        self._url_auth: set[str] = set()

    def send(
        self,
        method: str,
        url: str,
        *,
        timeout: Any,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        json: Any = None,
    ) -> requests.Response:
        """The answer to one request (streamed; redirects are not followed)."""
        session = self._session
        return session.send(
            self.prepare(method, url, headers=headers, data=data, json=json),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            proxies=dict(session.proxies),
            verify=session.verify,
            cert=session.cert,
        )

    def prepare(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        json: Any = None,
    ) -> requests.PreparedRequest:
        """The request ``Session.prepare_request`` would make of these arguments."""
        template = self._template(method, url)
        if template is None:
            return self._session.prepare_request(
                requests.Request(method, url, headers=headers, data=data or {}, json=json)
            )
        prepared = template.copy()
        prepared.headers.update(headers or {})
        if self._session.cookies:  # none (the usual case): no Cookie header, as in full
            cookies = RequestsCookieJar()  # a copy, as Session.prepare_request merges them
            cookies.update(self._session.cookies)
            prepared.prepare_cookies(cookies)
        prepared.prepare_body(data or {}, None, json)
        if url in self._url_auth:  # user info in the URL: its auth, as prepare() ends with
            prepared.prepare_auth(None)
        return prepared

    def _template(self, method: str, url: str) -> requests.PreparedRequest | None:
        """The request prepared once for a fixed pair (at its first use: a bad URL raises
        where ``Session.request`` would), None for any other."""
        key = (method, url)
        if key not in self._fixed:
            return None
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = self._session.prepare_request(
                requests.Request(method, url)
            )
            if any(requests.utils.get_auth_from_url(url)):
                self._url_auth.add(url)
        return template


# --------------------------------------------------------------------------
# Failed exchanges
# --------------------------------------------------------------------------


def _is_loopback_url(base_url: str) -> bool:
    """True when *base_url* names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host.endswith(".localhost") or is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ``::1``, IPv4-mapped; ``[]`` ok)."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def host_of(base_url: str) -> str:
    """``host:port`` of *base_url*, without any user information."""
    parts = urlsplit(base_url)
    host = parts.hostname or "carrier"
    return f"{host}:{parts.port}" if parts.port else host


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


def not_sent(exc: requests.RequestException) -> bool:
    """True when the connection could not be opened: nothing reached the carrier."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    return any(isinstance(c, ConnectTimeoutError) for c in _causes(exc))


def connect_failure(exc: requests.RequestException, where: str, timeout: float) -> str:
    """Message for a connection that could not be opened."""
    causes = _causes(exc)
    if any(isinstance(c, NameResolutionError) for c in causes):
        return f"could not reach the carrier at {where}: host name not found"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"could not reach the carrier at {where}: connection refused"
    if isinstance(exc, requests.ConnectTimeout):
        return f"could not reach the carrier at {where}: no connection within {timeout:g} s"
    return f"could not reach the carrier at {where}"


def exchange_failure(exc: requests.RequestException, where: str, timeout: float) -> str:
    """Message for an exchange that broke after the connection was opened."""
    if isinstance(exc, requests.ReadTimeout) or any(
        isinstance(c, ReadTimeoutError) for c in _causes(exc)
    ):
        return f"the carrier at {where} did not answer within {timeout:g} s"
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return f"the connection to the carrier at {where} broke before a complete answer"
    return f"the request to the carrier at {where} failed ({type(exc).__name__})"
