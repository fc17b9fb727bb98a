"""Bounds on what the carrier may make the bot hold: one answer's bytes, one stored text.

A carrier answer is streamed and read only up to :data:`MAX_ANSWER_BYTES`; a bigger one
(announced by ``Content-Length`` or found while reading) is dropped whole and becomes
:class:`AnswerTooLarge`, so nothing of it is parsed or stored and memory stays bounded.
The inbox answer is then lost at the carrier (the read is destructive): one log line says
how big it was. An inbound text is stored cut to :data:`MAX_STORED_TEXT` characters.
"""

from __future__ import annotations

from typing import Any

from .errors import ProtocolError

#: Largest carrier answer read (bytes). A full inbox batch of long messages is some
#: hundreds of KiB; 4 MiB leaves room and still caps what one answer can cost.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: Longest inbound SMS text stored (characters). A concatenated SMS is at most 255 parts of
#: 153 GSM-7 characters (39,015); carriers cap far lower (1,600 is common).
MAX_STORED_TEXT = 40_000
_CHUNK = 64 * 1024


class AnswerTooLarge(ProtocolError):
    """The carrier's answer was larger than the bot reads; none of it was used."""


def read_capped(response: Any, what: str, limit: int = MAX_ANSWER_BYTES) -> None:
    """Read the streamed body of ``response`` into it (``.content``, ``.json()`` then work)
    or close it and raise :class:`AnswerTooLarge` once it passes ``limit`` bytes."""
    announced = response.headers.get("Content-Length", "")
    if announced.strip().isdigit() and int(announced) > limit:
        response.close()
        raise AnswerTooLarge(_too_large(what, response.status_code, int(announced), limit))
    body = bytearray()
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > limit:
            response.close()
            raise AnswerTooLarge(_too_large(what, response.status_code, None, limit))
    response._content = bytes(body)  # what requests itself does when it reads the body
    response._content_consumed = True


def _too_large(what: str, status: int, size: int | None, limit: int) -> str:
    shown = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    return (
        f"{what}: the carrier's HTTP {status} answer is {shown}, larger than the "
        f"{limit:,} bytes the bot reads; it was not read"
    )


def cap_text(text: str, limit: int = MAX_STORED_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters not kept]"
