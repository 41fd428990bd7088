"""``orchestrator init``: a starter home that works with real providers (DESIGN §4.1).

It writes ``models.yaml`` (current models of the chosen providers, priced by genai-prices —
no prices are copied here, so they stay maintained — and keys named by environment variable),
``routing.yaml`` that uses them and ``daemon.yaml`` with the defaults; refuses to overwrite
without ``--force``; then runs the same checks as ``orchestrator check`` and says what to do next.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from collections.abc import Mapping, Sequence

from attrs import frozen

from actors.config.files import url_problem

from .check import KEYS_FILE, check_home

PRESETS = ("anthropic", "openai", "openai_compatible", "ollama")
OLLAMA_URL = "http://127.0.0.1:11434/v1"
OLLAMA_MODEL = "llama3.2"


@frozen
class Starter:
    """One model of a preset. The hosted ones must be priced by genai-prices (a test checks)."""

    name: str
    tier: str
    alias: str
    context: int
    images: bool = True
    structured: bool = False


# Current models, fast → balanced → deep. Context windows as genai-prices lists them.
HOSTED: Mapping[str, tuple[Starter, ...]] = {
    "anthropic": (
        Starter("claude-haiku-4-5", "fast", "haiku", 200_000),
        Starter("claude-sonnet-4-6", "balanced", "sonnet", 1_000_000),
        Starter("claude-opus-4-8", "deep", "opus", 1_000_000),
    ),
    "openai": (
        Starter("gpt-5.4-mini", "fast", "mini", 400_000, structured=True),
        Starter("gpt-5.4", "balanced", "gpt", 1_050_000, structured=True),
        Starter("gpt-5.5", "deep", "gpt-deep", 1_000_000, structured=True),
    ),
}
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class InitError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@frozen
class Plan:
    models_yaml: str
    routing_yaml: str
    daemon_yaml: str
    key_vars: tuple[str, ...]        # what the daemon's environment must hold
    default_model: str


def _caps(context: int, images: bool, structured: bool) -> str:
    return (f"{{max_context_tokens: {context}, supports_images: {str(images).lower()}, supports_tools: true, "
            f"supports_structured_output: {str(structured).lower()}}}")


def plan(providers: Sequence[str], *, base_url: str | None = None, model: str | None = None,
         api_key_env: str | None = None) -> Plan:
    """The three files for these presets (pure: no I/O)."""
    chosen = list(dict.fromkeys(providers)) or ["anthropic"]
    unknown = [p for p in chosen if p not in PRESETS]
    if unknown:
        raise InitError(f"unknown provider {unknown[0]!r} (expected one of: {', '.join(PRESETS)})", 2)
    local = "openai_compatible" if "openai_compatible" in chosen else "ollama" if "ollama" in chosen else None
    if (base_url or model) and local is None:
        raise InitError("--base-url and --model are for --provider openai_compatible or ollama", 2)
    if "openai_compatible" in chosen and (not base_url or not model):
        raise InitError("--provider openai_compatible needs --base-url URL and --model NAME", 2)
    if api_key_env and local is None:
        raise InitError("--api-key-env is for --provider openai_compatible or ollama", 2)
    if base_url is not None and (problem := url_problem(base_url)):
        # Checked before anything is written: a bad URL must not leave a home that a fixed
        # re-run then refuses to overwrite.
        raise InitError(f"--base-url: {problem}", 2)

    providers_lines: list[str] = []
    model_lines: list[str] = []
    tiers: dict[str, str] = {}
    defaults: list[str] = []
    keys: list[str] = []
    for preset in chosen:
        first = not tiers          # the first provider owns the tiers and the tier aliases
        if preset in HOSTED:
            var = KEY_ENV[preset]
            keys.append(var)
            providers_lines.append(f"  {preset}: {{kind: {preset}, api_key_env: {var}}}")
            for s in HOSTED[preset]:
                mid = f"{preset}:{s.name}"
                aliases = [s.alias] + ([s.tier] if first else [])
                model_lines += [f'  "{mid}":', f"    tier: {s.tier}",
                                f"    can_delegate: {'false' if s.tier == 'fast' else 'true'}",
                                f"    aliases: [{', '.join(aliases)}]",
                                f"    capabilities: {_caps(s.context, s.images, s.structured)}"]
                if first:
                    tiers[s.tier] = mid
                if s.tier == "balanced":
                    defaults.append(mid)
            continue
        name, url = ("local", base_url) if preset == "openai_compatible" else (
            "ollama", base_url if local == "ollama" and base_url else OLLAMA_URL)
        served = model if preset == local and model else OLLAMA_MODEL
        key = api_key_env if preset == local else None
        if key:
            keys.append(key)
        providers_lines.append(
            f'  {name}: {{kind: openai_compatible, base_url: "{url}", api_key_env: {key or "null"}}}')
        mid = f"{name}:{served}"
        model_lines += [f'  "{mid}":', "    can_delegate: false", f"    aliases: [{name}]",
                        f"    capabilities: {_caps(32_768, False, False)}"]
        if preset == "ollama":
            # A model on your own machine costs nothing per token; say so rather than "unknown".
            model_lines.append("    pricing: {input_per_mtok: 0, output_per_mtok: 0}")
        defaults.append(mid)
        for tier in ("fast", "balanced", "deep"):
            tiers.setdefault(tier, mid)
    default = defaults[0]
    models_yaml = "\n".join([
        "# Model registry (written by `orchestrator init`; edit freely, then run `orchestrator check`).",
        "# Keys are read from the environment variable each provider names — set them in the",
        f"# daemon's environment (for the service: the `{KEYS_FILE}` file in this folder, mode 0600).",
        "# Prices come from the genai-prices database bundled with orchestrator unless a model",
        "# sets `pricing: {input_per_mtok: …, output_per_mtok: …}`.",
        "providers:", *providers_lines, "models:", *model_lines, ""])
    fast = tiers["fast"]
    rules = ""
    if fast != default:
        rules = ("rules:\n"
                 '  - name: "fast for commit messages"\n'
                 '    when: {message_matches: "^/commit|write.*commit message"}\n'
                 f"    use: {fast}\n")
    routing_yaml = (
        "# Routing policy (spec §5; written by `orchestrator init`). First matching rule wins;\n"
        "# `@alias message` and `/model` always beat rules. `orchestrator check` validates it.\n"
        "schema_version: 1\n"
        f"global_default: {default}\n"
        f"tiers: {{fast: {tiers['fast']}, balanced: {tiers['balanced']}, deep: {tiers['deep']}}}\n"
        + rules)
    daemon_yaml = (
        "# Daemon settings (written by `orchestrator init` with the defaults).\n"
        "shutdown_grace_s: 10     # SIGTERM: running turns get this long to finish, then are cancelled\n"
        "max_restarts: 5          # more than this many actor restarts ...\n"
        "restart_window_s: 30     # ... within this window and the daemon exits non-zero\n"
        "log_level: info          # debug | info | warning | error | critical\n"
        "retry_max_attempts: 5    # attempts per LLM call for transient errors\n"
        "retry_base_delay_s: 0.5  # exponential backoff base, capped at 8 s\n")
    return Plan(models_yaml, routing_yaml, daemon_yaml, tuple(dict.fromkeys(keys)), default)


def write_home(home: Path, p: Plan, *, force: bool) -> list[Path]:
    files = {"models.yaml": p.models_yaml, "routing.yaml": p.routing_yaml, "daemon.yaml": p.daemon_yaml}
    if home.exists() and not home.is_dir():
        raise InitError(f"cannot write the home {home}: it is not a directory")
    existing = [home / name for name in files if (home / name).exists()]
    if existing and not force:
        raise InitError(f"{existing[0]} already exists; nothing written (use --force to overwrite "
                        f"{', '.join(f.name for f in existing)})")
    written = []
    try:
        home.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (home / name).write_text(text, encoding="utf-8")
            written.append(home / name)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else home
        done = f" (written before the error: {', '.join(f.name for f in written)})" if written else ""
        raise InitError(f"cannot write the home {home}: {exc.strerror or exc}: {where}{done}") from None
    return written


def next_steps(home: Path, p: Plan, env: Mapping[str, str], default_home: Path | None = None) -> list[str]:
    keys_file = home / KEYS_FILE
    lines = ["Next steps:"]
    n = 1
    if default_home is not None and home != default_home:
        lines.append(f"  {n}. This is not the default home: export ORCHESTRATOR_HOME={home} for serve and the CLI")
        n += 1
    missing = [v for v in p.key_vars if not env.get(v)]
    if p.key_vars:
        names = " and ".join(p.key_vars)
        lines += [f"  {n}. The daemon reads {names} from its own environment (not from this shell's later exports):",
                  f"       foreground:  export {p.key_vars[0]}=…   then start `orchestrator serve` from that shell",
                  f"       service:     put {p.key_vars[0]}=… in {keys_file} (mode 0600; "
                  "`orchestrator service install` creates it)"]
        if missing:
            lines.append(f"     (not set in this shell: {', '.join(missing)})")
        n += 1
    lines += [f"  {n}. Start the daemon:  orchestrator serve   "
              "(or as a service: orchestrator service install --user --now)",
              f"  {n + 1}. Try it:            orchestrator ask \"hello\"   → answered by {p.default_model}",
              f"  {n + 2}. Edit {home}/routing.yaml to add rules; `orchestrator check` validates every file."]
    return lines


def run_init(args, home: Path) -> int:
    env = os.environ
    providers = args.provider or [p for p, var in KEY_ENV.items() if env.get(var)] or ["anthropic"]
    p = plan(providers, base_url=args.base_url, model=args.model, api_key_env=args.api_key_env)
    written = write_home(home, p, force=args.force)
    print(f"Wrote {', '.join(str(f) for f in written)}")
    report = check_home(home, env=env)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in report.errors:
        print(e)
    if report.errors:
        return 1
    print("check: ok")
    from .paths import resolve_paths

    print("\n".join(next_steps(home, p, env, resolve_paths().home.absolute())))
    return 0
