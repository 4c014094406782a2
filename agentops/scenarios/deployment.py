"""Chapter 08's offline behaviour: the ACME support agent a service serves, and its offline rules.

:func:`support_agent` is a ``module:factory`` for ``python -m agentops serve``; with a Redis URL its
token budget lives in a :class:`~agentops.budgets.RedisLedger`, so two service processes share it.
:func:`deployment` is the registered scenario (``load_scenario("deployment", cfg)``) holding the
stable version's rules; :func:`canary_pair`, :func:`canary_suite` and :func:`shop_tools` are the
chapter's canary release and framework-tool examples. The serving library itself is :mod:`agentops.serve`.
"""

from __future__ import annotations

import os
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.models import OfflineModel, Prompt, Rule, rule
from agentops.scenarios._base import Scenario

__all__ = [
    "SUPPORT_PROMPT",
    "canary_pair",
    "canary_suite",
    "config_from_env",
    "deployment",
    "offline_rules",
    "replica_env",
    "shop_tools",
    "support_agent",
]

_BACKEND_ENV = (
    "AGENTOPS_SERVE_BACKEND",
    "AGENTOPS_SERVE_MODEL",
    "AGENTOPS_SERVE_BASE_URL",
    "AGENTOPS_SERVE_COMPLETION",
)

SUPPORT_PROMPT = "You are the support agent of ACME. Answer in one short sentence."


def _answer(p: Prompt) -> str:
    text = p.user.lower()
    if "refund" in text:
        return "Refunds are paid within 5 business days."
    if "hours" in text:
        return "We are open 9:00-17:00 CET, Monday to Friday."
    return "ACME support: please describe your order problem."


_ANSWERS = "ACME support agent → refund: 5 business days; hours: 9:00-17:00 CET; else: describe the order problem"


def offline_rules(version: str = "v1") -> list[Rule]:
    """The offline answers; version ``v2`` (a canary candidate) prefixes its answers with ``[v2]``."""
    if version == "v1":
        return [rule("support answer", _answer, system_contains="support agent of ACME", description=_ANSWERS)]
    return [
        rule(
            f"support answer {version}",
            lambda p: f"[{version}] " + _answer(p),
            system_contains="ACME",
            description=f"{_ANSWERS}, prefixed [{version}]",
        )
    ]


def deployment() -> Scenario:
    """The stable (``v1``) support agent's answers: refunds, opening hours, anything else asks for the problem."""
    return Scenario(
        "deployment",
        "ACME support answers in one sentence: refund delay, opening hours, else a request for details",
        tuple(offline_rules("v1")),
    )


def replica_env(
    llm_backend: str = "offline", model: str | None = None, base_url: str | None = None, max_tokens: int | None = None
) -> dict[str, str]:
    """Environment that makes a replica's :func:`support_agent` use the chapter's model (not the offline one).

    The provider's key stays in its own variable (``OPENAI_API_KEY``...), inherited, never copied here.
    """
    values = (llm_backend, model, base_url, None if max_tokens is None else str(max_tokens))
    return {name: str(v) for name, v in zip(_BACKEND_ENV, values, strict=True) if v is not None}


def config_from_env(env: Any = None) -> Any:
    """The model config :func:`replica_env` describes, or ``None`` for the offline model."""
    env = os.environ if env is None else env
    backend = env.get(_BACKEND_ENV[0], "offline")
    if backend == "offline":
        return None
    from agentops.models import model_config

    completion = env.get(_BACKEND_ENV[3])
    return model_config(
        backend,
        env.get(_BACKEND_ENV[1]) or None,
        base_url=env.get(_BACKEND_ENV[2]) or None,
        max_tokens=int(completion) if completion else None,
    )


