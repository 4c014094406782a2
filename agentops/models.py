"""Model configs: a deterministic offline model for AG2 v1, and real OpenAI-compatible providers.

``model_config(backend=...)`` is the one switch a notebook's parameters cell turns: ``"offline"`` (the
default, no network, no key) or a real provider (``"openai"``, ``"azure"``, ``"ollama"``, ``"vllm"``,
``"compatible"``). Every config it returns is an AG2 ``ModelConfig``, so agents, middleware, telemetry
and metrics see no difference between them.

Why the offline model is hand-written: AG2's ``ag2.testing.TestConfig`` replays a fixed script that
restarts on every ``ask`` and reports no token usage, so it cannot drive a role graph, a budget or a
dashboard. :class:`OfflineModel` instead answers by *rules* a chapter registers and a reader can see
(``model.rules_frame()``), reports :class:`ag2.events.Usage` on every response, emits tool calls with
stable ids, and can simulate latency and provider faults at a seeded rate.

Example::

    model = OfflineModel(seed=7)
    model.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Paris"}))
    agent = ag2.Agent("weather", "Be brief.", config=model, tools=[get_weather])
    reply = await agent.ask("What's the weather in Paris?")

Token usage: prompt tokens are the system prompt, every conversational message as rendered for the
model (with its role label) and 3 per offered tool; completion tokens are the reply text and tool calls,
each counted by :func:`count_tokens`.

Determinism: a reply depends only on the seed, the system prompt, the conversation so far and the
tools offered — never on wall time or on how concurrent conversations interleave. Faults add one more
input, the attempt number for that exact conversation state, so a retried call can succeed.

Per-turn cost: an offline turn spends no time waiting, so AG2's own per-``ask`` work dominates it — mostly
a pydantic call model built for every stream subscription. The first offline client therefore installs
:func:`agentops._ag2.reuse_subscription_models` (one call model per subscriber function, reused; events are
delivered exactly as before), which makes an offline turn several times cheaper
(``benchmarks/offline_turn.py``).

Thread and asyncio safety: the counters and the call log on :class:`OfflineModel` are guarded by a
lock; one model may serve many agents and concurrent conversations.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ag2.config import LLMClient, ModelConfig
from ag2.events import (
    BaseEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextInput,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResultsEvent,
    Usage,
    is_conversational,
    render_for_prompt,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentops import _ag2, _identity  # noqa: F401  (_identity fails fast if another `agentops` shadows this one)
from agentops.errors import (
    ConfigError,
    MalformedOutputError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
)
from agentops.rules import (  # the rules live there; chapters import them from here
    DEFAULT_RULES,
    Prompt,
    Reply,
    Rule,
    ToolCall,
    ToolOutput,
    json_rule,
    rule,
    tool_rule,
)

__all__ = [
    "BACKENDS",
    "OFFLINE_MODEL",
    "OFFLINE_PROVIDER",
    "CallRecord",
    "Faults",
    "MalformedOutputError",
    "OfflineModel",
    "Prompt",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitError",
    "Reply",
    "Rule",
    "ServerError",
    "SlowModel",
    "ToolCall",
    "ToolOutput",
    "count_tokens",
    "json_rule",
    "model_config",
    "rule",
    "tool_rule",
]

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "offline-1"

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Count tokens the way the offline model does: each word and each punctuation mark is one."""
    return len(_TOKEN.findall(text)) if text else 0


# --------------------------------------------------------------------------------------------------
# Provider-shaped errors
# --------------------------------------------------------------------------------------------------


# Defined in agentops.errors (one tree); re-exported here where the offline model raises them.


# --------------------------------------------------------------------------------------------------
# Faults and latency
# --------------------------------------------------------------------------------------------------


