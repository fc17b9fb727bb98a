"""Rotations: who is on call, overrides and handoffs (plain Python, no errbot, no store).

``shifts`` holds the arithmetic on the zone's wall clock, ``parsing`` reads what people
type, ``text`` shows times in a rotation's zone. See docs/ROTATIONS.md.
"""

from .parsing import (
    MAX_SHIFT,
    RotationError,
    default_start,
    format_shift,
    parse_duration,
    parse_local,
    parse_shift,
    parse_zone,
)
from .shifts import (
    MIN_SHIFT,
    OnCall,
    Override,
    Rotation,
    local_instant,
    local_time,
    newest_override,
)
from .text import format_local

__all__ = [
    "MAX_SHIFT", "MIN_SHIFT", "OnCall", "Override", "Rotation", "RotationError",
    "default_start", "format_local", "format_shift", "local_instant", "local_time",
    "newest_override", "parse_duration", "parse_local", "parse_shift", "parse_zone",
]  # fmt: skip
