"""The OAuth access token: reading it from the carrier's answer, and its cache.

:class:`_TokenCache` holds at most one client-credentials token until shortly
before it expires (a TLRU cache); a lock makes concurrent cold callers fetch it
once, and a token the carrier refused is dropped only if it is still the cached one.
:func:`_read_token` reads the token endpoint's answer.  A token's value is never
shown in a ``repr``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TLRUCache

from .answers import _field, _optional_int
from .errors import ProtocolError

#: Token lifetime assumed when the carrier gives none (or nonsense).
DEFAULT_TOKEN_LIFETIME = 3600.0

_TOKEN_KEY = "token"


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


def _read_token(body: Any) -> _Token:
    """Token and usable lifetime from the token endpoint's answer."""
    value = _field(body, "access_token")
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n"):
        raise ProtocolError("access token: the carrier's answer has no usable access_token")
    expires_in = _optional_int(_field(body, "expires_in"))
    lifetime = float(expires_in) if expires_in and expires_in > 0 else DEFAULT_TOKEN_LIFETIME
    return _Token(value=value.strip(), lifetime=_usable_lifetime(lifetime))
