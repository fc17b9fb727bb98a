"""Settings parsing: every refusal names its key; the secret only ever comes from the env."""

from __future__ import annotations

import pytest
from att_sms.setting_values import SettingsError
from att_sms.settings import (
    CONFIG_TEMPLATE,
    has_env_configuration,
    parse_settings,
)

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


def test_new_keys_defaults() -> None:
    s = parse_settings(BASE, ENV)
    assert s.max_recipients == 10
    assert (s.escalate_after, s.escalate_rounds, s.dedup_window) == (300.0, 1, 120.0)
    assert s.ack_words == ("ack", "ok", "yes", "y", "1")
    assert s.smart_characters == "replace"
    assert (s.alert_after, s.metrics_port, s.metrics_host) == (600.0, 0, "127.0.0.1")
    assert (s.database_url, s.database_password) == ("", "")


def test_template_values_are_the_defaults() -> None:
    from_template = parse_settings({**CONFIG_TEMPLATE, **BASE, "INBOX_ROUTES": {}}, ENV)
    assert from_template == parse_settings(BASE, ENV)


def test_new_keys_from_config() -> None:
    config = {
        **BASE,
        "MAX_RECIPIENTS": 50,
        "ESCALATE_AFTER": 2,
        "ESCALATE_ROUNDS": 3,
        "ACK_WORDS": ["ACK", "Got-It", "ack", 1],
        "SMART_CHARACTERS": "Keep",
        "DEDUP_WINDOW": 0,
        "ALERT_AFTER": 0,
        "METRICS_PORT": 9464,
        "METRICS_HOST": "[::1]",
        "DATABASE_URL": "postgresql://bot@db.example:5432/att_sms?sslmode=require",
        "DATABASE_TLS": "require",  # TLS not verifying the server, said explicitly
    }
    s = parse_settings(config, {**ENV, "ATT_DATABASE_PASSWORD": "pg-pass-value"})
    assert (s.max_recipients, s.escalate_after, s.escalate_rounds) == (50, 2.0, 3)
    assert s.ack_words == ("ack", "got-it", "1")
    assert (s.smart_characters, s.dedup_window, s.alert_after) == ("keep", 0.0, 0.0)
    assert (s.metrics_port, s.metrics_host) == (9464, "::1")
    assert s.database_url == "postgresql://bot@db.example:5432/att_sms?sslmode=require"
    assert s.database_password == "pg-pass-value"
    assert "pg-pass-value" not in repr(s) and "s3cret-value" not in repr(s)


def test_new_keys_from_environment() -> None:
    env = {
        **ENV,
        "ATT_MAX_RECIPIENTS": "5",
        "ATT_ESCALATE_AFTER": "1.5",
        "ATT_ESCALATE_ROUNDS": "2",
        "ATT_ACK_WORDS": "Ack, OK ,roger",
        "ATT_SMART_CHARACTERS": "keep",
        "ATT_DEDUP_WINDOW": "30",
        "ATT_ALERT_AFTER": "60",
        "ATT_METRICS_PORT": "9100",
        "ATT_METRICS_HOST": "Metrics.Example",
        "ATT_DATABASE_URL": "postgres:///att_sms?host=/run/postgresql",
    }
    s = parse_settings(BASE, env)
    assert (s.max_recipients, s.escalate_after, s.escalate_rounds) == (5, 1.5, 2)
    assert s.ack_words == ("ack", "ok", "roger")
    assert (s.smart_characters, s.dedup_window, s.alert_after) == ("keep", 30.0, 60.0)
    assert (s.metrics_port, s.metrics_host) == (9100, "metrics.example")
    assert s.database_url == "postgres:///att_sms?host=/run/postgresql"
    assert parse_settings(BASE, {**ENV, "ATT_ACK_WORDS": '["y", "Sure"]'}).ack_words == (
        "y",
        "sure",
    )
    assert parse_settings({**BASE, "ACK_WORDS": []}, ENV).ack_words == ()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"MAX_RECIPIENTS": 0}, "MAX_RECIPIENTS"),
        ({"MAX_RECIPIENTS": 51}, "MAX_RECIPIENTS"),
        ({"MAX_RECIPIENTS": 2.5}, "MAX_RECIPIENTS"),
        ({"ESCALATE_AFTER": 0.5}, "ESCALATE_AFTER"),
        ({"ESCALATE_AFTER": 86401}, "ESCALATE_AFTER"),
        ({"ESCALATE_ROUNDS": 0}, "ESCALATE_ROUNDS"),
        ({"ESCALATE_ROUNDS": 11}, "ESCALATE_ROUNDS"),
        ({"ACK_WORDS": "ack ok"}, "ACK_WORDS"),
        ({"ACK_WORDS": {"ack": 1}}, "ACK_WORDS"),
        ({"ACK_WORDS": ["got it"]}, "ACK_WORDS"),
        ({"ACK_WORDS": [""]}, "ACK_WORDS"),
        ({"ACK_WORDS": [True]}, "ACK_WORDS"),
        ({"ACK_WORDS": ["x" * 21]}, "ACK_WORDS"),
        ({"ACK_WORDS": ["ack", "Stop"]}, "ACK_WORDS"),
        ({"ACK_WORDS": ["start"]}, "ACK_WORDS"),
        ({"SMART_CHARACTERS": "strip"}, "SMART_CHARACTERS"),
        ({"SMART_CHARACTERS": 1}, "SMART_CHARACTERS"),
        ({"DEDUP_WINDOW": -1}, "DEDUP_WINDOW"),
        ({"DEDUP_WINDOW": 86401}, "DEDUP_WINDOW"),
        ({"ALERT_AFTER": -5}, "ALERT_AFTER"),
        ({"METRICS_PORT": 65536}, "METRICS_PORT"),
        ({"METRICS_PORT": -1}, "METRICS_PORT"),
        ({"METRICS_PORT": "http"}, "METRICS_PORT"),
        ({"METRICS_HOST": "127.0.0.1:9100"}, "METRICS_HOST"),
        ({"METRICS_HOST": "http://x"}, "METRICS_HOST"),
        ({"METRICS_HOST": 127}, "METRICS_HOST"),
        ({"DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "host=db dbname=x"}, "DATABASE_URL"),
        ({"DATABASE_URL": 5432}, "DATABASE_URL"),
        ({"DATABASE_PASSWORD": "pw"}, "DATABASE_PASSWORD"),
        ({"POLL_INTERVAL": 0.5}, "POLL_INTERVAL"),
        ({"POLL_INTERVAL": 0.999}, "POLL_INTERVAL"),
    ],
)
def test_new_key_refusals_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings({**BASE, **change}, ENV)
    assert err.value.key == key
    assert str(err.value).startswith(key + ":")
    assert "\n" not in str(err.value)


