"""The frozen shape of workflows.yaml (DESIGN §4.9): fallback chains, workflows and their steps."""
from __future__ import annotations

from attrs import field, frozen

STAKES = ("low", "normal", "high")
# The seed's skip table, as conditions a step may name in ``skip_when`` (high stakes overrides all):
#   low_stakes     low-stakes internal task      → self-review is sufficient
#   time_critical  a time budget under 30 s      → single model, accept the risk
#   has_tests      coding task with tests        → the tests serve as cross-check
#   creative       creative / subjective work    → a cross-check adds noise, not signal
SKIP_CONDITIONS = ("low_stakes", "time_critical", "has_tests", "creative")
TIME_CRITICAL_S = 30.0
DEFAULT_CONFIDENCE_GATE = 30


@frozen
class ChainEntry:
    model: str
    timeout_s: float = 60.0
    retry: int = 0                  # extra attempts on a timeout or rate limit (0: one attempt)


@frozen
class FallbackChain:
    name: str
    entries: tuple[ChainEntry, ...]
    confidence_gate: int = DEFAULT_CONFIDENCE_GATE


@frozen
class Selector:
    """How a step (or one of its parallel branches) picks its model. At most one of role / model /
    chain / tier; none of them: the router decides as for an ordinary turn."""
    role: str | None = None
    role_tier: str | None = None            # the role's complexity tier (TRIVIAL … LARGE)
    model: str | None = None                # pinned: may even review its own output
    chain: str | None = None
    tier: str | None = None                 # a models.yaml tier: fast | balanced | deep
    same_model_as: str | None = None        # run on the model an earlier step used (a pin)
    other_family_than: str | None = None    # never on that earlier step's model family


@frozen
class Step:
    name: str
    prompt: str
    selector: Selector = Selector()
    parallel: tuple[Selector, ...] = ()     # N branches (validators) run together, cancelled together
    skip_when: frozenset[str] = frozenset()
    review: bool = False                    # its output judges another: never the workflow's result
    line: int = 1


@frozen
class Workflow:
    name: str
    steps: tuple[Step, ...]
    description: str = ""


@frozen
class WorkflowsConfig:
    chains: dict[str, FallbackChain] = field(factory=dict)
    workflows: dict[str, Workflow] = field(factory=dict)
