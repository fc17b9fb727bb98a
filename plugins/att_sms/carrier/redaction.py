"""Every shape a secret can take in a carrier's error text, to blank them all out.

A carrier (or a proxy in front of it) may quote the token request back: form-encoded
(``+`` for a space, ``%XX`` in upper, lower or mixed case), percent-encoded, inside JSON
(escaped quotes, backslashes, ``\\uXXXX``), or as the Basic ``Authorization`` value
(base64 of ``client_id:secret``). Each of those is as good as the secret itself.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus


def secret_patterns(secret: str, client_id: str = "") -> list[re.Pattern[str]]:
    """Patterns of ``secret`` and its encodings, longest first."""
    if not secret:
        return []
    exact = {secret}
    for ascii_only in (False, True):
        exact.add(json.dumps(secret, ensure_ascii=ascii_only)[1:-1])
    raw = secret.encode("utf-8", "surrogatepass")
    values = [raw, f"{client_id}:{secret}".encode("utf-8", "surrogatepass")] if client_id else [raw]
    for value in values:
        exact.add(base64.b64encode(value).decode("ascii"))
        exact.add(base64.urlsafe_b64encode(value).decode("ascii"))
    # %XX may come back in any case: percent-encoded shapes match case-insensitively.
    percent = {quote_plus(secret, safe=""), quote(secret, safe="")} - exact
    patterns = [(s, re.compile(re.escape(s))) for s in exact if s]
    patterns += [(s, re.compile(re.escape(s), re.IGNORECASE)) for s in percent if s]
    return [p for _, p in sorted(patterns, key=lambda item: len(item[0]), reverse=True)]


def redact(text: str, secrets: Iterable[str], client_id: str = "") -> str:
    """``text`` with every shape of every secret replaced by ``***``."""
    for secret in secrets:
        for pattern in secret_patterns(secret, client_id):
            text = pattern.sub("***", text)
    return text
