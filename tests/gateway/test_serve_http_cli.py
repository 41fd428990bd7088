"""`orchestrator serve --http` as a user runs it: refusals are one line and exit 1; a demo home serves the SDKs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import anthropic
import openai

from tests.e2e.conftest import write_demo_home

PY = sys.executable


def _env(short_tmp) -> dict:
    home = short_tmp / "home"
    write_demo_home(home)
    env = dict(os.environ)
    env.update(ORCHESTRATOR_HOME=str(home), ORCHESTRATOR_STATE=str(short_tmp / "state"),
               ORCHESTRATOR_ENDPOINT=f"ipc://{short_tmp}/d.sock")
    env.pop("GW_KEY", None)
    return env


def _serve(env, *args, timeout=30):
    return subprocess.run([PY, "-m", "orchestrator", "serve", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_non_loopback_http_host_without_keys_is_refused_in_one_line(short_tmp):
    out = _serve(_env(short_tmp), "--http", "0.0.0.0:8080")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve HTTP on non-loopback 0.0.0.0:8080" in lines[0]


def test_a_malformed_http_address_is_refused_in_one_line(short_tmp):
    out = _serve(_env(short_tmp), "--http", "localhost:http")
    assert out.returncode == 1
    assert out.stderr.strip() == "orchestrator: --http: expected a port number 0-65535, got 'http'"


def test_an_invalid_http_section_in_daemon_yaml_names_file_line_and_key(short_tmp):
    env = _env(short_tmp)
    (short_tmp / "home" / "daemon.yaml").write_text("log_level: info\nhttp:\n  listen: 70000\n")
    out = _serve(env)
    assert out.returncode == 1
    assert "daemon.yaml:3: http.listen: expected a port number 0-65535, got '70000'" in out.stderr


def test_serve_http_on_the_demo_home_answers_both_sdks_and_stops_cleanly(short_tmp):
    env = _env(short_tmp)
    port = _free_port()
    log = open(short_tmp / "serve.log", "w")
    proc = subprocess.Popen([PY, "-m", "orchestrator", "serve", "--http", f"127.0.0.1:{port}"], env=env,
                            stdout=log, stderr=log)
    log.close()
    try:
        oai = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                models = oai.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None, (short_tmp / "serve.log").read_text()
                assert time.monotonic() < deadline, "the gateway did not start listening"
                time.sleep(0.1)
        assert "auto" in [m.id for m in models.data]
        answer = oai.chat.completions.create(model="swift", messages=[{"role": "user", "content": "hello"}])
        assert answer.model == "demo:swift" and answer.choices[0].message.content
        ant = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="unused", max_retries=0)
        with ant.messages.stream(model="auto", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
            text = "".join(s.text_stream)
        assert text.startswith("[demo model demo:")
        oai.close()
        ant.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
