"""Parse, validate and normalise phone numbers to ``tel:+E164`` URIs.

Built on the public API of the ``phonenumbers`` library.  What is accepted:

* ``tel:`` URIs, with or without ``+`` and with RFC 3966 visual separators
  (``tel:+1-212-555-1234``, ``tel:2125551234``).  A ``tel:`` number without
  ``+`` is read like any other national number of the default region.
  URI parameters (``;ext=``, ``;phone-context=``) are refused.
* E.164 and international numbers with a ``+`` or ``00`` prefix, and the
  default region's own international prefix (``011`` in the US).
* National numbers with spaces and punctuation: ``(212) 555-1234``,
  ``212.555.1234``, ``030/123456``.

Refused, each with its own reason: empty text, text with anything other than
ASCII digits, a leading ``+`` and the separators `` -./()`` (so no letters,
no vanity numbers, no extensions, no surrounding prose), numbers that are too
short or too long (more than the 15 digits E.164 allows, even where
``phonenumbers`` knows longer national numbers), numbers ``phonenumbers.is_valid_number`` rejects,
premium-rate numbers, and shared-cost numbers.

Shared-cost numbers (for example German 0180, French 081x/082x/0884) are
refused like premium-rate ones: the sender pays a surcharge and such numbers
are voice service lines that do not take SMS anyway.  Toll-free numbers are
accepted (many US toll-free numbers are SMS-enabled).

When ``allowed_regions`` is set, a number whose region (``phonenumbers``
region of the number, e.g. ``CA`` for ``+1 416 ...``) is outside it is
refused; non-geographic numbers (``+800``, ``+882`` ...) have no region and
are then refused too.
"""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

__all__ = ["NumberError", "NumberRules", "canonical_sender", "display_number", "region_of"]

#: Longest input (after stripping blanks and ``tel:``) worth parsing.  The
#: longest E.164 number is 15 digits; this leaves room for separators.
_MAX_INPUT = 40
#: Most characters of a refused input the error message quotes (and most
#: characters its repr() may take).
_MAX_SHOWN = 40
_MAX_SHOWN_REPR = 64
#: E.164 allows at most 15 digits, country code included.
_MAX_E164_DIGITS = 15
_SEPARATORS = frozenset(" -./()")
_DIGITS = frozenset("0123456789")

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length for its country",
}

_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate number",
    PhoneNumberType.SHARED_COST: "shared-cost number",
}


def _shown(raw: str) -> str:
    """Quote ``raw`` for a one-line message: repr-escaped and shortened."""
    shown = repr(raw)
    if len(shown) <= _MAX_SHOWN_REPR:
        return shown
    for size in range(min(len(raw), _MAX_SHOWN), 0, -1):
        shown = repr(raw[:size] + "\u2026")
        if len(shown) <= _MAX_SHOWN_REPR:
            return shown
    return repr("\u2026")


class NumberError(ValueError):
    """A phone number was refused.

    ``raw`` is the input as given, ``reason`` a short phrase saying why.
    ``str(e)`` is one line: ``'+1 900 234 5678' is not allowed: premium-rate number``.
    """

    def __init__(self, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"{_shown(raw)} is not allowed: {reason}")


def _check_region(code: object, what: str) -> str:
    if not isinstance(code, str) or code.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region code for {what}: {code!r}")
    return code.upper()


#: How many accepted numbers ``NumberRules.normalise`` remembers (all rules together).
KNOWN_NUMBERS = 4096
_KNOWN: dict[tuple[str, str, frozenset[str] | None], str] = {}


def _strip_tel(text: str) -> str:
    if text[:4].lower() == "tel:":
        return text[4:]
    return text


