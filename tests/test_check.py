"""`orchestrator check`: every config file in one pass, strict daemon.yaml, warnings that never fail."""
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from orchestrator.check import check_home
from orchestrator.settings import DaemonSettings, SettingsError, load_settings, parse_settings_text

DEMO = {name: resources.files("orchestrator").joinpath("demo_config", name).read_text()
        for name in ("models.yaml", "routing.yaml")}


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    for name, text in DEMO.items():
        (h / name).write_text(text)
    return h


def cli(home, *args, env_extra=None):
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=home)


def test_daemon_yaml_rejects_a_negative_grace_an_unknown_log_level_and_a_fractional_integer():
    text = "shutdown_grace_s: -1\nlog_level: verbose\nmax_restarts: 2.9\nretry_max_attempts: true\n"
    settings, errors = parse_settings_text(text)
    assert settings is None
    assert errors == [
        "daemon.yaml:1: shutdown_grace_s: expected a number of seconds >= 0, got -1",
        "daemon.yaml:2: log_level: expected one of debug, info, warning, error, critical, got 'verbose'",
        "daemon.yaml:3: max_restarts: expected a whole number >= 1, got 2.9".replace(">= 1", ">= 0"),
        "daemon.yaml:4: retry_max_attempts: expected a whole number >= 1, got true",
    ]


