"""Model routing for AG2: pick a cheaper or stronger model per request, escalate when the answer is not
good enough, fall back to the cheap tier under budget pressure.

:class:`RoutedModel` is an AG2 ``ModelConfig`` wrapper, so it composes with every middleware
(budgets, guardrails, telemetry) and with :class:`~agentops.caching.ResponseCache` — the usage of each
call carries the model that really answered, so costs are attributed per tier.

How a tier is chosen (:class:`RoutingPolicy`), from features that are measurable before the call
(:func:`request_features`): prompt length in tokens, reasoning cues ("why", "explain", "calculate",
"compare", ...), how many numbers the request holds, code, and whether tools are offered. Each
feature adds to a score; the score picks the tier. A rule like this is cheap (no extra model call),
deterministic and explainable, and it is measured (the chapter runs it through the eval harness
against always-strong and always-cheap); swap in a classifier by passing ``policy=`` any callable
``features -> (tier index, reason)``.

Escalation: after a tier answers, the answer is checked — empty or truncated, failed the caller's
``validate(text)``, or the model hedged ("I'm not sure", "cannot determine": its own low-confidence
signal) — and the request is re-sent to the next tier up (at most ``max_escalations`` times).
Budget pressure: when ``pressure()`` (share of budget spent, 0..1) reaches ``fallback_at``, every
request goes to the cheapest tier and escalation stops.

The discarded answer's tokens are reported as their own ``UsageEvent`` (so evals and
``reply.usage()`` see the full cost of an escalation); live stream subscribers may have seen it.

Thread/asyncio safety: decisions are appended under a lock; one router may serve many agents.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ag2.config import LLMClient, ModelConfig
from ag2.events import BaseEvent, ModelResponse, UsageEvent
from pydantic import Field

from agentops._wrapper import LazyClients, last_request_text, no_overrides
from agentops.config import Spec, check_unique
from agentops.errors import ConfigError
from agentops.models import count_tokens

__all__ = ["RouteDecision", "RoutedModel", "Router", "RoutingPolicy", "Tier", "request_features", "spend_pressure"]

_HEDGES = re.compile(
    r"\b(i'?m not (sure|certain)|i am not (sure|certain)|cannot determine|can't determine|not enough information"
    r"|i don'?t know|unsure|low confidence)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+|\bSELECT\b.+\bFROM\b|=>|;\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder: a name and the AG2 ``ModelConfig`` that serves it (cheapest first)."""

    name: str
    config: ModelConfig

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"a tier needs a non-empty name, got {self.name!r}")
        if not hasattr(self.config, "create"):
            raise ConfigError(
                f"tier {self.name!r}: config must be an AG2 ModelConfig, got {type(self.config).__name__}"
            )


class RoutingPolicy(Spec):
    """Score weights and cut-offs: score ≥ ``cutoffs[i]`` selects tier ``i + 1``."""

    reasoning_words: tuple[str, ...] = (
        "why",
        "explain",
        "calculate",
        "compute",
        "compare",
        "prove",
        "derive",
        "plan",
        "design",
        "analyse",
        "analyze",
        "trade-off",
        "tradeoff",
        "step by step",
        "estimate",
        "optimise",
        "optimize",
    )
    long_prompt_tokens: int = Field(120, gt=0)
    weight_reasoning: float = 1.0
    weight_long: float = 1.0
    weight_numbers: float = 0.5
    weight_code: float = 1.0
    weight_tools: float = 0.5
    cutoffs: tuple[float, ...] = (1.0,)

    def __call__(self, features: dict[str, Any]) -> tuple[int, str]:
        """Tier index and a reason naming the features that counted."""
        parts: list[tuple[float, str]] = []
        if features["reasoning_cues"]:
            parts.append((self.weight_reasoning, f"reasoning cue {features['reasoning_cues'][0]!r}"))
        if features["tokens"] >= self.long_prompt_tokens:
            parts.append((self.weight_long, f"{features['tokens']} tokens"))
        if features["numbers"] >= 2:
            parts.append((self.weight_numbers, f"{features['numbers']} numbers"))
        if features["code"]:
            parts.append((self.weight_code, "code"))
        if features["tools"]:
            parts.append((self.weight_tools, "tools offered"))
        score = sum(w for w, _ in parts)
        tier = sum(score >= c for c in self.cutoffs)
        why = ", ".join(r for _, r in parts) or "short plain request"
        return tier, f"score {score:g} ({why})"


