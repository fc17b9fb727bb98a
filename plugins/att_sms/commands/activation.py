"""Reading the configuration and opening what one activation works with (no errbot here:
``AttSms.activate`` calls these with what errbot gives it)."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from att_sms.carrier.client import AttSmsClient
from att_sms.ops.metrics import Metrics
from att_sms.setting_values import SettingsError
from att_sms.settings import SECRET_ENV, Settings, has_env_configuration, parse_settings
from att_sms.store import open_store
from att_sms.store.legacy import import_legacy, legacy_ledger_path
from att_sms.text.formatting import echo
from att_sms.text.numbers import NumberRules

from .runtime import Activations, Runtime


def read_settings(config: dict[str, Any] | None) -> tuple[Settings | None, str | None]:
    """The plugin's settings from ``!plugin config`` and the environment, or why there are none."""
    if config is None and not has_env_configuration():
        return None, "no configuration yet"
    try:
        return parse_settings(config or {}), None
    except SettingsError as exc:
        return None, str(exc)


def open_runtime(
    settings: Settings,
    *,
    generation: int,
    activations: Activations,
    metrics: Metrics,
    bot: Any,
    build_identifier: Callable[[str], Any],
    data_dir: str,
    plugin_storage: MutableMapping[str, Any],
) -> Runtime:
    """Open the store (raises ``StoreError``) and the carrier client for one activation.

    ``plugin_storage`` is errbot's storage of the plugin, where releases before the store
    kept their data (imported once, ``att_sms.store.legacy``)."""
    store = open_store(
        Path(data_dir),
        database_url=settings.database_url,
        password=settings.database_password or None,
        default_region=settings.default_region,
    )
    import_legacy(store, plugin_storage, legacy_ledger_path(Path(data_dir)))
    client = AttSmsClient(
        settings.api_base_url,
        settings.client_id,
        settings.client_secret,
        settings.scope,
        read_timeout=settings.read_timeout,
        observer=metrics.observe_exchange,
    )
    return Runtime(
        settings=settings,
        store=store,
        client=client,
        rules=NumberRules(settings.default_region, settings.allowed_regions),
        metrics=metrics,
        generation=generation,
        activations=activations,
        bot=bot,
        build_identifier=build_identifier,
        data_dir=data_dir,
    )


def not_configured_text(prefix: str, problem: str | None) -> str:
    """The one line a command answers while the plugin has no usable configuration."""
    why = f" ({echo(problem, 200)})" if problem else ""
    return (
        f"AttSms is not configured{why}. Configure it with "
        f"`{prefix}plugin config AttSms {{'API_BASE_URL': 'https://...', "
        f"'CLIENT_ID': '...', 'INBOX_ROUTES': {{'<registrationId>': '#room'}}}}` "
        f"(`{prefix}plugin config AttSms` shows every key) and set "
        f"{SECRET_ENV} in the bot's environment."
    )
