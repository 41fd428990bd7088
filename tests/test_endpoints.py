"""M2 / item 7: endpoints are parsed strictly; loopback tcp needs an explicit opt-in."""
import subprocess
import sys

import pytest

from orchestrator.paths import ALLOW_TCP_VAR, EndpointRefused, check_endpoint

OPT_IN = {ALLOW_TCP_VAR: "1"}


@pytest.mark.parametrize("endpoint", [
    "tcp://0.0.0.0:5555@127.0.0.1",        # urlsplit reads "0.0.0.0:5555@" as user-info; ZeroMQ binds 0.0.0.0
    "tcp://user@127.0.0.1:5555",
    "tcp://127.0.0.1:5555/path",
    "tcp://127.0.0.1:5555?x=1",
    "tcp://lo:5555",                       # an interface name to ZeroMQ
    "tcp://127.0.0.1:5555;10.0.0.1:5556",  # "from ; to" to ZeroMQ
    "tcp://127.0.0.1",
    "tcp://127.0.0.1:99999",
    "tcp://0.0.0.0:5555",
    "tcp://[::]:5555",
    "tcp://192.168.1.10:5555",
    "ipc://",
    "inproc://x",
])
def test_endpoints_that_could_expose_the_daemon_are_refused_even_with_the_opt_in(endpoint):
    with pytest.raises(EndpointRefused):
        check_endpoint(endpoint, OPT_IN)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555",
                                      "tcp://127.0.0.1:*"])
def test_loopback_tcp_needs_the_opt_in_and_the_refusal_says_why(endpoint):
    with pytest.raises(EndpointRefused, match="ANY local user can connect"):
        check_endpoint(endpoint, {})
    assert check_endpoint(endpoint, OPT_IN) == endpoint


def test_ipc_endpoints_need_no_opt_in():
    assert check_endpoint("ipc:///run/user/1000/orchestrator/daemon.sock", {}) == \
        "ipc:///run/user/1000/orchestrator/daemon.sock"


def test_serve_refuses_an_endpoint_with_user_info_and_says_so(tmp_path):
    from tests.e2e.conftest import write_demo_home

    write_demo_home(tmp_path / "home")
    env = {"ORCHESTRATOR_HOME": str(tmp_path / "home"), "ORCHESTRATOR_STATE": str(tmp_path / "state"),
           "ORCHESTRATOR_ENDPOINT": "tcp://0.0.0.0:5555@127.0.0.1", ALLOW_TCP_VAR: "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "orchestrator", "serve"], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1 and "refusing tcp endpoint" in out.stderr
    assert out.stderr.count("\n") == 1
