"""The e2e fixtures (a demo home, a CLI environment), reused for daemons on PostgreSQL."""
from tests.e2e.conftest import env, home, write_demo_home  # noqa: F401
