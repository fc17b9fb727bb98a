"""Shared fixtures: a real carrier sandbox over HTTP on a free loopback port.

Every sandbox started here validates its traffic against the OpenAPI spec; a test
whose sandbox produced a response that does not conform to the spec fails at
teardown. Request violations are only reported on (a misbehaving client is
sometimes what a test is about).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botkit import TEST_CLIENT_ID, TEST_CLIENT_SECRET

from carrier_sandbox import Sandbox

_DEFAULTS: dict[str, Any] = {
    "client_id": TEST_CLIENT_ID,
    "client_secret": TEST_CLIENT_SECRET,
    "token_ttl": 3600,
    "delivery_delay": 0.3,
    "validate": True,
}


def _check_responses(box: Sandbox) -> None:
    """Fail the test when the sandbox answered anything that breaks the spec."""
    violations = box.response_violations
    if violations:
        pytest.fail(
            "carrier sandbox responses violate the spec:\n" + "\n".join(violations), pytrace=False
        )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, client_secret: str) -> None:
    """A bot environment with the client secret and no ATT_* configuration of its own."""
    for name in ("ATT_API_BASE_URL", "ATT_CLIENT_ID", "ATT_INBOX_ROUTES", "ATT_POLL_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATT_CLIENT_SECRET", client_secret)


@pytest.fixture
def client_id() -> str:
    """The client id every test sandbox accepts."""
    return TEST_CLIENT_ID


@pytest.fixture
def client_secret() -> str:
    """The client secret every test sandbox accepts."""
    return TEST_CLIENT_SECRET


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox (delivery_delay 0.3 s, spec validation on)."""
    box = Sandbox(**_DEFAULTS).start()
    try:
        yield box
        _check_responses(box)
    finally:
        box.stop()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with custom options (test defaults otherwise); all stopped at teardown."""
    boxes: list[Sandbox] = []

    def make(**kw: Any) -> Sandbox:
        box = Sandbox(**{**_DEFAULTS, **kw}).start()
        boxes.append(box)
        return box

    try:
        yield make
        for box in boxes:
            _check_responses(box)
    finally:
        for box in boxes:
            box.stop()
