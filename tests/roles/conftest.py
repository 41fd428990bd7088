from pathlib import Path

import pytest

from actors.config.files import load_registry_text
from actors.config.registry import ModelRegistry

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROLES_TEXT = (FIXTURES / "roles.yaml").read_text()
MODELS_TEMPLATE = (FIXTURES / "models.yaml").read_text()


def models_text(anth: str = "http://127.0.0.1:9/v1", oai: str = "http://127.0.0.1:9/v1") -> str:
    return MODELS_TEMPLATE.replace("{anth}", anth).replace("{oai}", oai)


def fixture_registry() -> ModelRegistry:
    registry, errors = load_registry_text(models_text())
    assert registry is not None, errors
    return registry


@pytest.fixture
def registry() -> ModelRegistry:
    return fixture_registry()
