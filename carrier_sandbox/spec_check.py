"""Check sandbox traffic against the OpenAPI spec with openapi-core (test dependency).

``SpecChecker`` is imported lazily by the sandbox only when ``validate=True``; it
turns openapi-core errors into short human-readable strings. Validation calls are
serialised by a private lock (openapi-core objects are not documented as
thread-safe); callers record the returned strings under their own lock.

Two deliberate tolerances, both consequences of the spec rather than departures:
* security: the spec's global ``oauth2`` requirement is checked here as "an
  ``Authorization: Bearer`` header is present" (openapi-core cannot check oauth2);
* an undocumented ``401`` on a secured operation (the status and inbox operations
  list no 401) is accepted when its body is an ``ErrorResponse``: a 401 is how the
  global security requirement is enforced.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "att-sms-openapi.yaml"
# openapi-core matches the request URL against the spec's servers.
_SPEC_HOST = "https://api.att.com"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """One line for an openapi-core error: its type plus the nested schema errors."""
    found: list[str] = []
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        for err in getattr(cur, "schema_errors", None) or ():
            where = "/".join(str(p) for p in getattr(err, "absolute_path", ())) or "<root>"
            found.append(f"at {where}: {_short(str(getattr(err, 'message', err)))}")
        cur = cur.__cause__ or cur.__context__
    if found:
        return f"{type(exc).__name__}: " + "; ".join(found)
    detail = "; ".join(_short(f"{type(e).__name__}: {e}") for e in chain if str(e))
    return detail or type(exc).__name__


class SpecChecker:
    """Validate raw HTTP requests/responses against the sandbox's OpenAPI spec."""

    def __init__(self, spec_path: Path | str = SPEC_PATH) -> None:
        import jsonschema
        import yaml
        from jsonschema_path import SchemaPath
        from openapi_core import V30ResponseValidator
        from openapi_core.testing import MockRequest, MockResponse
        from openapi_core.validation.request.validators import (
            V30RequestBodyValidator,
            V30RequestParametersValidator,
        )

        with open(spec_path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        spec = SchemaPath.from_dict(raw)
        self._lock = threading.Lock()
        self._mock_request = MockRequest
        self._mock_response = MockResponse
        self._body = V30RequestBodyValidator(spec)
        self._params = V30RequestParametersValidator(spec)
        self._response = V30ResponseValidator(spec)
        self._error_schema = jsonschema.Draft4Validator(
            raw["components"]["schemas"]["ErrorResponse"]
        )
        self._raw = raw

    def _is_operation(self, template: str | None, method: str) -> TypeGuard[str]:
        return template is not None and method.lower() in self._raw["paths"].get(template, {})

    def _secured(self, template: str, method: str) -> bool:
        op = self._raw["paths"].get(template, {}).get(method.lower(), {})
        return bool(op.get("security", self._raw.get("security", [])))

    def _responses(self, template: str, method: str) -> Mapping[str, Any]:
        responses: Mapping[str, Any] = (
            self._raw["paths"].get(template, {}).get(method.lower(), {}).get("responses", {})
        )
        return responses

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        content_type: str | None,
    ) -> Any:
        return self._mock_request(
            _SPEC_HOST,
            method,
            path,
            args=dict(query),
            headers=dict(headers),
            data=body or None,
            content_type=(content_type or "").lower(),
        )

    def check_request(
        self,
        method: str,
        path: str,
        template: str | None,
        *,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        content_type: str | None,
    ) -> list[str]:
        """Violations of one request (empty when it conforms)."""
        label = f"{method} {path}"
        if not self._is_operation(template, method):
            return [f"request {label}: no such operation in the spec"]
        out: list[str] = []
        req = self._request(method, path, query, headers, body, content_type)
        with self._lock:
            errors = list(self._params.iter_errors(req)) + list(self._body.iter_errors(req))
        out.extend(f"request {label}: {_describe(e)}" for e in errors)
        if self._secured(template, method):
            auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                out.append(
                    f"request {label}: missing Authorization bearer token (spec security: oauth2)"
                )
        return out

    def check_response(
        self,
        method: str,
        path: str,
        template: str | None,
        *,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        content_type: str | None,
    ) -> list[str]:
        """Violations of one response to a spec operation (empty when it conforms)."""
        if not self._is_operation(template, method):
            return []  # outside the spec (unknown path or method): nothing to conform to
        label = f"{method} {path} -> {status}"
        ctype = (content_type or "").lower()
        if str(status) not in self._responses(
            template, method
        ) and "default" not in self._responses(template, method):
            if status == 401 and self._secured(template, method):
                return self._check_error_body(label, body, ctype)
            return [f"response {label}: status {status} is not documented for {method} {template}"]
        req = self._request(method, path, {}, {}, b"", None)
        resp = self._mock_response(
            body, status_code=status, headers=dict(headers), content_type=ctype
        )
        with self._lock:
            errors = list(self._response.iter_errors(req, resp))
        return [f"response {label}: {_describe(e)}" for e in errors]

    def _check_error_body(self, label: str, body: bytes, ctype: str) -> list[str]:
        if ctype.split(";")[0].strip() != "application/json":
            return [f"response {label}: content type {ctype!r} is not application/json"]
        try:
            data = json.loads(body)
        except ValueError as exc:
            return [f"response {label}: body is not JSON ({exc})"]
        with self._lock:
            errors = [e.message for e in self._error_schema.iter_errors(data)]
        return [f"response {label}: ErrorResponse schema: {m}" for m in errors]
