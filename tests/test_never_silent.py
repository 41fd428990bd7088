"""Issue 10 item 4: an @override or a sticky model that cannot be honoured says so in the turn."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "router"))
from routing_helpers import ANTHROPIC_ONLY, GPT5_MINI, MODELS_YAML, SONNET  # noqa: E402

from actors.router.actor import RouterActor  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.runtime.kernel import ActorSystem  # noqa: E402
from actors.runtime.store import Store  # noqa: E402
from protocol.messages import DecideRoute, ShowRules  # noqa: E402

BASE = "schema_version: 1\nglobal_default: sonnet\n"


async def start(nursery, tmp_path, models=MODELS_YAML, routing=BASE, env=ANTHROPIC_ONLY):
    (tmp_path / "models.yaml").write_text(models)
    (tmp_path / "routing.yaml").write_text(routing)
    system = ActorSystem()
    loader = PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"), env=env)
    await nursery.start(RouterActor(system, loader, store=Store(":memory:")).run)
    return system


async def test_an_override_of_an_unconfigured_model_falls_through_with_a_banner_naming_model_and_key(
        nursery, tmp_path):
    system = await start(nursery, tmp_path)
    d = await system.request("router", DecideRoute("s1", "t1", "@gpt5-mini hello"))
    assert d.route.chosen_model == SONNET
    assert d.banners == (f"@gpt5-mini ({GPT5_MINI}) is not configured: OPENAI_API_KEY is not set in the "
                         f"daemon's environment. Routing fell through to {SONNET}.",)


async def test_an_unconfigured_sticky_model_is_not_dropped_silently(nursery, tmp_path):
    system = await start(nursery, tmp_path)
    d = await system.request("router", DecideRoute("s1", "t1", "hello", sticky_model=GPT5_MINI))
    assert d.route.chosen_model == SONNET
    assert d.banners == (f"Sticky model {GPT5_MINI} is not configured: OPENAI_API_KEY is not set in the "
                         f"daemon's environment. Routing fell through to {SONNET}.",)


async def test_an_override_lacking_a_capability_names_the_capability(nursery, tmp_path):
    models = MODELS_YAML.replace("max_context_tokens: 400000, supports_images: true",
                                 "max_context_tokens: 400000, supports_images: false")
    system = await start(nursery, tmp_path, models=models, env={"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"})
    d = await system.request("router", DecideRoute("s1", "t1", "@openai:gpt-5 look", has_images=True))
    assert any(b.startswith("@openai:gpt-5 cannot take this turn (no vision support). Routing fell through to")
               for b in d.banners), d.banners


async def test_rules_report_lists_not_configured_models_and_why(nursery, tmp_path):
    system = await start(nursery, tmp_path)
    report = await system.request("router", ShowRules())
    assert report.not_configured[GPT5_MINI] == "OPENAI_API_KEY is not set in the daemon's environment"
    assert SONNET not in report.not_configured


async def test_a_broken_models_yaml_banner_names_models_yaml_and_the_cli_command(nursery, tmp_path):
    system = await start(nursery, tmp_path)
    assert (await system.request("router", DecideRoute("s1", "t0", "hello"))).route.chosen_model == SONNET
    (tmp_path / "models.yaml").write_text(MODELS_YAML + "  bad-id: {}\n")
    d = await system.request("router", DecideRoute("s1", "t1", "hello"))
    assert d.route.chosen_model == SONNET
    assert d.banners[0].startswith("models.yaml is invalid; using the last-known-good configuration. "
                                   "First error: models.yaml:")
    assert "routing.yaml" not in d.banners[0] and "/rules check" not in d.banners[0]
    assert d.banners[0].endswith("Run `orchestrator check` to see every error.")
