"""models.yaml / routing.yaml parsing: exact error texts with lines, all errors in one pass (spec §5.9,
§10.1 tests 5 and 23), rules show data, check_files."""
import textwrap
from decimal import Decimal

import pytest
from routing_helpers import BASE, GPT5, HAIKU, MODELS_YAML, OPUS, SONNET, registry

from actors.config.files import check_files, load_policy_text, load_registry_text
from actors.router.policy import rule_rows
from protocol.canonical import AdapterCapabilities


def policy_errors(text: str) -> list[str]:
    pol, errors, _ = load_policy_text(textwrap.dedent(text), "/cfg/routing.yaml", registry(), home="/home/u")
    assert (pol is None) == bool(errors)
    return errors


def registry_errors(text: str) -> list[str]:
    reg, errors = load_registry_text(textwrap.dedent(text), "/cfg/models.yaml")
    assert (reg is None) == bool(errors)
    return errors


# --- models.yaml ----------------------------------------------------------------------------------


def test_registry_fills_specs_with_defaults_and_resolves_aliases():
    reg = registry()
    haiku = reg.resolve("haiku")
    assert haiku.id == HAIKU and haiku.provider == "anthropic" and haiku.name == "claude-haiku-4-5"
    assert haiku.tier == "fast" and haiku.aliases == ("haiku", "fast") and not haiku.can_delegate
    assert haiku.pricing.input_per_mtok == Decimal("1.0") and haiku.pricing.cache_read_per_mtok is None
    assert haiku.capabilities == AdapterCapabilities(max_context_tokens=200000, supports_images=False)
    mini = reg.models["openai:gpt-5-mini"]
    assert mini.capabilities == AdapterCapabilities()             # §4.4 defaults when undeclared
    assert reg.providers["anthropic"].api_key_env == "ANTHROPIC_API_KEY"
    assert reg.providers["openai"].api_key_env == "OPENAI_API_KEY"


def test_provider_key_env_explicit_null_means_no_key_and_demo_needs_none():
    reg, errors = load_registry_text(textwrap.dedent("""\
        providers:
          local: {kind: openai_compatible, base_url: "http://127.0.0.1:11434/v1", api_key_env: null}
          demo: {kind: demo}
          cli: {kind: cli, timeout_s: 30}
        models:
          local:llama: {}
          demo:echo: {tier: fast}
          cli:claude: {command: [claude, -p]}
        """), "models.yaml")
    assert errors == []
    assert reg.providers["local"].api_key_env is None and reg.is_configured("local:llama", {})
    assert reg.providers["demo"].api_key_env is None and reg.is_configured("demo:echo", {})
    assert reg.models["cli:claude"].command == ("claude", "-p")


def test_registry_reports_every_error_with_its_line():
    errors = registry_errors("""\
        providers:
          anthropic: {kind: anthropic, colour: red}
          weird: {kind: martian}
        models:
          anthropic:a:
            tier: quick
            aliases: [fast]
          anthropic:b:
            aliases: [fast, b]
            capabilities: {max_context_tokens: -1, supports_images: "yes", telepathy: true}
            pricing: {input_per_mtok: 1}
          nocolon: {}
          ghost:model: {}
          anthropic:c: {max_output_tokens: 0, command: [x]}
          anthropic:d: {aliases: [anthropic:a]}
        """)
    assert errors == [
        "models.yaml:2: providers.anthropic.colour: unknown key (expected one of: kind, base_url, api_key_env, timeout_s, options)",
        "models.yaml:3: providers.weird.kind: 'martian' is not a provider kind (expected one of: anthropic, openai, openai_compatible, cli, demo)",
        "models.yaml:6: models['anthropic:a'].tier: 'quick' is not a tier (expected fast, balanced or deep)",
        "models.yaml:9: models['anthropic:b'].aliases[0]: alias 'fast' of model 'anthropic:b' is already used by model 'anthropic:a'",
        "models.yaml:10: models['anthropic:b'].capabilities.telepathy: unknown key (expected one of: max_context_tokens, supports_images, supports_tools, supports_system_prompt, supports_structured_output, supports_thinking, supports_streaming)",
        "models.yaml:10: models['anthropic:b'].capabilities.max_context_tokens: expected a positive integer, got -1",
        "models.yaml:10: models['anthropic:b'].capabilities.supports_images: expected true or false, got 'yes'",
        "models.yaml:11: models['anthropic:b'].pricing.output_per_mtok: missing (USD per million tokens)",
        "models.yaml:12: models.nocolon: model id must be 'provider:model'",
        "models.yaml:13: models['ghost:model']: provider 'ghost' is not declared under providers",
        "models.yaml:14: models['anthropic:c'].command: only models of a 'cli' provider take a command ('anthropic' is 'anthropic')",
        "models.yaml:14: models['anthropic:c'].max_output_tokens: expected a positive integer, got 0",
        "models.yaml:15: models['anthropic:d'].aliases[0]: alias must be letters, digits, '_', '.' or '-' (no ':' or spaces)",
    ]