def support_agent(
    redis_url: str | None = None,
    *,
    version: str = "v1",
    max_tokens: int | None = None,
    latency_s: float = 0.0,
    prefix: str = "agentops-serve",
    ledger: Any = None,
    config: Any = None,
    meter: Any = None,
) -> Any:
    """An offline support agent with a global token budget (Redis-shared when ``redis_url`` is given).

    ``redis_url`` defaults to ``AGENTOPS_SERVE_REDIS_URL``; without one the budget is per process.
    ``max_tokens`` defaults to ``AGENTOPS_SERVE_MAX_TOKENS`` (else 2000); ``ledger`` overrides both.
    ``config`` replaces the offline model (a real provider; default: :func:`config_from_env`, so replicas
    started with :func:`replica_env` use the chapter's model); ``AGENTOPS_SERVE_PREFIX`` names the ledger;
    ``AGENTOPS_SERVE_LATENCY_S`` adds simulated latency to the offline model. A
    :class:`~agentops.resilience.HealthMonitor` in the middleware feeds the service's ``/readyz``;
    ``meter`` (a :class:`~agentops.usage.UsageMeter`) counts the agent's tokens.
    """
    import ag2
    from redis import Redis

    from agentops.budgets import Budget, BudgetMiddleware, InProcessLedger, RedisLedger
    from agentops.resilience.health import HealthMonitor

    redis_url = redis_url or os.environ.get("AGENTOPS_SERVE_REDIS_URL")
    config = config if config is not None else config_from_env()
    latency_s = latency_s or float(os.environ.get("AGENTOPS_SERVE_LATENCY_S", "0"))
    model = config or OfflineModel(seed=0, rules=offline_rules(version), latency_s=latency_s, sleep=latency_s > 0)
    prefix = os.environ.get("AGENTOPS_SERVE_PREFIX", prefix)
    if ledger is None:
        ledger = RedisLedger(Redis.from_url(redis_url), prefix=prefix) if redis_url else InProcessLedger()
    max_tokens = max_tokens or int(os.environ.get("AGENTOPS_SERVE_MAX_TOKENS", "2000"))
    budget = BudgetMiddleware(
        ledger,
        agent="support",
        budgets=[Budget("service-tokens", scope="global", max_tokens=max_tokens)],
        model=model,
        max_completion_tokens=64,
    )
    prompt = SUPPORT_PROMPT if version == "v1" else SUPPORT_PROMPT + " Be warm."
    metered = [meter.middleware()] if meter is not None else []
    return ag2.Agent("support", prompt, config=model, middleware=[HealthMonitor(), *metered, budget])


def canary_pair(config: Any = None, meter: Any = None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """``((Release v1, agent), (Release v2, agent))``: the stable support agent and a warmer candidate.

    Offline, each version answers by its own rules (``config=None``); with a real provider both use
    ``config`` and differ by prompt only. ``meter`` counts both agents' tokens.
    """
    from agentops.serve.canary import Release

    pairs = []
    for version in ("v1", "v2"):
        agent = support_agent(version=version, config=config.copy() if config is not None else None, meter=meter)
        model = getattr(config, "model", None) or "offline-1"
        release = Release(
            version=version, system_prompt=SUPPORT_PROMPT + ("" if version == "v1" else " Be warm."), model=str(model)
        )
        pairs.append((release, agent))
    return pairs[0], pairs[1]


def canary_suite(cases: int | None = None) -> Any:
    """Chapter 03's eval suite format: three support questions the candidate must still answer
    (the first ``cases`` of them when given: a real model answers fewer)."""
    from agentops.evals import EvalSuite

    found = [
        {
            "id": "refund",
            "prompt": "How long does a refund take?",
            "assert": [{"type": "contains_any", "values": ["5 business days"]}],
        },
        {
            "id": "hours",
            "prompt": "What are your opening hours?",
            "assert": [{"type": "contains_any", "values": ["9:00"]}],
        },
        {"id": "other", "prompt": "My parcel is late", "assert": [{"type": "contains_any", "values": ["order"]}]},
    ]
    return EvalSuite.model_validate({"name": "support-canary", "cases": found[:cases]})


def shop_tools(llamaindex: bool = True) -> tuple[Any, Any, list[Rule]]:
    """A LangChain tool (stock level) and a LlamaIndex tool (shipping days), local work only, plus the
    offline rules that call them (``stock`` → ``stock_level``, ``ship`` → ``shipping_days``).

    ``llamaindex=False`` returns ``None`` for the LlamaIndex tool and never imports ``llama_index``
    (seconds of imports a chapter may skip)."""
    from langchain_core.tools import tool as lc_tool

    from agentops.models import tool_rule

    @lc_tool
    async def stock_level(sku: str, warehouse: str = "main") -> str:
        """Units in stock for a product code."""
        return f"{sku} in {warehouse}: 12 units"

    async def shipping_days(country: str, express: bool = False) -> int:
        """Days to ship an order to a country (ISO code)."""
        return 1 if express else {"FR": 2, "DE": 3}.get(country.upper(), 7)

    li_tool = None
    if llamaindex:
        from llama_index.core.tools import FunctionTool

        li_tool = FunctionTool.from_defaults(async_fn=shipping_days, name="shipping_days")
    rules = [
        tool_rule("stock_level", keywords=["stock"], arguments={"sku": "A-100"}),
        tool_rule("shipping_days", keywords=["ship", "shipping"], arguments={"country": "FR"}),
    ]
    return stock_level, li_tool, rules
