"""`rules show` in text: a rule's `when` reads as routing.yaml would write it, not as a Python dict."""
import textwrap

from routing_helpers import registry

from actors.config.files import load_policy_text
from actors.router.policy import rule_rows
from orchestrator.render import render_rules
from protocol.messages import RulesReport


def test_rules_show_renders_when_in_yaml_flow_style():
    text = textwrap.dedent("""\
        schema_version: 1
        global_default: sonnet
        rules:
          - name: deep for architecture
            when: {message_matches: "architecture", has_images: true}
            use: opus
          - when: {any_of: [{message_contains_any: [sql, "naïve"]}, {estimated_input_tokens_gt: 90000}]}
            use: haiku
          - {name: rest, when: {}, use: sonnet}
        """)
    policy, errors, _ = load_policy_text(text, "routing.yaml", registry())
    assert errors == [] and policy is not None
    out = render_rules(RulesReport(ok=True, rules=tuple(rule_rows(policy)))).splitlines()
    whens = [line.strip() for line in out if line.strip().startswith("when:")]
    assert whens == [
        'when: message_matches: "architecture", has_images: true',
        'when: any_of: [{message_contains_any: ["sql", "naïve"]}, {estimated_input_tokens_gt: 90000}]',
        "when: {} (every turn)",
    ]
