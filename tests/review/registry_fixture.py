"""A models.yaml with two families, a cli reviewer and declared efforts, as a registry."""
from actors.config.files import load_registry_text
from actors.config.registry import ModelRegistry

MODELS = """\
providers:
  anthropic: {kind: anthropic}
  openai: {kind: openai}
  codex: {kind: cli}
  local: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", api_key_env: null}
models:
  "anthropic:claude-sonnet-4-6":
    tier: balanced
    efforts: [low, medium, high]
  "anthropic:claude-opus-4-8":
    tier: deep
    efforts: [low, medium, high]
  "openai:gpt-5.4":
    tier: balanced
    efforts: [minimal, low, medium, high, xhigh]
  "openai:gpt-5.4-mini":
    tier: fast
  "codex:gpt-5.5":
    family: openai
    tier: deep
    command: ["codex", "exec", "--model", "{model}"]
    efforts: [low, medium, high, xhigh]
  "local:llama3:8b":
    tier: fast
"""


def registry(text: str = MODELS) -> ModelRegistry:
    reg, errors = load_registry_text(text)
    assert reg is not None, errors
    return reg
