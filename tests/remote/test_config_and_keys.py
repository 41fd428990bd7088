"""`orchestrator keys generate|show`, daemon.yaml `workers:` and workspace.yaml `worker_pool`."""
from __future__ import annotations

import json
import stat

import pytest

from actors.remote.config import WorkersConfig
from actors.remote.hub import WorkersError, hub_from_config
from actors.remote.keys import KeyFileError, public_key, read_key_file
from actors.tools.workspace import parse_settings
from orchestrator.cli import main
from orchestrator.settings import parse_settings_text

KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"


@pytest.fixture
def state(short_tmp, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_STATE", str(short_tmp / "state"))
    return short_tmp / "state"


def test_keys_generate_writes_a_0600_file_in_a_0700_folder_and_show_prints_only_the_public_key(state, capsys):
    assert main(["keys", "generate", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    path = state / "keys" / "curve.key"
    assert written["file"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert main(["keys", "show"]) == 0
    shown = capsys.readouterr().out.strip()
    pair = read_key_file(path, need_secret=True)
    assert shown == written["public_key"] == pair.public.decode()
    assert pair.secret is not None and pair.secret.decode() not in shown


def test_keys_generate_never_overwrites_without_force(state, capsys):
    out = state / "k.key"
    assert main(["keys", "generate", "--out", str(out)]) == 0
    before = out.read_text()
    assert main(["keys", "generate", "--out", str(out)]) == 1
    assert "already exists; use --force" in capsys.readouterr().err
    assert out.read_text() == before
    assert main(["keys", "generate", "--out", str(out), "--force"]) == 0
    assert out.read_text() != before and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_keys_generate_into_a_folder_says_so_with_or_without_force(state, capsys):
    folder = state / "keys-dir"
    folder.mkdir(parents=True)
    for extra in ([], ["--force"]):
        assert main(["keys", "generate", "--out", str(folder), *extra]) == 1
        err = capsys.readouterr().err
        assert err.strip() == f"orchestrator: {folder} is a folder: name a file, e.g. --out {folder}/curve.key", err
    assert list(folder.iterdir()) == [] and not list(state.glob(".keys-dir*"))


def test_keys_show_of_a_missing_or_foreign_file_is_one_clear_error(state, capsys, short_tmp):
    assert main(["keys", "show", str(short_tmp / "nope.key")]) == 1
    assert "cannot read key file" in capsys.readouterr().err
    (short_tmp / "x.txt").write_text("hello\n")
    assert main(["keys", "show", str(short_tmp / "x.txt")]) == 1
    assert "is not a key file" in capsys.readouterr().err


def test_a_secret_key_file_readable_by_others_is_refused(short_tmp):
    assert main(["keys", "generate", "--out", str(short_tmp / "k.key")]) == 0
    (short_tmp / "k.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(short_tmp / "k.key", need_secret=True)
    assert public_key(str(short_tmp / "k.key"))   # its public key is still fine to read


def test_daemon_yaml_workers_parses():
    text = (f'workers:\n  listen: "tcp://0.0.0.0:7555"\n  allow: ["{KEY}", keys/w2.key]\n'
            "  heartbeat_s: 2\n  pools: [default, build]\n")
    settings, errors = parse_settings_text(text)
    assert errors == []
    assert settings is not None and settings.workers == WorkersConfig(
        "tcp://0.0.0.0:7555", (KEY, "keys/w2.key"), None, 2.0, ("default", "build"))


def test_daemon_yaml_workers_errors_name_line_and_key():
    text = ("log_level: info\nworkers:\n  listen: http://x\n  allow:\n    - 5\n  heartbeat_s: 0\n"
            "  pools: [\"bad name\"]\n  extra: 1\n")
    settings, errors = parse_settings_text(text)
    assert settings is None
    assert errors == [
        "daemon.yaml:3: workers.listen: expected tcp://ADDRESS:PORT (an IP address, * or localhost), got 'http://x'",
        "daemon.yaml:5: workers.allow[0]: expected a 40-character Z85 public key or the path of a key file",
        "daemon.yaml:6: workers.heartbeat_s: expected a number of seconds from 0.05 to 3600, got 0",
        "daemon.yaml:7: workers.pools: expected a list of pool names (letters, digits, _ . -, at most 64 characters)",
        "daemon.yaml:8: workers.extra: unknown setting (known: listen, server_key, allow, heartbeat_s, pools)",
    ]
    assert parse_settings_text("workers: {listen: 'tcp://*:1'}\n")[1] == [
        "daemon.yaml:1: workers.allow: missing: the public keys (or key files) that may connect"]


def test_a_hub_without_its_key_pair_does_not_start_and_says_how_to_make_one(short_tmp):
    config = WorkersConfig("tcp://127.0.0.1:*", (KEY,), "server.key")
    with pytest.raises(WorkersError, match=r"cannot read key file .*server.key.*orchestrator keys generate"):
        hub_from_config(config, state=short_tmp / "state", home=short_tmp)


def test_workspace_yaml_names_a_worker_pool():
    assert parse_settings("worker_pool: build\n").worker_pool == "build"
    assert parse_settings("tools: {run_command: true}\n").worker_pool is None
    broken = parse_settings("worker_pool: [a]\n")
    # A pool name that does not parse never means "run on the daemon's host": no worker can serve it.
    assert broken.worker_pool is not None and broken.worker_pool != "build" and broken.errors


def test_the_daemon_yaml_examples_in_docs_remote_workers_parse_clean():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "remote-workers.md").read_text()
    uncommented = ["".join(line for line in b.splitlines(keepends=True) if not line.startswith("#"))
                   for b in re.findall(r"^```yaml\n(.*?)^```", doc, flags=re.M | re.S)]
    blocks = [b for b in uncommented if b.startswith(("workers:", "curve:"))]
    assert len(blocks) == 2
    for block in blocks:
        settings, errors = parse_settings_text(block)
        assert errors == [] and settings is not None and (settings.workers or settings.curve)
    assert parse_settings(next(b for b in re.findall(r"^```yaml\n(.*?)^```", doc, flags=re.M | re.S)
                               if "worker_pool" in b)).worker_pool == "build"


def test_a_server_key_that_starts_with_a_dash_is_taken_in_the_equals_form():
    from orchestrator.cli import _parser

    key = "-" + KEY[1:]   # Z85 keys may start with '-': seen as an option unless written --server-key=KEY
    args = _parser().parse_args(["worker", "--connect", "tcp://127.0.0.1:7555", f"--server-key={key}"])
    assert args.server_key == key
