"""The README's YAML examples form one complete config that passes `orchestrator check`, so they
can never contradict each other again."""
import re
from pathlib import Path

from orchestrator.check import check_home, kind_of

README = Path(__file__).resolve().parents[1] / "README.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_the_readme_yaml_blocks_are_one_complete_config_that_checks_clean(tmp_path):
    kinds: dict[str, list[str]] = {}
    for block in yaml_blocks():
        probe = tmp_path / "probe.yaml"
        probe.write_text(block)
        kinds.setdefault(kind_of(probe) or "unknown", []).append(block)
    probe.unlink()
    assert sorted(kinds) == ["daemon", "models", "routing"], kinds.keys()
    assert all(len(blocks) == 1 for blocks in kinds.values()), {k: len(v) for k, v in kinds.items()}
    for kind, (block,) in kinds.items():
        (tmp_path / f"{kind}.yaml").write_text(block)
    report = check_home(tmp_path, env={"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "HOME": "/home/u"})
    assert report.errors == ()
    assert not [w for w in report.warnings if "shadowed" in w or "not_configured" in w]
