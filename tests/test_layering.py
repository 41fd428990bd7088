"""protocol ← actors ← orchestrator: a lower layer never imports a higher one."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"protocol": {"actors", "orchestrator"}, "actors": {"orchestrator"}}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_layer_imports_a_higher_layer():
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in (ROOT / layer).rglob("*.py"):
            bad = imported_top_levels(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []


def test_layering_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from orchestrator.cli import main\n")
    assert imported_top_levels(bad) & FORBIDDEN["actors"] == {"orchestrator"}