class Faults(BaseModel):
    """Probabilities (per model call) of each simulated provider fault; they must sum to ≤ 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_limit: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)
    server_error: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    empty: float = Field(0.0, ge=0, le=1)
    retry_after_s: float = Field(1.0, ge=0, description="value of the retry-after header on 429s")

    @model_validator(mode="after")
    def _total_at_most_one(self) -> Faults:
        if self.total > 1 + 1e-9:
            raise ValueError(f"fault rates sum to {self.total:.3f}; they must sum to at most 1")
        return self

    @property
    def total(self) -> float:
        """Probability that a call fails or misbehaves in some way."""
        return self.rate_limit + self.timeout + self.server_error + self.malformed + self.empty

    def draw(self, u: float) -> str | None:
        """Map a uniform draw in [0, 1) to a fault name (or None for a healthy call)."""
        edge = 0.0
        for name in ("rate_limit", "timeout", "server_error", "malformed", "empty"):
            edge += getattr(self, name)
            if u < edge:
                return name
        return None


@dataclass(frozen=True)
class CallRecord:
    """One model call as the offline model saw it (for notebooks and tests)."""

    index: int
    conversation: str
    attempt: int
    rule: str | None
    fault: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    tool_calls: tuple[str, ...]


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# The config and its client
# --------------------------------------------------------------------------------------------------


class OfflineModel(ModelConfig):
    """A deterministic, rule-driven AG2 ``ModelConfig`` that never touches the network.

    Args:
        model: model name reported in usage, metrics and traces (priced by ``agentops.pricing``).
        seed: changes every random choice (faults, latency, rule randomness) deterministically.
        rules: rules tried before the defaults, in order; first match answers.
        latency_s: simulated latency per call; a ``(low, high)`` pair draws uniformly (seeded).
        sleep: really ``await asyncio.sleep(latency)``; with ``False`` latency is only recorded.
        faults: per-call fault probabilities (see :class:`Faults`).
        max_log: how many :class:`CallRecord` entries to keep.
        max_tokens: completion token limit, honoured like a real server: a longer reply is cut at
            the limit (text, or tool-call arguments mid-JSON) with finish reason ``"length"``.
    """

    def __init__(
        self,
        model: str = OFFLINE_MODEL,
        *,
        seed: int = 0,
        rules: Iterable[Rule] = (),
        latency_s: float | tuple[float, float] = 0.0,
        sleep: bool = True,
        faults: Faults | Mapping[str, float] | None = None,
        max_log: int = 10_000,
        max_tokens: int | None = None,
    ) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"seed must be an int, got {seed!r}")
        bad_limit = isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        if max_tokens is not None and bad_limit:
            raise ConfigError(f"max_tokens must be a positive int (or None for no limit), got {max_tokens!r}")
        self.max_tokens = max_tokens
        lo, hi = latency_s if isinstance(latency_s, tuple) else (latency_s, latency_s)
        if lo < 0 or hi < lo:
            raise ConfigError(f"latency_s must be ≥ 0 (or a (low, high) pair with low ≤ high), got {latency_s!r}")
        self._model = model
        self.seed = seed
        self.rules: list[Rule] = list(rules)
        self.latency_s = (float(lo), float(hi))
        self.sleep = sleep
        self.faults = faults if isinstance(faults, Faults) else Faults(**(faults or {}))
        self._lock = threading.Lock()
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._max_attempt_keys = 50_000
        self.calls = 0
        self.usage = Usage()
        self.log: deque[CallRecord] = deque(maxlen=max_log)

    # -- ModelConfig protocol ------------------------------------------------------------------
    @property
    def provider(self) -> str:
        return OFFLINE_PROVIDER

    @property
    def model(self) -> str:
        return self._model

    def copy(self, **overrides: Any) -> OfflineModel:
        """Without overrides, the same object (state is shared across turns); else a new model."""
        if not overrides:
            return self
        kwargs: dict[str, Any] = {
            "model": self._model,
            "seed": self.seed,
            "rules": self.rules,
            "latency_s": self.latency_s,
            "sleep": self.sleep,
            "faults": self.faults,
            "max_tokens": self.max_tokens,
        }
        unknown = set(overrides) - set(kwargs)
        if unknown:
            raise ConfigError(f"unknown OfflineModel option(s) {sorted(unknown)}; valid: {sorted(kwargs)}")
        kwargs.update(overrides)
        return OfflineModel(**kwargs)

    def create(self) -> LLMClient:
        _ag2.reuse_subscription_models()  # an offline turn is CPU only: skip AG2's per-ask model building
        return _OfflineClient(self)

    def __repr__(self) -> str:
        return (
            f"OfflineModel(model={self._model!r}, seed={self.seed}, rules={len(self.rules)}, "
            f"latency_s={self.latency_s}, faults={self.faults.total:g})"
        )

    # -- rules -----------------------------------------------------------------------------------
    def add_rule(self, new: Rule, *, first: bool = False) -> OfflineModel:
        """Register a rule (after existing ones, or before them with ``first=True``); returns self."""
        if any(r.name == new.name for r in self.rules):
            raise ConfigError(f"a rule named {new.name!r} is already registered; pick another name")
        if first:
            self.rules.insert(0, new)
        else:
            self.rules.append(new)
        return self

    def rules_frame(self) -> Any:
        """The rules in match order (chapter rules, then defaults) as a pandas DataFrame."""
        import pandas as pd

        rows = [{"order": i + 1, "rule": r.name, "when → what": r.description} for i, r in enumerate(self.all_rules)]
        return pd.DataFrame(rows).set_index("order")

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """Registered rules followed by the built-in defaults."""
        return (*self.rules, *DEFAULT_RULES)

    def calls_frame(self) -> Any:
        """The call log as a pandas DataFrame (one row per model call)."""
        import pandas as pd

        with self._lock:
            rows = [r.__dict__ for r in self.log]
        return pd.DataFrame(rows, columns=list(CallRecord.__dataclass_fields__))

    # -- internals used by the client ----------------------------------------------------------
    def _next_attempt(self, key: str) -> int:
        with self._lock:
            n = self._attempts.pop(key, 0) + 1
            self._attempts[key] = n
            if len(self._attempts) > self._max_attempt_keys:
                self._attempts.popitem(last=False)
            return n

    def _record(self, rec: CallRecord, usage: Usage) -> None:
        with self._lock:  # the index is assigned here so concurrent calls never share one
            self.log.append(dataclasses.replace(rec, index=self.calls))
            self.calls += 1
            self.usage = self.usage + usage


def _prompt_parts(messages: Sequence[BaseEvent]) -> tuple[str, tuple[str, ...], tuple[ToolOutput, ...]]:
    transcript = tuple(render_for_prompt(m) for m in messages if is_conversational(m))
    user = ""
    for m in reversed(messages):
        if isinstance(m, ModelRequest):
            user = " ".join(p.content for p in m.parts if isinstance(p, TextInput))
            break
    results: tuple[ToolOutput, ...] = ()
    last = next((m for m in reversed(messages) if is_conversational(m)), None)
    if isinstance(last, ToolResultsEvent):
        outs = []
        for r in last.results:
            result = getattr(r, "result", None)
            parts = getattr(result, "parts", None) or []
            text = " ".join(
                getattr(part, "content", None)
                if isinstance(getattr(part, "content", None), str)
                else json.dumps(getattr(part, "data", None), sort_keys=True, default=str)
                for part in parts
            )
            if not parts and hasattr(r, "error"):
                text = f"error: {r.error}"
            outs.append(ToolOutput(getattr(r, "name", "?"), text, getattr(r, "parent_id", "") or ""))
        results = tuple(outs)
    return user, transcript, results


def _cut_tokens(text: str, n: int) -> str:
    """The prefix of ``text`` holding its first ``n`` tokens (as :func:`count_tokens` counts them)."""
    if n <= 0:
        return ""
    m = list(_TOKEN.finditer(text))
    return text if len(m) <= n else text[: m[n - 1].end()]


def _truncate(text: str | None, calls: list[ToolCallEvent], limit: int) -> tuple[str | None, list[ToolCallEvent], bool]:
    """Cut a reply at ``limit`` completion tokens, as a server does: text first, then call arguments."""
    used = count_tokens(text or "")
    if used > limit:
        return _cut_tokens(text or "", limit), [], True
    out, cut = [], False
    for c in calls:
        budget = limit - used
        need = count_tokens(c.name + c.arguments)
        if need <= budget:
            out.append(c)
            used += need
            continue
        cut = True
        if budget > count_tokens(c.name):
            args = _cut_tokens(c.arguments, budget - count_tokens(c.name))
            out.append(ToolCallEvent(c.name, id=c.id, arguments=args))
        break
    return text, out, cut


class _OfflineClient(LLMClient):
    """Per-ask client; all state lives on the :class:`OfflineModel` it was created from."""

    def __init__(self, config: OfflineModel) -> None:
        self.config = config

    async def __call__(
        self,
        messages: Sequence[BaseEvent],
        context: Any,
        *,
        tools: Iterable[Any] = (),
        response_schema: Any = None,
        serializer: Any = None,
    ) -> ModelResponse:
        cfg = self.config
        system = "\n".join(getattr(context, "prompt", None) or [])
        tool_names = tuple(sorted(t.function.name for t in tools if hasattr(t, "function")))
        user, transcript, results = _prompt_parts(messages)
        schema = getattr(response_schema, "json_schema", None) if response_schema is not None else None
        state = _digest(str(cfg.seed), cfg.model, system, *transcript, "|".join(tool_names))
        attempt = cfg._next_attempt(state)
        rng = random.Random(int(state[:16], 16))
        prompt = Prompt(
            model=cfg.model,
            system=system,
            user=user,
            transcript=transcript,
            tools=tool_names,
            tool_results=results,
            schema=schema,
            call_index=sum(1 for m in messages if isinstance(m, ModelResponse)),
            rng=rng,
        )
        prompt_tokens = count_tokens(system) + sum(count_tokens(t) for t in transcript) + 3 * len(tool_names)

        fault_rng = random.Random(int(_digest(state, "fault", str(attempt))[:16], 16))
        fault = cfg.faults.draw(fault_rng.random()) if cfg.faults.total else None
        lo, hi = cfg.latency_s
        latency = lo if hi == lo else fault_rng.uniform(lo, hi)
        if latency and cfg.sleep:
            await asyncio.sleep(latency)

        request_id = f"req_{_digest(state, str(attempt))[:12]}"
        if fault in ("rate_limit", "timeout", "server_error"):
            cfg._record(CallRecord(-1, state[:8], attempt, None, fault, 0, 0, latency, ()), Usage())
            if fault == "rate_limit":
                raise RateLimitError(
                    f"Rate limit reached for {cfg.model} (simulated): retry after {cfg.faults.retry_after_s:g}s",
                    request_id=request_id,
                    retry_after=cfg.faults.retry_after_s,
                )
            if fault == "timeout":
                raise ProviderTimeout(f"Request to {cfg.model} timed out (simulated)", request_id=request_id)
            raise ServerError(f"The server is overloaded (simulated 503 for {cfg.model})", request_id=request_id)

        chosen = next(r for r in cfg.all_rules if r.when(prompt))
        reply = chosen.respond(prompt)
        if isinstance(reply, str):
            reply = Reply(text=reply)
        calls = [
            ToolCallEvent(
                tc.name,
                id=f"call_{state[:10]}_{i}",
                arguments=json.dumps(dict(tc.arguments), sort_keys=True),
            )
            for i, tc in enumerate(reply.tool_calls)
        ]
        text = reply.text
        finish = "tool_calls" if calls else "stop"
        if fault == "malformed":
            finish = "length"
            if calls:
                calls = [
                    ToolCallEvent(c.name, id=c.id, arguments=c.arguments[: max(1, len(c.arguments) // 2)])
                    for c in calls
                ]
            text = (text or "")[: max(1, len(text or "") // 2)]
        elif fault == "empty":
            text, calls = None, []
        if cfg.max_tokens is not None:
            text, calls, cut = _truncate(text, calls, cfg.max_tokens)
            finish = "length" if cut else finish
        completion_tokens = count_tokens(text or "") + sum(count_tokens(c.name + c.arguments) for c in calls)
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        cfg._record(
            CallRecord(
                -1,
                state[:8],
                attempt,
                chosen.name,
                fault,
                prompt_tokens,
                completion_tokens,
                latency,
                tuple(c.name for c in calls),
            ),
            usage,
        )
        message = ModelMessage(text) if text is not None else None
        if message is not None and hasattr(context, "send"):
            await context.send(message)
        return ModelResponse(
            message,
            tool_calls=ToolCallsEvent(calls),
            usage=usage,
            model=cfg.model,
            provider=OFFLINE_PROVIDER,
            finish_reason=finish,
        )


class SlowModel(ModelConfig):
    """Test double: a model whose calls are held back, for testing time limits without real sleeps.

    The first ``first`` calls (every call when ``None``) wait ``delay_s`` seconds — forever when
    ``None``, as a server that never answers — and are then answered by ``inner`` (the offline model by
    default). ``calls`` counts every call, held back or not. Pair it with a simulated clock
    (``agentops.testing.run_simulated``, or looptime under pytest) so the waits cost no real time.

    Raises:
        ConfigError: ``delay_s`` or ``first`` is negative.
    """

    def __init__(self, inner: ModelConfig | None = None, *, delay_s: float | None = None, first: int | None = None):
        if delay_s is not None and not delay_s >= 0:
            raise ConfigError(f"delay_s must be >= 0 seconds, or None to never answer; got {delay_s!r}")
        if first is not None and (isinstance(first, bool) or not isinstance(first, int) or first < 0):
            raise ConfigError(f"first must be an int >= 0, or None to hold back every call; got {first!r}")
        self.inner = inner if inner is not None else OfflineModel(seed=0)
        self.delay_s, self.remaining, self.calls = delay_s, first, 0

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def model(self) -> str:
        return self.inner.model

    def copy(self, **kwargs: Any) -> SlowModel:
        return self  # one counter for every agent the config is given to

    def create(self) -> LLMClient:
        return _SlowClient(self)


class _SlowClient(LLMClient):
    def __init__(self, config: SlowModel) -> None:
        self.config = config

    async def __call__(self, messages: Any, context: Any, **kwargs: Any) -> Any:
        c = self.config
        c.calls += 1
        if c.remaining is None or c.remaining > 0:
            if c.remaining is not None:
                c.remaining -= 1
            await (asyncio.Event().wait() if c.delay_s is None else asyncio.sleep(c.delay_s))
        return await c.inner.create()(messages, context, **kwargs)


# --------------------------------------------------------------------------------------------------
# The factory lives in agentops.backends (real providers, replay); re-exported here for chapters.
# --------------------------------------------------------------------------------------------------

from agentops.backends import BACKENDS, model_config  # noqa: E402