def test_registry_syntax_error_is_one_error_with_its_line():
    errors = registry_errors("providers:\n  a: {kind: demo\nmodels: {}\n")
    assert errors == ["models.yaml:3: YAML syntax error: expected ',' or '}', but got ':'"]


def test_registry_duplicate_yaml_key_is_reported_with_line():
    errors = registry_errors("providers:\n  demo: {kind: demo}\n  demo: {kind: demo}\nmodels:\n  demo:x: {}\n")
    assert len(errors) == 1 and errors[0].startswith("models.yaml:3: YAML syntax error: found duplicate key")


def test_cli_models_require_a_command():
    errors = registry_errors("providers:\n  c: {kind: cli}\nmodels:\n  c:tool: {}\n")
    assert errors == ["models.yaml:4: models['c:tool'].command: missing: models of a 'cli' provider need an argv list"]


# --- routing.yaml: spec §5.9 validations, each with its line (§10.1 test 5) -------------------------


@pytest.mark.parametrize("body,expected", [
    ("schema_version: 2\nglobal_default: sonnet\n",
     "routing.yaml:1: schema_version: unsupported version 2 (supported: 1)"),
    ("global_default: sonnet\n",
     "routing.yaml:1: schema_version: missing (supported: 1)"),
    ("schema_version: 1\n",
     "routing.yaml:1: global_default: missing: the model used when nothing else applies"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - {when: {}, use: x:y}\n",
     "routing.yaml:4: rules[0].use: model 'x:y' is not registered"),
    ("schema_version: 1\nglobal_default: nope\n",
     "routing.yaml:2: global_default: model 'nope' is not registered"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - name: a\n    when:\n      message_match: x\n    use: opus\n",
     "routing.yaml:6: rules[0].when.message_match: unknown predicate 'message_match'; did you mean 'message_matches'?"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when: {message_matches: 'a(b'}\n    use: opus\n",
     "routing.yaml:4: rules[0].when.message_matches: invalid regex 'a(b': missing ), unterminated subpattern at position 1"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when: {estimated_input_tokens_gt: lots}\n    use: opus\n",
     "routing.yaml:4: rules[0].when.estimated_input_tokens_gt: expected a non-negative integer token count, got 'lots'"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when: {has_images: 1}\n    use: opus\n",
     "routing.yaml:4: rules[0].when.has_images: expected true or false, got 1"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when: {time_of_day_between: ['22:00', '6am']}\n    use: opus\n",
     "routing.yaml:4: rules[0].when.time_of_day_between: bad time '6am': expected HH:MM between 00:00 and 23:59"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when: {time_of_day_between: ['22:00']}\n    use: opus\n",
     "routing.yaml:4: rules[0].when.time_of_day_between: expected [\"HH:MM\", \"HH:MM\"], got a list"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when: {cost_today_exceeds_usd: -1}\n    use: opus\n",
     "routing.yaml:4: rules[0].when.cost_today_exceeds_usd: expected a non-negative amount in USD, got -1"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - when:\n      any_of: []\n    use: opus\n",
     "routing.yaml:5: rules[0].when.any_of: any_of expects a non-empty list of predicates, got a list"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - {name: a, when: {}, use: opus}\n  - {name: a, when: {}, use: haiku}\n",
     "routing.yaml:5: rules[1].name: duplicate rule name 'a' (also rules[0] at line 4)"),
    ("schema_version: 1\nglobal_default: sonnet\ntiers: {fast: haiku}\n",
     "routing.yaml:3: tiers: partial tier map: missing balanced, deep (define all three of fast, balanced, deep, or omit tiers)"),
    ("schema_version: 1\nglobal_default: sonnet\npattern:\n  cost_weight: 1.5\n",
     "routing.yaml:4: pattern.cost_weight: must be a number between 0.0 and 1.0, got 1.5"),
    ("schema_version: 1\nglobal_default: sonnet\npattern:\n  min_confidence: -0.1\n",
     "routing.yaml:4: pattern.min_confidence: must be a number between 0.0 and 1.0, got -0.1"),
    ("schema_version: 1\nglobal_default: sonnet\npattern:\n  min_sample_size: 0\n",
     "routing.yaml:4: pattern.min_sample_size: must be an integer ≥ 1, got 0"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - {when: {}, use: opus, fallback: [sonnet]}\n",
     "routing.yaml:4: rules[0].fallback: rules do not take fallback lists; add a later rule with the same 'when' instead (spec §4.5)"),
    ("schema_version: 1\nglobal_default: sonnet\nrulez: []\n",
     "routing.yaml:3: rulez: unknown key (expected one of: schema_version, global_default, tiers, pattern, pattern_disagreement, rules, workspaces)"),
    ("schema_version: 1\nglobal_default: sonnet\nrules:\n  - {use: opus}\n",
     "routing.yaml:4: rules[0].when: missing (use 'when: {}' to match every turn)"),
    ("schema_version: 1\nglobal_default: sonnet\nworkspaces:\n  relative/path: {default: opus}\n",
     "routing.yaml:4: workspaces['relative/path']: workspace path 'relative/path' must be absolute or start with ~"),
    ("schema_version: 1\nglobal_default: sonnet\npattern_disagreement: {surface: maybe}\n",
     "routing.yaml:3: pattern_disagreement.surface: expected true or false, got 'maybe'"),
    ("schema_version: 1\nglobal_default: sonnet\nrules: [{when: {not: [has_images]}, use: opus}]\n",
     "routing.yaml:3: rules[0].when.not: expected a mapping of predicates, got a list"),
])
def test_5_each_kind_of_rule_file_error_is_rejected_with_a_clear_message(body, expected):
    assert policy_errors(body) == [expected]


