"""Router start-up with a big pattern_outcomes table (issue 14): how long until the store is built,
and how soon the first turn is answered while it loads.

    python -m bench.pattern_startup [--outcomes 100000]

Three ways to build the live store from the same 100k-row table (synthetic texts, as
``bench.route_eval micro``):

* ``rebuild``  — the phase-B path: read every row's text, fingerprint it, add it;
* ``cold``     — the start-up load on a table without cached fingerprints: the same work plus
  writing each fingerprint back (what the first start after an upgrade does);
* ``warm``     — the start-up load on a table whose rows carry their fingerprints: decode, add.

Then the real router actor on the warm table: time to its first answered turn (slot 4 says
"pattern store loading") and to the store being ready.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import trio  # noqa: E402

from bench._common import ROOT  # noqa: E402,F401  (puts the repository on sys.path)
from actors.router.actor import LOAD_CHUNK, RouterActor  # noqa: E402
from actors.router.learned import LivePatterns  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.runtime.kernel import Actor, ActorSystem  # noqa: E402
from actors.runtime.store import PatternOutcome, Store  # noqa: E402
from protocol.messages import AvailabilityView, CostAmount, DecideRoute, GetAvailability, GetCostToday  # noqa: E402

MODELS = ["anthropic:claude-haiku-4-5", "anthropic:claude-sonnet-4-6", "anthropic:claude-opus-4-7"]
MODELS_YAML = """\
providers:
  anthropic: {kind: anthropic}
models:
""" + "".join(f"  {m}: {{capabilities: {{max_context_tokens: 200000}}}}\n" for m in MODELS)
ROUTING_YAML = "schema_version: 1\nglobal_default: anthropic:claude-sonnet-4-6\n"


def fill(store: Store, n: int) -> None:
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(5000)] + "fix test refactor parser api database query deploy docs".split()
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 60)))
        m = i % len(MODELS)
        rows.append((PatternOutcome(f"t{i}", "s", None, text, MODELS[m], float(rng.random() < 0.5 + 0.1 * m),
                                    0.001 * (m + 1), 1.0), None, None))
    store.record_outcomes(rows)


def load_sync(store: Store, cache: bool) -> tuple[LivePatterns, float]:
    t = time.perf_counter()
    live, upto, after = LivePatterns(), store.last_outcome_id(), 0
    while after < upto:
        fresh = live.load_stored(store.stored_outcomes(after, min(upto, after + LOAD_CHUNK)))
        after += LOAD_CHUNK
        if cache and fresh:
            store.cache_fingerprints(fresh)
    live.finish_load()
    return live, time.perf_counter() - t


class _Availability(Actor):
    name = "availability"

    def handlers(self):
        return {GetAvailability: self.on_get}

    async def on_get(self, env):
        return AvailabilityView({})


class _Cost(Actor):
    name = "cost"

    def handlers(self):
        return {GetCostToday: self.on_get}

    async def on_get(self, env):
        return CostAmount("0")


async def actor_start(store: Store, home: Path) -> dict[str, object]:
    system = ActorSystem()
    loader = PolicyLoader(str(home / "models.yaml"), str(home / "routing.yaml"), env={"ANTHROPIC_API_KEY": "x"})
    async with trio.open_nursery() as nursery:
        await nursery.start(_Availability(system).run)
        await nursery.start(_Cost(system).run)
        t0 = time.perf_counter()
        router = RouterActor(system, loader, store=store)
        await nursery.start(router.run)
        started = time.perf_counter() - t0
        reply = await system.request("router", DecideRoute("s1", "t1", "fix the parser test"), timeout=30)
        first = time.perf_counter() - t0
        entry = next(e for e in reply.route.chain if e.policy.value == "pattern")
        await router.patterns_loaded.wait()
        ready = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return {"actor_started_s": round(started, 3), "first_turn_s": round(first, 3),
            "first_turn_pattern_reason": entry.reason, "store_ready_s": round(ready, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outcomes", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "models.yaml").write_text(MODELS_YAML)
        (home / "routing.yaml").write_text(ROUTING_YAML)
        store = Store(home / "state.db")
        fill(store, args.outcomes)
        t = time.perf_counter()
        LivePatterns.from_outcomes(store.outcomes())
        out: dict[str, object] = {"outcomes": args.outcomes, "rebuild_s": round(time.perf_counter() - t, 2)}
        out["cold_s"] = round(load_sync(store, cache=True)[1], 2)
        out["warm_s"] = round(load_sync(store, cache=True)[1], 2)
        out["db_mb"] = round(os.path.getsize(home / "state.db") / 1e6, 1)
        out.update(trio.run(actor_start, store, home))
        out["loadavg"] = open("/proc/loadavg").read().split()[:3]
        print(json.dumps(out))


if __name__ == "__main__":
    main()
