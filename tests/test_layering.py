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


# The sans-IO cores: pure decision logic with an injected clock, unit-tested without a nursery.
# New cores (patterns, loops, workflows) join this list as they arrive.
SANS_IO_CORES = [
    "actors/router/*.py",          # the policy chain, predicates, rules, scoring (actor.py excepted)
    "actors/availability/state.py",
    "actors/cost/pricing.py",
    "actors/config/*.py",
    "actors/planner/tokens.py",
    "actors/patterns/*.py",        # the pattern store: fingerprints, store, scoring, prior
]
SANS_IO_EXEMPT = {"actors/router/actor.py"}
IO_MODULES = {"trio", "zmq", "httpx", "sqlite3", "anyio", "asyncio", "socket"}


def sans_io_core_files() -> list[Path]:
    files = {p for pattern in SANS_IO_CORES for p in ROOT.glob(pattern)}
    return sorted(p for p in files if str(p.relative_to(ROOT)) not in SANS_IO_EXEMPT)


def test_sans_io_cores_import_no_io_libraries():
    files = sans_io_core_files()
    assert len(files) > 10  # the globs still find the cores after a move
    violations = [f"{p.relative_to(ROOT)} imports {sorted(imported_top_levels(p) & IO_MODULES)}"
                  for p in files if imported_top_levels(p) & IO_MODULES]
    assert violations == []


def test_sans_io_check_catches_a_trio_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    import trio\n")
    assert imported_top_levels(bad) & IO_MODULES == {"trio"}