def test_23_partial_workspace_tiers_are_rejected():
    errors = policy_errors("""\
        schema_version: 1
        global_default: sonnet
        workspaces:
          ~/code/myproject:
            default: gpt5
            tiers:
              fast: gpt5-mini
        """)
    assert errors == [
        "routing.yaml:6: workspaces['~/code/myproject'].tiers: partial tier map: missing balanced, deep "
        "(define all three of fast, balanced, deep, or omit tiers)"
    ]


def test_all_errors_are_reported_in_one_pass_sorted_by_line():
    errors = policy_errors("""\
        schema_version: 1
        global_default: sonnet
        rules:
          - name: "fast for commits"
            when: {message_matches: "^/commit"}
            use: haiku
          - when: {message_matches: "("}
            use: x:y
          - when:
              any_of:
                - has_images: true
                - bogus: 1
            use: opus
        """)
    assert [e.split(": ")[0] for e in errors] == ["routing.yaml:7", "routing.yaml:8", "routing.yaml:12"]
    assert errors[1] == "routing.yaml:8: rules[1].use: model 'x:y' is not registered"
    assert errors[2].startswith("routing.yaml:12: rules[2].when.any_of[1].bogus: unknown predicate 'bogus'")


def test_policy_yaml_syntax_error_is_one_error_with_its_line():
    errors = policy_errors("schema_version: 1\nglobal_default: sonnet\nrules:\n  - {when: {}, use: opus\n")
    assert len(errors) == 1 and errors[0].startswith("routing.yaml:5: YAML syntax error:")


