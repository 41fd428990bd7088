"""`http:` settings, listen addresses, the loopback rule and API keys."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from orchestrator.gateway.auth import authorized, presented_key
from orchestrator.gateway.config import HttpSettings, is_loopback, parse_listen, refusal
from orchestrator.gateway.server import hypercorn_config
from orchestrator.settings import parse_settings_text


@pytest.mark.parametrize(("text", "expected"), [
    ("8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9", ("::1", 9)),
    ("localhost:0", ("localhost", 0)), (8080, ("127.0.0.1", 8080))])
def test_listen_addresses_parse(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:", "host:http", "1:70000", "[::1]80", True, None, 1.5])
def test_bad_listen_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_listen(text)


@given(st.integers(0, 65535))
def test_every_port_round_trips_through_listen(port):
    http = HttpSettings("::1", port)
    assert parse_listen(http.listen) == ("::1", port)


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com"))


def test_a_non_loopback_host_needs_a_key_that_is_actually_set():
    http = HttpSettings("0.0.0.0", 80, ("K1", "K2"))
    assert "none of K1, K2 holds a key" in (refusal(http, {"K1": " "}) or "")
    assert refusal(http, {"K2": "secret"}) is None
    assert "names no environment variable" in (refusal(HttpSettings("0.0.0.0", 80), {}) or "")
    assert refusal(HttpSettings("127.0.0.1", 80), {}) is None


def test_daemon_yaml_http_errors_name_line_and_key():
    settings, errors = parse_settings_text("http:\n  listen: nope:x\n  api_keys_env: 5\n  extra: 1\n")
    assert settings is None
    assert errors == ["daemon.yaml:2: http.listen: expected a port number 0-65535, got 'x'",
                      "daemon.yaml:3: http.api_keys_env: expected a list of environment variable names",
                      "daemon.yaml:4: http.extra: unknown setting (known: listen, api_keys_env)"]
    assert parse_settings_text("http: {api_keys_env: [K]}\n")[1] == [
        "daemon.yaml:1: http.listen: missing: the gateway needs [HOST:]PORT"]
    ok, _ = parse_settings_text("http: {listen: '0.0.0.0:8000', api_keys_env: [K]}\n")
    assert ok is not None and ok.http == HttpSettings("0.0.0.0", 8000, ("K",))


def test_keys_are_taken_from_bearer_or_x_api_key():
    keys = (b"k1", b"k2")
    assert authorized([(b"authorization", b"Bearer k2")], keys)
    assert authorized([(b"x-api-key", b"k1")], keys)
    assert not authorized([(b"authorization", b"Basic k1")], keys)
    assert not authorized([(b"x-api-key", b"k3")], keys)
    assert not authorized([], keys)
    assert authorized([], ())
    assert presented_key([(b"authorization", b"bearer  tok ")]) == b"tok"


def test_a_kept_alive_client_connection_is_not_closed_after_hypercorns_default_1000_requests():
    config = hypercorn_config(HttpSettings("127.0.0.1", 0), graceful_s=1.0)
    assert config.keep_alive_max_requests >= 1_000_000
    assert config.accesslog is None
