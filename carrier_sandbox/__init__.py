"""Carrier sandbox: a local HTTP server implementing the AT&T SMS API spec.

Run ``python -m carrier_sandbox --host 127.0.0.1 --port 8080`` or, in-process,
``with Sandbox() as sb: ...``. Besides the spec's operations (OAuth v4 token, SMS v3
outbox/status/inbox) it serves unauthenticated control endpoints under ``/sandbox/`` to
inject inbound messages (spec-shaped or raw), faults and token expiry, and to read its
state. See docs/SANDBOX.md. Secrets and issued tokens are never printed or logged.

Modules: ``sandbox`` (the ``Sandbox`` class), ``server`` (HTTP layer), ``api`` (the
carrier operations), ``recipients`` (address refusals, reserved numbers), ``faults``,
``raw_inbox``, ``control`` (``/sandbox/`` endpoints), ``store`` (SQLite state),
``spec_check`` (openapi-core checks), ``cli`` (``python -m carrier_sandbox``).
It is not part of the plugin: nothing in ``plugins/att_sms`` imports it.
"""

from carrier_sandbox.sandbox import Sandbox

__all__ = ["Sandbox"]
