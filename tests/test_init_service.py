"""`orchestrator init` writes a home that passes check; `service install` writes a unit that works."""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.check import check_home
from orchestrator.init import HOSTED, InitError, plan, write_home
from orchestrator.paths import Paths
from orchestrator.service import install, render_unit, uninstall


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    e.update(ORCHESTRATOR_HOME=str(tmp_path / "home"), ORCHESTRATOR_STATE=str(tmp_path / "state"),
             ORCHESTRATOR_UNIT_DIR=str(tmp_path / "units"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return e


@pytest.mark.parametrize("providers", [["anthropic"], ["openai"], ["anthropic", "openai"], ["ollama"],
                                       ["openai_compatible"], ["openai", "ollama"]])
def test_init_writes_a_home_that_passes_check(tmp_path, providers):
    extra = {"base_url": "http://127.0.0.1:8000/v1", "model": "qwen"} if "openai_compatible" in providers else {}
    p = plan(providers, **extra)
    write_home(tmp_path, p, force=False)
    report = check_home(tmp_path, env={"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"})
    assert report.ok, report.errors
    assert not [w for w in report.warnings if "not_configured" in w or "shadowed" in w]
    assert [Path(f).name for f in report.files] == ["models.yaml", "routing.yaml", "daemon.yaml"]


def test_starter_models_are_priced_by_genai_prices_with_its_context_windows():
    import genai_prices

    from actors.config.registry import ModelSpec, ProviderSpec
    from actors.cost.pricing import price_usage
    from protocol.canonical import Usage

    snapshot = {p.id: {m.id: m for m in p.models} for p in genai_prices.data_snapshot.get_snapshot().providers}
    for provider, starters in HOSTED.items():
        assert [s.tier for s in starters] == ["fast", "balanced", "deep"]
        for s in starters:
            spec = ModelSpec(id=f"{provider}:{s.name}", provider=provider, name=s.name)
            priced = price_usage(spec, Usage(input_tokens=1000, output_tokens=1000),
                                 provider=ProviderSpec(provider, provider))
            assert priced.price["source"] == "genai-prices", s.name
            assert snapshot[provider][s.name].context_window == s.context, s.name


def test_init_refuses_to_overwrite_without_force(env):
    first = cli(env, "init", "--provider", "anthropic")
    assert first.returncode == 0, first.stderr
    models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
    models.write_text(models.read_text() + "# my edit\n")
    again = cli(env, "init", "--provider", "openai")
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert models.read_text().endswith("# my edit\n")
    forced = cli(env, "init", "--provider", "openai", "--force")
    assert forced.returncode == 0 and "openai:gpt-5.4" in models.read_text()


def test_init_says_which_key_the_daemons_environment_needs_and_how_to_start(env):
    out = cli(env, "init", "--provider", "anthropic")
    assert out.returncode == 0
    assert "check: ok" in out.stdout
    assert "ANTHROPIC_API_KEY" in out.stdout and "own environment" in out.stdout
    assert "orchestrator serve" in out.stdout and "orchestrator service install" in out.stdout
    assert "ANTHROPIC_API_KEY is not set" in out.stderr      # the check's warning, not an error


def test_init_usage_errors_exit_2(env):
    assert cli(env, "init", "--provider", "openai_compatible").returncode == 2
    assert cli(env, "init", "--provider", "nosuch").returncode == 2
    assert cli(env, "init", "--provider", "anthropic", "--model", "x").returncode == 2
    with pytest.raises(InitError):
        plan(["openai_compatible"], base_url="http://x/v1")


def _install_home(env):
    assert cli(env, "init", "--provider", "anthropic").returncode == 0
    return Paths(Path(env["ORCHESTRATOR_HOME"]), Path(env["ORCHESTRATOR_STATE"]), "ipc:///tmp/none.sock")


def test_service_install_writes_a_unit_with_an_absolute_exec_start_and_a_private_keys_file(env):
    out = cli(env, "service", "install", "--user")
    assert out.returncode == 1 and "orchestrator init" in out.stderr     # no models.yaml: refused
    assert not (Path(env["ORCHESTRATOR_UNIT_DIR"]) / "orchestrator.service").exists()
    _install_home(env)
    out = cli(env, "service", "install", "--user")
    assert out.returncode == 0, out.stderr
    unit = (Path(env["ORCHESTRATOR_UNIT_DIR"]) / "orchestrator.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    program = exec_start.removeprefix("ExecStart=").split()[0]
    assert os.path.isabs(program) and os.access(program, os.X_OK)
    assert exec_start.endswith(" serve") and "/usr/bin/env" not in exec_start
    keys = Path(env["ORCHESTRATOR_HOME"]) / "env"
    assert f"EnvironmentFile={keys}" in unit
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and "ANTHROPIC_API_KEY" in keys.read_text()
    assert "network-online" not in unit and "WantedBy=default.target" in unit and "Type=notify" in unit
    assert f"Environment=\"ORCHESTRATOR_HOME={env['ORCHESTRATOR_HOME']}\"" in unit
    assert "loginctl enable-linger" in out.stdout and "journalctl --user -u orchestrator" in out.stdout
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(Path(env["ORCHESTRATOR_UNIT_DIR"])
                                                                   / "orchestrator.service")],
                                capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr


def test_service_install_refuses_an_invalid_models_yaml(env):
    paths = _install_home(env)
    paths.models_file.write_text("providers: {}\n")
    out = cli(env, "service", "install")
    assert out.returncode == 1 and "models.yaml:1: providers" in out.stderr


def test_a_system_unit_waits_for_the_network_and_runs_as_the_user(tmp_path):
    paths = Paths(tmp_path, tmp_path / "state", "ipc:///tmp/x.sock")
    unit = render_unit("system", ["/opt/orch/bin/orchestrator"], tmp_path / "env", paths, {}, user="alice")
    assert "After=network-online.target" in unit and "User=alice" in unit and "WantedBy=multi-user.target" in unit


def test_service_uninstall_removes_the_unit_and_its_wants_link(env):
    paths = _install_home(env)
    lines = install(paths, scope="user", now=False, env=env)
    assert lines[0].startswith("Installed ")
    unit_dir = Path(env["ORCHESTRATOR_UNIT_DIR"])
    (unit_dir / "default.target.wants").mkdir()
    (unit_dir / "default.target.wants" / "orchestrator.service").symlink_to(unit_dir / "orchestrator.service")
    out = cli(env, "service", "uninstall")
    assert out.returncode == 0 and "Removed" in out.stdout
    assert not (unit_dir / "orchestrator.service").exists()
    assert not (unit_dir / "default.target.wants" / "orchestrator.service").is_symlink()
    assert (paths.home / "env").exists()     # keys and config are kept
    assert uninstall and cli(env, "service", "uninstall").returncode == 1


MY_KEY_MODELS = """\
providers:
  mine: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", api_key_env: MY_MISSING_KEY}
models:
  "mine:llama":
    pricing: {input_per_mtok: 0, output_per_mtok: 0}
"""


def _home_paths(tmp_path, state: Path) -> Paths:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.yaml").write_text(MY_KEY_MODELS)
    return Paths(home, state, f"ipc://{state}/run/daemon.sock")


def test_service_install_names_the_key_variables_models_yaml_uses(tmp_path):
    paths = _home_paths(tmp_path, tmp_path / "state")
    env = {"ORCHESTRATOR_UNIT_DIR": str(tmp_path / "units"), "USER": "u"}
    out = "\n".join(install(paths, scope="user", now=False, env=env))
    assert "MY_MISSING_KEY=…" in out and "ANTHROPIC_API_KEY" not in out
    unit = (tmp_path / "units" / "orchestrator.service").read_text()
    assert "MY_MISSING_KEY=…" in unit and "ANTHROPIC_API_KEY" not in unit
    keys = (paths.home / "env").read_text()
    assert "#MY_MISSING_KEY=" in keys and "ANTHROPIC_API_KEY" not in keys


def test_service_install_with_state_under_tmp_warns_and_leaves_private_tmp_off(tmp_path):
    state = Path("/tmp") / f"orch-state-{os.getpid()}-{tmp_path.name}"
    paths = _home_paths(tmp_path, state)
    env = {"ORCHESTRATOR_UNIT_DIR": str(tmp_path / "units"), "USER": "u", "ORCHESTRATOR_STATE": str(state)}
    out = install(paths, scope="user", now=False, env=env)
    assert any(line.startswith(f"warning: ORCHESTRATOR_STATE={state} is under /tmp") for line in out)
    unit = (tmp_path / "units" / "orchestrator.service").read_text()
    assert "PrivateTmp=yes" not in unit and f"ORCHESTRATOR_STATE={state}" in unit


def test_service_install_keeps_private_tmp_when_no_path_is_under_tmp(tmp_path):
    state = Path.home() / ".local" / "state" / "orchestrator"
    paths = Paths(Path("/srv/orch-home"), state, f"ipc://{state}/run/daemon.sock")
    env = {"ORCHESTRATOR_STATE": str(state), "ORCHESTRATOR_ENDPOINT": "ipc:///var/tmp/orch.sock"}
    unit = render_unit("user", ["/opt/orch/bin/orchestrator"], Path("/srv/orch-home/env"), paths, env)
    assert "PrivateTmp=yes" not in unit           # the endpoint is under /var/tmp
    del env["ORCHESTRATOR_ENDPOINT"]
    unit = render_unit("user", ["/opt/orch/bin/orchestrator"], Path("/srv/orch-home/env"), paths, env)
    assert "PrivateTmp=yes" in unit


def test_service_install_help_documents_the_unit_dir_redirect(env):
    out = cli(env, "service", "install", "--help")
    assert out.returncode == 0 and "--unit-dir" in out.stdout and "ORCHESTRATOR_UNIT_DIR" in out.stdout


def test_init_with_a_bad_base_url_writes_nothing_so_a_fixed_rerun_succeeds(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    bad = cli(env, "init", "--provider", "openai_compatible", "--base-url", "notaurl", "--model", "qwen")
    assert bad.returncode == 2 and "--base-url" in bad.stderr and "notaurl" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not home.exists() or not list(home.iterdir())
    good = cli(env, "init", "--provider", "openai_compatible", "--base-url", "http://127.0.0.1:8000/v1",
               "--model", "qwen")
    assert good.returncode == 0, good.stderr


def test_init_into_a_home_that_is_a_file_says_it_is_not_a_directory(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder")
    out = cli(env, "init", "--provider", "anthropic", "--home", str(home))
    assert out.returncode == 1 and "is not a directory" in out.stderr and "File exists" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_service_install_warning_names_the_endpoint_as_configured(tmp_path):
    paths = _home_paths(tmp_path, tmp_path / "state")
    endpoint = f"ipc:///tmp/orch-{os.getpid()}-{tmp_path.name}/d.sock"
    env = {"ORCHESTRATOR_UNIT_DIR": str(tmp_path / "units"), "USER": "u", "ORCHESTRATOR_ENDPOINT": endpoint}
    out = install(paths, scope="user", now=False, env=env)
    assert any(line.startswith(f"warning: ORCHESTRATOR_ENDPOINT={endpoint} is under /tmp") for line in out), out
