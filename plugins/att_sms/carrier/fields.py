"""Reading one field of a carrier's JSON answer, whatever the case of its key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def field_of(mapping: Any, name: str) -> Any:
    """``mapping[name]``, else the first key equal to ``name`` ignoring case; ``None`` if
    absent or when ``mapping`` is not a mapping (carriers vary the case of their keys)."""
    if not isinstance(mapping, Mapping):
        return None
    if name in mapping:
        return mapping[name]
    wanted = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None