def test_spec_example_routing_file_loads_with_resolved_models():
    pol, errors, warnings = load_policy_text(SPEC_ROUTING, "routing.yaml", registry(), home="/home/u")
    assert errors == [] and warnings == []
    assert pol.global_default == SONNET
    assert (pol.tiers.fast, pol.tiers.balanced, pol.tiers.deep) == (HAIKU, SONNET, OPUS)
    assert (pol.pattern.cost_weight, pol.pattern.min_confidence, pol.pattern.min_sample_size, pol.pattern.k) == \
        (0.05, 0.05, 5, 10)
    assert (pol.pattern_disagreement.surface, pol.pattern_disagreement.min_confidence,
            pol.pattern_disagreement.min_sample_size) == (False, 0.85, 20)
    assert [r.name for r in pol.rules] == ["fast for commits", "deep for architecture", "long context",
                                          "budget circuit breaker"]
    ws = pol.workspaces[0]
    assert ws.path == "/home/u/code/myproject" and ws.default == GPT5 and ws.pattern.cost_weight == 0.7
    assert ws.tiers.deep == GPT5 and ws.rules[0].use == GPT5


def test_unnamed_rules_get_synthetic_names_and_rules_show_rows():
    pol, _, _ = load_policy_text(SPEC_ROUTING + "  - when: {has_images: true}\n    use: opus\n",
                                 "routing.yaml", registry(), home="/home/u")
    rows = rule_rows(pol)
    assert rows[4] == {"name": "rule_4", "synthetic": True, "scope": "global", "workspace_path": None, "index": 4,
                       "line": 50, "when": {"has_images": True}, "use": OPUS}
    assert rows[1]["when"] == {"any_of": [{"message_matches": "(architecture|design review|security review)"},
                                          {"skills_matching_message_includes": "system_design"}]}
    assert rows[3]["when"] == {"cost_today_exceeds_usd": 5.0}
    assert rows[-1]["scope"] == "~/code/myproject" and rows[-1]["workspace_path"] == "/home/u/code/myproject"
    assert rows[-1]["name"] == "this project uses gpt for SQL" and rows[-1]["synthetic"] is False


def test_check_files_reports_ok_errors_and_missing_routing(tmp_path):
    models = tmp_path / "models.yaml"
    routing = tmp_path / "routing.yaml"
    models.write_text(MODELS_YAML)
    result = check_files(str(models), str(routing))
    assert result.ok and result.policy.implicit and result.policy.global_default == SONNET
    assert result.warnings == ("routing.yaml:1: file not found; using the built-in policy "
                               "(no rules, global_default anthropic:claude-sonnet-4-6)",)
    routing.write_text(BASE + "rules:\n  - {when: {}, use: x:y}\n")
    result = check_files(str(models), str(routing))
    assert not result.ok and result.errors == ("routing.yaml:4: rules[0].use: model 'x:y' is not registered",)
    models.unlink()
    assert check_files(str(models), str(routing)).errors[0].startswith("models.yaml:1: file not found")


SPEC_ROUTING = """\
# ~/.yourtool/routing.yaml
schema_version: 1
global_default: anthropic:claude-sonnet-4-6

# Tier mapping for delegation (§6.10)
tiers:
  fast: anthropic:claude-haiku-4-5
  balanced: anthropic:claude-sonnet-4-6
  deep: anthropic:claude-opus-4-7

pattern:
  cost_weight: 0.05
  min_confidence: 0.05
  min_sample_size: 5

workspaces:
  ~/code/myproject:
    default: openai:gpt-5
    pattern:
      cost_weight: 0.7
    tiers:
      fast: openai:gpt-5-mini
      balanced: openai:gpt-5
      deep: openai:gpt-5
    rules:
      - name: "this project uses gpt for SQL"
        when:
          file_extensions_in_context: [".sql"]
        use: openai:gpt-5

rules:
  - name: "fast for commits"
    when:
      message_matches: "^/commit|write.*commit message"
    use: anthropic:claude-haiku-4-5
  - name: "deep for architecture"
    when:
      any_of:
        - message_matches: "(architecture|design review|security review)"
        - skills_matching_message_includes: "system_design"
    use: anthropic:claude-opus-4-7
  - name: "long context"
    when:
      estimated_input_tokens_gt: 80000
    use: anthropic:claude-opus-4-7
  - name: "budget circuit breaker"
    when:
      cost_today_exceeds_usd: 5.00
    use: anthropic:claude-haiku-4-5
"""
