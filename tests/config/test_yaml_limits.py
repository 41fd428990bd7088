"""Every config file is loaded with bounds: size, and alias expansion (the "billion laughs")."""
import pytest

from actors.config.files import check_files, load_registry_text
from actors.config.yamlload import MAX_CONFIG_BYTES, YAMLLimitError, load_yaml, read_capped_text

LAUGHS = """\
providers:
  local:
    kind: openai_compatible
    base_url: "http://127.0.0.1:1/v1"
    api_key_env: null
    options:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
      bomb: *i
models:
  "local:m": {tier: balanced}
"""


def test_a_billion_laughs_models_yaml_is_rejected_with_the_alias_line():
    registry, errors = load_registry_text(LAUGHS, "models.yaml")
    assert registry is None
    assert len(errors) == 1
    assert errors[0].startswith("models.yaml:")
    assert "aliases expand the document beyond" in errors[0]
    line = int(errors[0].split(":")[1])
    assert "*" in LAUGHS.splitlines()[line - 1]   # points at a line that uses an alias


def test_rules_check_reports_the_alias_bomb_as_a_config_error(tmp_path):
    (tmp_path / "models.yaml").write_text(LAUGHS)
    result = check_files(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"))
    assert any("aliases expand the document" in e for e in result.errors)


def test_small_anchors_and_aliases_still_work():
    text = """\
providers:
  local: {kind: openai_compatible, base_url: "http://127.0.0.1:1/v1", api_key_env: null}
models:
  "local:a": {tier: fast, capabilities: &caps {max_context_tokens: 1000, supports_tools: false}}
  "local:b": {tier: balanced, capabilities: *caps}
"""
    registry, errors = load_registry_text(text, "models.yaml")
    assert errors == []
    assert registry.models["local:b"].capabilities.supports_tools is False


def test_a_recursive_alias_is_refused():
    with pytest.raises(YAMLLimitError, match="recursive"):
        load_yaml("a: &x [1, *x]\n")


def test_an_oversized_config_file_is_refused_before_parsing(tmp_path):
    big = tmp_path / "models.yaml"
    big.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 10))
    text = read_capped_text(big)
    assert len(text) == MAX_CONFIG_BYTES + 1
    registry, errors = load_registry_text(text, "models.yaml")
    assert registry is None and errors == ["models.yaml:1: file is larger than the 1 MiB limit for config files"]


def test_a_fifo_named_like_a_config_file_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "models.yaml"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_capped_text(fifo)


def test_daemon_yaml_with_an_alias_bomb_is_a_settings_error(tmp_path):
    from orchestrator.settings import SettingsError, load_settings

    bomb = "\n".join(LAUGHS.splitlines()[6:16]).replace("      ", "")  # the anchors, at top level
    (tmp_path / "daemon.yaml").write_text(bomb + "\nlog_level: debug\n")
    with pytest.raises(SettingsError, match=r"daemon.yaml:\d+: .*aliases expand the document beyond"):
        load_settings(tmp_path / "daemon.yaml")


def test_a_deeply_nested_document_is_refused_with_a_plain_message():
    with pytest.raises(YAMLLimitError, match="nested more than 200 levels deep"):
        load_yaml("a: " + "[" * 300 + "]" * 300)
