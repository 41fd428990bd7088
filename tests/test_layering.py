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
IO_MODULES = {"trio", "zmq", "httpx", "httpcore", "sqlite3", "anyio", "asyncio", "socket"}


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


# --- import cycles -------------------------------------------------------------------------------

def _module_names() -> dict[str, Path]:
    names = {}
    for layer in FORBIDDEN.keys() | {"orchestrator"}:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere: at the top, inside functions and under
    TYPE_CHECKING alike (a lazy import only hides a cycle, it does not remove it)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                targets |= {known(f"{module}.{a.name}") if f"{module}.{a.name}" in modules else known(module)
                            for a in node.names}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles_even_through_lazy_or_type_checking_imports():
    assert import_cycles(import_graph(_module_names())) == []


def test_cycle_check_finds_a_cycle_hidden_in_a_function():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
