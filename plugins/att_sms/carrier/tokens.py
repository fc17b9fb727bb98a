"""The OAuth access token: reading it from the carrier's answer, and its cache.

:class:`TokenCache` holds at most one client-credentials token until shortly
before it expires (a TLRU cache); a lock makes concurrent cold callers fetch it
once, and a token the carrier refused is dropped only if it is still the cached one.
:func:`read_token` reads the token endpoint's answer.  A token's value is never
shown in a ``repr``.  :meth:`TokenCache.status` tells ``!sms health`` how long the
cached token is still used, or why the last fetch failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TLRUCache

from .answers import optional_int
from .errors import AttSmsError, ProtocolError
from .fields import field_of

#: Token lifetime assumed when the carrier gives none (or nonsense).
DEFAULT_TOKEN_LIFETIME = 3600.0

_TOKEN_KEY = "token"


@dataclass(frozen=True)
class Token:
    """An access token; its value is kept out of ``repr``."""

    value: str = field(repr=False)
    lifetime: float


@dataclass(frozen=True)
class TokenStatus:
    """What the cache knows: the cached token's seconds left, or why the last fetch failed.

    Both ``None``: no token was fetched yet (or it expired and none was needed since).
    """

    seconds_left: float | None = None
    error: str | None = None


def _token_expiry(_key: str, token: Token, now: float) -> float:
    """TLRU time-to-use: when the cached *token* stops being used."""
    return now + token.lifetime


def _usable_lifetime(expires_in: float) -> float:
    """Lifetime minus a safety margin, so a token is never used at its edge."""
    return expires_in - min(60.0, expires_in / 10.0)


class TokenCache:
    """One cached token; a lock makes concurrent cold callers fetch it once."""

    def __init__(self, fetch: Callable[[], Token]) -> None:
        self._fetch = fetch
        self._cache: TLRUCache[str, Token] = TLRUCache(maxsize=1, ttu=_token_expiry)
        self._lock = threading.Lock()
        self._expires_at = 0.0  # on the cache's timer
        self._last_error: str | None = None

    def get(self) -> Token:
        """Return the cached token, fetching a new one if there is none."""
        with self._lock:
            token = self._cache.get(_TOKEN_KEY)
            if token is None:
                try:
                    token = self._fetch()
                except Exception as exc:
                    self._last_error = _failure_text(exc)
                    raise
                self._cache[_TOKEN_KEY] = token
                self._expires_at = self._cache.timer() + token.lifetime
                self._last_error = None
            return token

    def status(self) -> TokenStatus:
        """The cached token's remaining usable lifetime, or the last fetch's failure."""
        with self._lock:
            if self._cache.get(_TOKEN_KEY) is None:
                return TokenStatus(error=self._last_error)
            return TokenStatus(seconds_left=max(0.0, self._expires_at - self._cache.timer()))

    def discard(self, token: Token) -> None:
        """Drop *token*, unless another caller already replaced it."""
        with self._lock:
            if self._cache.get(_TOKEN_KEY) is token:
                self._cache.pop(_TOKEN_KEY, None)

    def clear(self) -> None:
        """Forget any cached token (and the last failure)."""
        with self._lock:
            self._cache.clear()
            self._last_error = None


def _failure_text(exc: BaseException) -> str:
    """A failed fetch in words: the client's errors are already secret-free; others by type."""
    if isinstance(exc, AttSmsError):
        return str(exc)
    return f"token request failed ({type(exc).__name__})"


def read_token(body: Any) -> Token:
    """Token and usable lifetime from the token endpoint's answer."""
    value = field_of(body, "access_token")
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n"):
        raise ProtocolError("access token: the carrier's answer has no usable access_token")
    expires_in = optional_int(field_of(body, "expires_in"))
    lifetime = float(expires_in) if expires_in and expires_in > 0 else DEFAULT_TOKEN_LIFETIME
    return Token(value=value.strip(), lifetime=_usable_lifetime(lifetime))