def test_poll_interval_zero_is_off_and_one_second_is_the_floor() -> None:
    assert parse_settings({**BASE, "POLL_INTERVAL": 0}, ENV).poll_interval == 0.0
    assert parse_settings({**BASE, "POLL_INTERVAL": 1}, ENV).poll_interval == 1.0
    with pytest.raises(SettingsError) as err:
        parse_settings(BASE, {**ENV, "ATT_POLL_INTERVAL": "0.2"})
    assert str(err.value) == "POLL_INTERVAL: must be 0 (off) or at least 1 second, got 0.2"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:hunter2@db.example/att_sms",
        "postgres://bot:hunter2@db.example:5432/att_sms",
        "postgresql://db.example/att_sms?user=bot&password=hunter2",
        "postgresql://db.example/att_sms?PASSWORD=hunter2",
    ],
)
def test_database_url_with_password_refused_without_quoting_it(url: str) -> None:
    for config, env in (
        ({**BASE, "DATABASE_URL": url}, ENV),
        (BASE, {**ENV, "ATT_DATABASE_URL": url}),
    ):
        with pytest.raises(SettingsError) as err:
            parse_settings(config, env)
        message = str(err.value)
        assert err.value.key == "DATABASE_URL"
        assert "ATT_DATABASE_PASSWORD" in message and "PGPASSWORD" in message
        assert "hunter2" not in message and "\n" not in message


def test_database_password_only_from_the_environment() -> None:
    for key in ("DATABASE_PASSWORD", "ATT_DATABASE_PASSWORD", "PGPASSWORD"):
        with pytest.raises(SettingsError) as err:
            parse_settings({**BASE, key: "pg-secret-1"}, ENV)
        assert err.value.key == key
        assert "set ATT_DATABASE_PASSWORD in the bot's environment" in str(err.value)
        assert "pg-secret-1" not in str(err.value)
    assert parse_settings(BASE, {**ENV, "PGPASSWORD": "x"}).database_password == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:8080/prefix",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "http://[::ffff:127.0.0.1]:8080",
        "https://gw.example",
        "https://10.1.2.3",
    ],
)
def test_api_base_url_plain_http_allowed_only_to_loopback(url: str) -> None:
    assert parse_settings({**BASE, "API_BASE_URL": url}, ENV).api_base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://gw.example",
        "http://10.1.2.3:8080",
        "http://128.0.0.1",
        "http://[::2]",
        "http://localhost.evil.example",
        "http://0.0.0.0:8080",
    ],
)
def test_api_base_url_plain_http_elsewhere_refused(url: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings({**BASE, "API_BASE_URL": url}, ENV)
    message = str(err.value)
    assert err.value.key == "API_BASE_URL"
    assert "client secret in clear" in message and "https://" in message
    assert "\n" not in message


def test_daily_limit_is_on_by_default() -> None:
    """A send loop stops at the default cap; 0 still turns it off when asked for."""
    assert parse_settings(BASE, ENV).daily_limit == 1000
    assert CONFIG_TEMPLATE["DAILY_LIMIT"] == 1000
    assert parse_settings({**BASE, "DAILY_LIMIT": 0}, ENV).daily_limit == 0
