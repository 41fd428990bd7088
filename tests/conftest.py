import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# A per-example deadline is a timing assert: on a shared 2-core machine at load 7 one example can
# take seconds. The properties, not the speed, are what the tests pin.
settings.register_profile("orchestrator", deadline=None)
settings.load_profile("orchestrator")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Provider keys from the developer's shell must never leak into tests.
for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
    os.environ.pop(var, None)


@pytest.fixture
def short_tmp(tmp_path_factory):
    """A short temporary directory: ipc:// socket paths must stay under ~100 bytes."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="orch-t-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# A private PostgreSQL server and a store per backend (issue 19): tests/pg/server.py.
from tests.pg.server import pg_admin_url, pg_url, store_location  # noqa: E402,F401