class NumberRules:
    """Rules for numbers we may send to; ``normalise`` applies them.

    ``default_region`` reads national numbers; ``allowed_regions``, when not
    ``None``, limits destinations to those regions.  Region codes are ISO
    3166 alpha-2 codes known to ``phonenumbers`` (case-insensitive); an
    unknown one, or an empty ``allowed_regions``, raises ``ValueError``.
    """

    def __init__(
        self,
        default_region: str = "US",
        allowed_regions: Iterable[str] | None = None,
    ) -> None:
        self.default_region = _check_region(default_region, "default_region")
        if allowed_regions is None:
            self.allowed_regions: frozenset[str] | None = None
        else:
            if isinstance(allowed_regions, str):
                raise ValueError("allowed_regions must be a set of region codes, not a string")
            regions = frozenset(_check_region(r, "allowed_regions") for r in allowed_regions)
            if not regions:
                raise ValueError("allowed_regions is empty: no number could be sent to")
            self.allowed_regions = regions

    def __repr__(self) -> str:
        allowed = None if self.allowed_regions is None else sorted(self.allowed_regions)
        return f"NumberRules(default_region={self.default_region!r}, allowed_regions={allowed!r})"

    def normalise(self, raw: str) -> str:
        """Return ``raw`` as ``tel:+E164``, or raise ``NumberError`` saying why not.

        Accepted numbers are remembered (at most ``KNOWN_NUMBERS``, for the same rules):
        parsing costs ~0.1 ms a number and a team pages the same few numbers again and
        again. Refusals are not remembered (each is parsed again, with its reason).
        """
        key = (raw, self.default_region, self.allowed_regions)
        known = _KNOWN.get(key) if isinstance(raw, str) else None
        if known is None:
            known = self._parse(raw)
            if len(_KNOWN) >= KNOWN_NUMBERS:
                _KNOWN.clear()
            _KNOWN[key] = known
        return known

    def _parse(self, raw: str) -> str:
        """``raw`` as ``tel:+E164``, or ``NumberError`` saying why not.

        About 55 lines on purpose: the checks run in the order a person reads a number
        (type, empty, ``tel:`` URI, characters, length, parse, region, validity), each
        with its own message; split, the order that the messages depend on would be lost.
        """
        if not isinstance(raw, str):
            raise NumberError(repr(raw), "not a phone number")
        text = raw.strip()
        if not text:
            raise NumberError(raw, "empty number")
        is_uri = text[:4].lower() == "tel:"
        text = _strip_tel(text).strip()
        if is_uri and ";" in text:
            raise NumberError(raw, "tel: URI parameters are not supported")
        if not text:
            raise NumberError(raw, "empty number")
        body = text[1:] if text.startswith("+") else text
        if any(c not in _DIGITS and c not in _SEPARATORS for c in body):
            raise NumberError(raw, "not a phone number")
        if len(text) > _MAX_INPUT:
            raise NumberError(raw, "too long")
        digits = "".join(c for c in body if c in _DIGITS)
        if not digits:
            raise NumberError(raw, "not a phone number")
        if len(digits) < 3:
            raise NumberError(raw, "too short")
        if not text.startswith("+") and digits.startswith("00"):
            # 00 is the international prefix almost everywhere; no national
            # number starts with it, so read it as "+" whatever the region.
            text, digits = "+" + digits[2:], digits[2:]
            if len(digits) < 3:
                raise NumberError(raw, "too short")
        try:
            number = phonenumbers.parse(text, self.default_region)
        except NumberParseException as exc:
            reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
            raise NumberError(raw, reason) from None
        if number.extension:
            raise NumberError(raw, "extensions are not supported")
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
            raise NumberError(raw, _POSSIBLE_REASONS.get(possible, "not a valid number"))
        if not phonenumbers.is_valid_number(number):
            raise NumberError(raw, "not a valid number")
        refused = _REFUSED_TYPES.get(phonenumbers.number_type(number))
        if refused:
            raise NumberError(raw, refused)
        if self.allowed_regions is not None:
            region = _region(number)
            if region not in self.allowed_regions:
                where = region or "no region"
                allowed = ", ".join(sorted(self.allowed_regions))
                raise NumberError(raw, f"region {where} is not allowed (allowed: {allowed})")
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if len(e164) - 1 > _MAX_E164_DIGITS:
            # phonenumbers accepts a few national plans (e.g. German 0201 with
            # 11-digit subscriber numbers) past the E.164 maximum.
            raise NumberError(raw, "too long")
        return "tel:" + e164


def _region(number: phonenumbers.PhoneNumber) -> str | None:
    region = phonenumbers.region_code_for_number(number)
    if not region or region in ("ZZ", "001"):
        return None
    return region


def _parse_tel(tel: object) -> phonenumbers.PhoneNumber | None:
    if not isinstance(tel, str):
        return None
    text = _strip_tel(tel.strip()).strip()
    if not text.startswith("+") or len(text) > _MAX_INPUT or ";" in text:
        return None
    try:
        number = phonenumbers.parse(text, None)
    except NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def display_number(tel: str) -> str:
    """Show a ``tel:+E164`` (or ``+E164``) number readably: ``+1 212-555-1234``.

    Anything that does not parse as an international number comes back as
    given (callers showing untrusted text must still neutralise it).
    """
    number = _parse_tel(tel)
    if number is None:
        return tel
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def region_of(tel: str) -> str | None:
    """Region code (``"US"``, ``"GB"``...) of a ``tel:+E164`` number.

    ``None`` if it does not parse or belongs to no single region
    (non-geographic ``+800``-style numbers).
    """
    number = _parse_tel(tel)
    if number is None:
        return None
    return _region(number)


def canonical_sender(raw: str, default_region: str = "US") -> str:
    """An inbound sender as ``tel:+E164`` when it is a phone number, else ``raw`` stripped.

    Carriers write one sender several ways (``tel:+12125551234``, ``tel:2125551234``,
    ``12125551234``, ``+1 212 555 1234``); all become ``tel:+12125551234`` so that opt-outs,
    names and replies match.  A number with ``+`` (or ``00``) only has to be possible for
    its country; one without needs to be a valid number of ``default_region``, so short
    codes (``12345``) and alphanumeric sender ids (``oncall``) come back unchanged.  Unlike
    ``NumberRules.normalise`` nothing is refused for its type or region: this names who
    wrote, it does not decide where we may send.
    """
    text = raw.strip()
    body = _strip_tel(text).strip()
    if not body or ";" in body or len(body) > _MAX_INPUT:
        return text
    international = body.startswith("+")
    digits = body[1:] if international else body
    if any(c not in _DIGITS and c not in _SEPARATORS for c in digits):
        return text
    digits = "".join(c for c in digits if c in _DIGITS)
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    number = _parse_sender(digits, international, default_region)
    if number is None:
        return text
    return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_sender(
    digits: str, international: bool, default_region: str
) -> phonenumbers.PhoneNumber | None:
    if len(digits) < 3 or len(digits) > _MAX_E164_DIGITS + 3:
        return None
    try:
        if international:
            number = phonenumbers.parse("+" + digits, None)
            return number if phonenumbers.is_possible_number(number) else None
        number = phonenumbers.parse(digits, _check_region(default_region, "default_region"))
    except NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None