def request_features(
    text: str, tools: Sequence[str] = (), words: Iterable[str] = RoutingPolicy().reasoning_words
) -> dict[str, Any]:
    """Measurable features of one request (no model call)."""
    low = text.lower()
    cues = [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", low)]
    return {
        "tokens": count_tokens(text),
        "reasoning_cues": cues,
        "numbers": len(_NUMBER.findall(text)),
        "code": bool(_CODE.search(text)),
        "tools": list(tools),
    }


def spend_pressure(meter: Any, cap_usd: float) -> Callable[[], float]:
    """``pressure()`` for a :class:`~agentops.usage.UsageMeter`: share of ``cap_usd`` already spent."""
    if not cap_usd > 0:
        raise ConfigError(f"cap_usd must be > 0, got {cap_usd!r}")
    return lambda: float(meter.cost_usd or 0.0) / cap_usd


@dataclass(frozen=True)
class RouteDecision:
    """What the router did for one model call."""

    request: str
    tier: str
    reason: str
    escalations: tuple[str, ...] = ()
    features: dict[str, Any] = field(default_factory=dict, compare=False)


class Router:
    """Tiers (cheapest first), a policy, escalation checks and budget-pressure fallback.

    Args:
        tiers: at least one :class:`Tier`, cheapest first; names unique.
        policy: ``features -> (tier index, reason)``; default :class:`RoutingPolicy`.
        validate: ``text -> bool``; a False answer escalates.
        escalate_on_hedge: escalate when the answer hedges (the model's own low confidence).
        max_escalations: how many tiers up one request may climb.
        pressure: ``() -> float`` share of budget spent; with ``fallback_at`` forces the cheapest tier.
    """

    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        policy: Callable[[dict[str, Any]], tuple[int, str]] | None = None,
        validate: Callable[[str], bool] | None = None,
        escalate_on_hedge: bool = True,
        max_escalations: int = 1,
        pressure: Callable[[], float] | None = None,
        fallback_at: float = 0.8,
    ) -> None:
        if not tiers:
            raise ConfigError("a router needs at least one tier (cheapest first)")
        check_unique([t.name for t in tiers], "tier names")
        if max_escalations < 0:
            raise ConfigError(f"max_escalations must be ≥ 0, got {max_escalations!r}")
        if not 0.0 < fallback_at <= 1.0:
            raise ConfigError(f"fallback_at must be in (0, 1], got {fallback_at!r}")
        self.tiers = tuple(tiers)
        self.policy = policy or RoutingPolicy()
        self.validate, self.escalate_on_hedge = validate, escalate_on_hedge
        self.max_escalations, self.pressure, self.fallback_at = max_escalations, pressure, fallback_at
        self.decisions: list[RouteDecision] = []
        self._lock = threading.Lock()

    def choose(self, text: str, tools: Sequence[str] = ()) -> tuple[int, str, dict[str, Any]]:
        """Tier index, reason and features for a request (budget pressure applied)."""
        words = getattr(self.policy, "reasoning_words", RoutingPolicy().reasoning_words)
        feats = request_features(text, tools, words)
        if self.pressure is not None and self.pressure() >= self.fallback_at:
            return 0, f"budget pressure ≥ {self.fallback_at:.0%}: cheapest tier", feats
        idx, reason = self.policy(feats)
        return max(0, min(idx, len(self.tiers) - 1)), reason, feats

    def needs_escalation(self, resp: ModelResponse) -> str | None:
        """Why an answer is not good enough (None when it is)."""
        text = resp.message.content if resp.message is not None else ""
        if resp.tool_calls and resp.tool_calls.calls:
            return None
        if not text:
            return "empty answer"
        if resp.finish_reason == "length":
            return "truncated answer"
        if self.validate is not None and not self.validate(text):
            return "failed validation"
        if self.escalate_on_hedge and _HEDGES.search(text):
            return "model hedged (low confidence)"
        return None

    def model(self) -> RoutedModel:
        """The AG2 ``ModelConfig`` to give an agent."""
        return RoutedModel(self)

    def _record(self, decision: RouteDecision) -> None:
        with self._lock:
            self.decisions.append(decision)

    def frame(self) -> Any:
        """One row per routed call: request, tier, reason, escalations."""
        import pandas as pd

        with self._lock:
            rows = [
                {"request": d.request, "tier": d.tier, "reason": d.reason, "escalated": " → ".join(d.escalations)}
                for d in self.decisions
            ]
        return pd.DataFrame(rows, columns=["request", "tier", "reason", "escalated"])


class RoutedModel(ModelConfig):
    """An AG2 ``ModelConfig`` that sends each model call to the tier its :class:`Router` picks."""

    def __init__(self, router: Router) -> None:
        self.router = router

    @property
    def provider(self) -> Any:
        return self.router.tiers[-1].config.provider

    @property
    def model(self) -> str:
        return "routed:" + "|".join(t.name for t in self.router.tiers)

    def copy(self, **overrides: Any) -> RoutedModel:
        """Routing configs are shared; overrides belong on the tiers' own configs."""
        no_overrides("RoutedModel", overrides, "set them on each tier's config")
        return self

    def create(self) -> LLMClient:
        return _RoutedClient(self.router)


class _RoutedClient(LazyClients):
    def __init__(self, router: Router) -> None:
        super().__init__([t.config for t in router.tiers])
        self.router = router

    async def __call__(
        self,
        messages: Sequence[BaseEvent],
        context: Any,
        *,
        tools: Iterable[Any] = (),
        response_schema: Any = None,
        serializer: Any = None,
    ) -> ModelResponse:
        router = self.router
        tools = list(tools)
        text = last_request_text(messages)
        names = [t.function.name for t in tools if hasattr(t, "function")]
        idx, reason, feats = router.choose(text, names)
        pressured = reason.startswith("budget pressure")
        climbed: list[str] = []
        while True:
            resp = await self._client(idx)(
                messages, context, tools=tools, response_schema=response_schema, serializer=serializer
            )
            why = router.needs_escalation(resp)
            if why is None or pressured or idx + 1 >= len(router.tiers) or len(climbed) >= router.max_escalations:
                break
            climbed.append(f"{router.tiers[idx].name} ({why})")
            if resp.usage and hasattr(context, "send"):  # the discarded attempt was paid for: report it
                await context.send(
                    UsageEvent(
                        resp.usage,
                        kind="model_call",
                        model=resp.model,
                        provider=resp.provider,
                        finish_reason=resp.finish_reason,
                    )
                )
            idx += 1
        router._record(
            RouteDecision(" ".join(text.split())[:60], router.tiers[idx].name, reason, tuple(climbed), feats)
        )
        return resp
