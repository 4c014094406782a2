"""The :class:`Scenario` record and the registry :func:`load_scenario` reads."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentops.errors import ConfigError
from agentops.models import Faults, OfflineModel, Rule

__all__ = ["Scenario", "load_scenario", "scenario_names"]

# scenario name -> "module:function" returning a Scenario (imported on first use)
_REGISTRY: dict[str, str] = {
    "quickstart": "agentops.scenarios.quickstart:scenario",
    "desk": "agentops.scenarios.architecture:desk",
    "code_review": "agentops.scenarios.architecture:code_review",
    "support": "agentops.scenarios.evaluations:support",
    "judge": "agentops.scenarios.evaluations:judge",
    "guarded_support": "agentops.scenarios.governance:guarded_support",
    "operations": "agentops.scenarios.governance:operations",
    "obedient": "agentops.scenarios.governance:obedient",
    "runaway": "agentops.scenarios.governance:runaway",
    "shared_answer": "agentops.scenarios.governance:shared_answer",
    "service": "agentops.scenarios.observability:service",
    "support_cheap": "agentops.scenarios.cost_performance:support_cheap",
    "support_strong": "agentops.scenarios.cost_performance:support_strong",
    "support_tools": "agentops.scenarios.cost_performance:support_tools",
    "delegation": "agentops.scenarios.advanced:delegation",
    "conversations": "agentops.scenarios.advanced:conversations",
    "advanced": "agentops.scenarios.advanced:advanced",
    "deployment": "agentops.scenarios.deployment:deployment",
}


@dataclass(frozen=True)
class Scenario:
    """What the offline model does in one chapter: rules, and optional seeded latency and faults.

    Args:
        name: the registry name (``load_scenario(name, ...)``).
        summary: one sentence a chapter can print.
        rules: tried in order before the model's built-in defaults; first match answers.
        latency_s: simulated latency per call, ``(low, high)`` drawn from the seed; ``None`` keeps the model's.
        faults: fault probabilities (see :class:`agentops.models.Faults`); ``None`` keeps the model's.
        sleep: ``False`` records simulated latency without waiting (a simulated clock reads it);
            ``None`` keeps the model's.
        applied: how many offline configs received the scenario (0 with a real provider).
    """

    name: str
    summary: str
    rules: tuple[Rule, ...] = ()
    latency_s: tuple[float, float] | None = None
    faults: Mapping[str, float] | None = None
    sleep: bool | None = None
    applied: int = field(default=0, compare=False)

    def apply(self, config: Any) -> Any:
        """Give an :class:`OfflineModel` this scenario (idempotent); any other config is returned as is."""
        if not isinstance(config, OfflineModel):
            return config
        known = {r.name for r in config.rules}
        for r in self.rules:
            if r.name not in known:
                config.add_rule(r)
        if self.latency_s is not None:
            config.latency_s = (float(self.latency_s[0]), float(self.latency_s[1]))
        if self.faults is not None:
            config.faults = Faults(**self.faults)
        if self.sleep is not None:
            config.sleep = self.sleep
        return config

    def frame(self) -> Any:
        """The rules as a pandas DataFrame (rule, when → what), in match order."""
        import pandas as pd

        rows = [{"rule": r.name, "when → what": r.description} for r in self.rules]
        return pd.DataFrame(rows, columns=["rule", "when → what"], index=pd.RangeIndex(1, len(rows) + 1, name="order"))

    def __str__(self) -> str:
        lines = [f"scenario {self.name!r}: {self.summary}"]
        lines += [f"  {i}. {r.name}: {r.description}" for i, r in enumerate(self.rules, 1)]
        if self.latency_s is not None:
            lo, hi = self.latency_s
            waits = "" if self.sleep is not False else " (simulated, not waited for)"
            lines.append(f"  latency: {lo * 1000:.0f}–{hi * 1000:.0f} ms per call, drawn from the seed{waits}")
        if self.faults:
            rates = ", ".join(f"{k} {v:.0%}" for k, v in self.faults.items() if isinstance(v, float))
            lines.append(f"  faults: {rates} of calls, drawn from the seed")
        state = f"applied to {self.applied} offline config(s)" if self.applied else "not applied (real provider)"
        return "\n".join([*lines, f"  ({state})"])


def scenario_names() -> list[str]:
    """Every registered scenario name."""
    return sorted(_REGISTRY)


def _build(name: str) -> Scenario:
    target = _REGISTRY.get(name)
    if target is None:
        raise ConfigError(f"unknown scenario {name!r}; choose one of: {', '.join(scenario_names())}")
    module, func = target.split(":")
    factory: Callable[[], Scenario] = getattr(importlib.import_module(module), func)
    return factory()


def load_scenario(name: str, *configs: Any) -> Scenario:
    """Apply the named scenario to each offline config among ``configs`` and return it.

    Real providers' configs are left untouched, so a chapter calls this unconditionally.

    Raises:
        ConfigError: unknown scenario name (the message lists the valid ones).
    """
    scenario = _build(name)
    applied = 0
    for config in configs:
        if isinstance(config, OfflineModel):
            scenario.apply(config)
            applied += 1
    return dataclasses.replace(scenario, applied=applied)
