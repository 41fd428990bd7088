"""A test daemon on a temporary home whose models are one fake OpenAI-compatible server."""
from __future__ import annotations

from pathlib import Path

from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings


def one_model_yaml(base_url: str, model: str = "local:llama", *, aliases: tuple[str, ...] = (),
                   streaming: bool = True, input_per_mtok: float = 0.5, output_per_mtok: float = 1.5) -> str:
    """models.yaml with one provider at ``base_url`` serving ``model``."""
    extra = f"    aliases: [{', '.join(aliases)}]\n" if aliases else ""
    caps = "max_context_tokens: 32000" + ("" if streaming else ", supports_streaming: false")
    return (f'providers:\n  local: {{kind: openai_compatible, base_url: "{base_url}", api_key_env: null}}\n'
            f'models:\n  "{model}":\n    tier: balanced\n{extra}    capabilities: {{{caps}}}\n'
            f"    pricing: {{input_per_mtok: {input_per_mtok}, output_per_mtok: {output_per_mtok}}}\n")


def write_home(root: Path, models_yaml: str, default_model: str) -> Path:
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / "models.yaml").write_text(models_yaml)
    (home / "routing.yaml").write_text(f"schema_version: 1\nglobal_default: {default_model}\n")
    return home


async def start_daemon(nursery, root: Path, home: Path, *, wire_mode: bool = False) -> tuple[Daemon, Paths]:
    """The daemon on ``home`` with the tests' settings (short shutdown grace, no retry wait), running."""
    paths = Paths(home, root / "state", f"ipc://{root}/d.sock")
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001), wire_mode=wire_mode)
    await nursery.start(daemon.run)
    return daemon, paths