def test_daemon_yaml_accepts_the_documented_defaults_and_an_empty_file(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_text("shutdown_grace_s: 10\nmax_restarts: 5\nrestart_window_s: 30\nlog_level: INFO\n"
                    "retry_max_attempts: 5\nretry_base_delay_s: 0.5\n")
    assert load_settings(path) == DaemonSettings(log_level="info")
    path.write_text("# nothing set\n")
    assert load_settings(path) == DaemonSettings()
    path.write_text("max_restarts: 2.9\n")
    with pytest.raises(SettingsError, match="max_restarts: expected a whole number"):
        load_settings(path)


def test_serve_refuses_an_invalid_daemon_yaml_with_every_error(home):
    (home / "daemon.yaml").write_text("shutdown_grace_s: -1\nlog_level: verbose\n")
    out = cli(home, "serve")
    assert out.returncode == 1
    assert "daemon.yaml:1: shutdown_grace_s" in out.stderr and "daemon.yaml:2: log_level" in out.stderr
    assert "Traceback" not in out.stderr


def test_check_reports_every_error_of_every_file_in_one_pass(home):
    (home / "models.yaml").write_text(DEMO["models.yaml"].replace("tier: fast", "tier: quick"))
    (home / "routing.yaml").write_text(DEMO["routing.yaml"].replace("use: demo:sage", "use: demo:nope"))
    (home / "daemon.yaml").write_text("shutdown_grace_s: -1\n")
    out = cli(home, "check")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(line.startswith("models.yaml:") and "'quick' is not a tier" in line for line in lines)
    assert "routing.yaml:16: rules[1].use: model 'demo:nope' is not registered" in lines
    assert any(line.startswith("daemon.yaml:1: shutdown_grace_s:") for line in lines)
    # A model whose entry is broken is still known by id: no spurious "not registered" for it.
    assert not any("demo:swift" in line and "not registered" in line for line in lines)
    rules = cli(home, "rules", "check")
    assert rules.returncode == 1 and rules.stdout == out.stdout


def test_a_named_file_that_does_not_exist_is_an_error(home):
    for args in (("check", "nonexistent.yaml"), ("rules", "check", "nonexistent.yaml")):
        out = cli(home, *args)
        assert out.returncode == 1, args
        assert out.stdout.strip() == "nonexistent.yaml:1: file not found (nonexistent.yaml)"


def test_a_missing_models_yaml_is_an_error_that_points_at_init(tmp_path):
    report = check_home(tmp_path, env={})
    assert not report.ok
    assert report.errors[0].startswith("models.yaml:1: file not found") and "orchestrator init" in report.errors[0]


MODELS_WITH_KEYS = """\
providers:
  openai: {kind: openai}
  local: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", api_key_env: null}
models:
  "openai:gpt-5-mini":
    aliases: [mini]
  "local:llama":
    aliases: [llama]
"""


def test_warnings_for_a_missing_key_a_shadowed_rule_and_an_unpriced_model_do_not_fail(home):
    (home / "models.yaml").write_text(MODELS_WITH_KEYS)
    (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: llama\nrules:\n"
                                       "  - {name: everything, when: {}, use: llama}\n"
                                       "  - {name: commits, when: {message_matches: commit}, use: mini}\n")
    out = cli(home, "check")
    assert out.returncode == 0 and out.stdout.strip() == "ok"
    warnings = out.stderr.splitlines()
    assert ("warning: models.yaml:2: providers.openai: OPENAI_API_KEY is not set in this shell's environment; "
            "unless the daemon's environment has it, openai:gpt-5-mini is not_configured") in warnings
    assert any("shadowed by" in w for w in warnings)
    assert any(w.startswith("warning: models.yaml:7: models.local:llama: no known price") for w in warnings)
    assert not any("openai:gpt-5-mini: no known price" in w for w in warnings)   # genai-prices knows it


def test_a_key_in_the_service_keys_file_counts_as_set(home):
    (home / "models.yaml").write_text(MODELS_WITH_KEYS)
    (home / "env").write_text("# keys\nOPENAI_API_KEY=sk-test\n")
    report = check_home(home, env={})
    assert not any("OPENAI_API_KEY" in w for w in report.warnings)
    (home / "env").write_text("#OPENAI_API_KEY=\n")
    os.chmod(home / "env", 0o644)
    report = check_home(home, env={})
    assert f"env:1: the keys file is readable by other users; run `chmod 600 {home / 'env'}`" in report.warnings
    assert any(f"OPENAI_API_KEY is not set in this shell's environment or {home / 'env'}" in w
               for w in report.warnings)


def test_check_json_lists_errors_warnings_and_files(home):
    import json

    out = cli(home, "check", "--json")
    data = json.loads(out.stdout)
    assert data["ok"] is True and data["errors"] == []
    assert [Path(f).name for f in data["files"]] == ["models.yaml", "routing.yaml"]


LOCAL_MODELS = """\
providers:
  local: {kind: openai_compatible, base_url: "BASE", api_key_env: null}
models:
  "local:llama":
    aliases: [llama]
    pricing: {input_per_mtok: 0, output_per_mtok: 0}
"""


@pytest.mark.parametrize(("base_url", "problem"), [
    ("notaurl", "'notaurl' is not an http:// or https:// URL"),
    ("ftp://x", "'ftp://x' is not an http:// or https:// URL"),
    ("http://", "'http://' has no host"),
    ("http://h:port/v1", "'http://h:port/v1' is not a valid URL"),
])
def test_a_provider_base_url_must_be_an_http_url_with_a_host(tmp_path, base_url, problem):
    (tmp_path / "models.yaml").write_text(LOCAL_MODELS.replace("BASE", base_url))
    report = check_home(tmp_path, env={})
    assert [e for e in report.errors if "base_url" in e] == [
        f"models.yaml:2: providers.local.base_url: {problem} (e.g. http://127.0.0.1:8000/v1)"
        if "valid" not in problem else f"models.yaml:2: providers.local.base_url: {problem}"]


def test_an_http_or_https_base_url_is_accepted(tmp_path):
    for url in ("http://127.0.0.1:8000/v1", "https://api.example.com/v1"):
        (tmp_path / "models.yaml").write_text(LOCAL_MODELS.replace("BASE", url))
        assert check_home(tmp_path, env={}).errors == ()


def test_init_with_a_base_url_that_is_not_a_url_is_refused_with_the_checks_own_words(tmp_path):
    home = tmp_path / "h"
    out = cli(tmp_path, "init", "--provider", "openai_compatible", "--base-url", "notaurl", "--model", "llama",
              "--home", str(home))
    # init validates its arguments with the config check's rule before writing anything.
    assert out.returncode == 2 and "'notaurl' is not an http:// or https:// URL" in out.stderr
    assert "check: ok" not in out.stdout and not home.exists()


def test_a_partial_tier_map_also_reports_its_unregistered_model(tmp_path):
    (tmp_path / "models.yaml").write_text(LOCAL_MODELS.replace("BASE", "http://127.0.0.1:9/v1"))
    (tmp_path / "routing.yaml").write_text("schema_version: 1\nglobal_default: llama\n"
                                           "tiers: {fast: local:llama, balanced: nosuch}\n")
    report = check_home(tmp_path, env={})
    assert report.errors == (
        "routing.yaml:3: tiers.balanced: model 'nosuch' is not registered",
        "routing.yaml:3: tiers: partial tier map: missing deep (define all three of fast, balanced, deep, "
        "or omit tiers)",
    )


@pytest.mark.parametrize("broken", ["providers: [unclosed\n", b"\xff\xfe\x00binary"])
def test_an_unreadable_models_yaml_says_once_that_routing_references_were_not_checked(home, broken):
    if isinstance(broken, bytes):
        (home / "models.yaml").write_bytes(broken)
    else:
        (home / "models.yaml").write_text(broken)
    (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: demo:sage\nbogus: 1\nrules:\n"
                                       "  - {when: {}, use: demo:swift}\n")
    report = check_home(home, env={})
    routing = [e for e in report.errors if e.startswith("routing.yaml")]
    assert routing == [
        "routing.yaml:1: model references not checked: models.yaml could not be read",
        "routing.yaml:3: bogus: unknown key (expected one of: schema_version, global_default, tiers, pattern, "
        "pattern_disagreement, rules, workspaces)",
    ]


def test_check_on_a_directory_is_one_clear_error_naming_it(home):
    out = cli(home.parent, "check", "home")
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        "home: is a directory, not a config file; to check the home in it, run "
        "`ORCHESTRATOR_HOME=home orchestrator check`"]
