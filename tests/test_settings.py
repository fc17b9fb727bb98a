"""Settings parsing: every refusal names its key; the secret only ever comes from the env."""

from __future__ import annotations

import pytest
from att_sms.settings import SettingsError, has_env_configuration, parse_settings

ENV = {"ATT_CLIENT_SECRET": "s3cret-value"}
BASE = {"API_BASE_URL": "http://127.0.0.1:8080/", "CLIENT_ID": "client"}


def test_defaults() -> None:
    s = parse_settings(BASE, ENV)
    assert s.api_base_url == "http://127.0.0.1:8080"
    assert (s.scope, s.default_region, s.max_parts, s.poll_interval) == ("SMS", "US", 4, 30.0)
    assert s.allowed_regions is None and s.inbox_routes == {} and s.sender_address is None
    assert "s3cret-value" not in repr(s)


def test_environment_fallbacks_and_config_precedence() -> None:
    env = {
        **ENV,
        "ATT_API_BASE_URL": "https://gw.example",
        "ATT_CLIENT_ID": "env-client",
        "ATT_INBOX_ROUTES": '{"r1": "#ops"}',
        "ATT_POLL_INTERVAL": "5",
        "ATT_ALLOWED_REGIONS": "us, gb",
        "ATT_MAX_PARTS": "2",
        "ATT_FOLLOW_UP": "off",
    }
    s = parse_settings({}, env)
    assert s.api_base_url == "https://gw.example" and s.client_id == "env-client"
    assert s.inbox_routes == {"r1": "#ops"} and s.poll_interval == 5.0
    assert s.allowed_regions == frozenset({"US", "GB"}) and s.max_parts == 2
    assert s.follow_up is False
    assert parse_settings({"CLIENT_ID": "cfg"}, env).client_id == "cfg"
    assert has_env_configuration(env) and not has_env_configuration(ENV)


def test_missing_secret() -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings(BASE, {})
    assert err.value.key == "ATT_CLIENT_SECRET"
    assert parse_settings(BASE, {}, require_secret=False).client_secret == ""


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"API_BASE_URL": None}, "API_BASE_URL"),
        ({"API_BASE_URL": "http://user:pw@host"}, "API_BASE_URL"),
        ({"CLIENT_ID": 3}, "CLIENT_ID"),
        ({"SCOPE": "  "}, "SCOPE"),
        ({"INBOX_ROUTES": {"": "#x"}}, "INBOX_ROUTES"),
        ({"POLL_INTERVAL": True}, "POLL_INTERVAL"),
        ({"MAX_PARTS": 11}, "MAX_PARTS"),
        ({"FOLLOW_UP": "maybe"}, "FOLLOW_UP"),
        ({"RATE_LIMIT": -1}, "RATE_LIMIT"),
        ({"client_secret": "x"}, "client_secret"),
        ({"NOPE": 1}, "NOPE"),
    ],
)
def test_refusals_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings({**BASE, **change}, ENV)
    assert err.value.key == key
    assert str(err.value).startswith(key + ":")


def test_bad_json_in_env_names_the_key() -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings(BASE, {**ENV, "ATT_INBOX_ROUTES": "{nope"})
    assert err.value.key == "INBOX_ROUTES"
