"""A fallback chain as an AG2 ``ModelConfig``: primary → secondary models → cached answer → canned reply.

:class:`FallbackModel` wraps the configs of several models (any AG2 ``ModelConfig``: OpenAI-compatible,
offline, another provider) and is itself one, so an agent uses it like any model. For each call it
tries the models in order; each step is

* **bulkheaded** — at most ``bulkhead`` calls in flight per dependency (:class:`Bulkhead`), so one slow
  provider cannot hold every worker; a call that finds no slot within ``bulkhead_wait_s`` moves on;
* **circuit-broken** — a dependency whose circuit is open is skipped at once (:mod:`.breaker`);
* **retried** by a :class:`~agentops.resilience.RetryPolicy` (backoff, ``Retry-After``, deadline,
  output validation, held output).

When every model failed, a **cached answer** (a pluggable lookup; :class:`AnswerCache` remembers the
last good answer per request — never one written after a tool round, which reports actions of its own
request) and finally a **canned reply that says it is degraded** are served —
after a tool round, the canned reply reports the tools' results verbatim, so work already done is not
hidden. Each step is reported to listeners (``resilience.fallback``) and counted in
:attr:`FallbackModel.served`. What a failed step's model served before it was refused (an answer cut
at the token limit, say) is booked with the answer returned, priced at that model
(:func:`agentops.usage.served_parts`), or carried by the error when the chain gives up. A degraded
answer is marked in the reply (:func:`is_degraded`, :func:`served_by` read the marks:
``metadata["agentops.served_by"]`` and ``metadata["agentops.degraded"]`` on the message, ``provider ==
"agentops-fallback"``) and in metrics. Refusals and configuration errors are never "fallen back" from:
they propagate.

This is the wrapper shape of pydantic-ai's ``FallbackModel``, on AG2's ``ModelConfig``/``LLMClient``
seam. Bulkhead and cache are small enough not to need a library (an ``asyncio.Semaphore`` with a wait
bound, an ``OrderedDict`` LRU).

Example::

    model = FallbackModel(primary, secondary, retry=RetryPolicy(max_attempts=4),
                          breakers=Breakers(), bulkhead=8, cache=AnswerCache())
    reply = await ag2.Agent("support", "...", config=model).ask("Where is my order?")
    served_by(reply), is_degraded(reply)      # ('openai/gpt-4o-mini', False)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from ag2.config import LLMClient, ModelConfig
from ag2.events import (
    BaseEvent,
    ModelMessage,
    ModelResponse,
    ToolResultsEvent,
    Usage,
    is_conversational,
)

from agentops import _identity  # noqa: F401
from agentops._wrapper import LazyClients, last_request_text, no_overrides
from agentops.errors import AgentOpsError, ConfigError, ProviderError
from agentops.listeners import FALLBACK, Listener, checked_listeners, notify
from agentops.resilience.breaker import Breakers, CircuitOpen, dependency_name
from agentops.resilience.retries import RetryPolicy, as_provider_error
from agentops.resilience.validation import check_output
from agentops.usage import combine_served, served_response

__all__ = [
    "DEGRADED_ANSWER",
    "AnswerCache",
    "Bulkhead",
    "BulkheadFull",
    "FallbackExhausted",
    "FallbackModel",
    "is_degraded",
    "served_by",
]

DEGRADED_PROVIDER = "agentops-fallback"
DEGRADED_ANSWER = (
    "Sorry — I cannot reach a language model right now, so this is an automatic reply and your request "
    "was not answered. Please try again in a few minutes."
)
CACHED_PREFIX = "(Cached answer: the assistant could not reach a model just now, so this may be out of date.) "


class BulkheadFull(ProviderError):
    """Every slot of a dependency's bulkhead stayed busy for the allowed wait."""

    retryable = False
    error_type = "bulkhead_full"


class FallbackExhausted(ProviderError):
    """Every model of a fallback chain failed and no degraded answer was configured."""

    error_type = "fallback_exhausted"


class Bulkhead:
    """At most ``limit`` calls in flight to one dependency; a caller waits at most ``max_wait_s`` for a slot.

    For one asyncio event loop (the semaphore binds to the loop that first waits on it); the counters
    are thread-safe.
    """

    def __init__(self, name: str, limit: int, max_wait_s: float = 0.0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(
                f"bulkhead {name!r}: limit must be a whole number ≥ 1 (calls in flight), got {limit!r}; "
                "use None for no bulkhead"
            )
        if isinstance(max_wait_s, bool) or not isinstance(max_wait_s, (int, float)) or not 0 <= max_wait_s < 1e9:
            raise ConfigError(f"bulkhead {name!r}: max_wait_s must be a number of seconds ≥ 0, got {max_wait_s!r}")
        self.name, self.limit, self.max_wait_s = name, limit, max_wait_s
        self._sem = asyncio.Semaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.rejected = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``; raise :class:`BulkheadFull` if none frees up."""
        try:
            if self.max_wait_s:
                await asyncio.wait_for(self._sem.acquire(), self.max_wait_s)
            elif self._sem.locked():
                raise BulkheadFull(self.name)
            else:
                await self._sem.acquire()
        except (asyncio.TimeoutError, BulkheadFull):
            with self._lock:
                self.rejected += 1
            raise BulkheadFull(
                f"bulkhead {self.name!r}: all {self.limit} slots busy for {self.max_wait_s:g} s; "
                "raise the limit or add a fallback model"
            ) from None
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
            self._sem.release()


class AnswerCache:
    """The last good answer per request text, least recently used evicted first; thread-safe.

    The default cached-answer step of a :class:`FallbackModel`; any object with ``lookup(request) ->
    str | None`` (and optionally ``store(request, answer)``) or a plain function can take its place.
    """

    def __init__(self, max_entries: int = 1_000) -> None:
        if max_entries < 1:
            raise ConfigError(f"AnswerCache max_entries must be ≥ 1, got {max_entries}")
        self.max_entries = max_entries
        self._data: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, request: str) -> str | None:
        """The stored answer to ``request``, or ``None``."""
        with self._lock:
            if request in self._data:
                self._data.move_to_end(request)
                return self._data[request]
            return None

    def store(self, request: str, answer: str) -> None:
        """Remember ``answer`` for ``request``."""
        with self._lock:
            self._data[request] = answer
            self._data.move_to_end(request)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def _metadata(x: Any) -> dict[str, Any]:
    response = getattr(x, "response", x)
    message = getattr(response, "message", None)
    return dict(getattr(message, "metadata", None) or {})


def served_by(reply: Any) -> str | None:
    """Which step answered: a dependency name (``provider/model``), ``"cache"`` or ``"canned"``."""
    return _metadata(reply).get("agentops.served_by")


def is_degraded(reply: Any) -> bool:
    """True when the answer (an ``AgentReply`` or ``ModelResponse``) is a cached or canned fallback."""
    return bool(_metadata(reply).get("agentops.degraded"))


def _tool_results_text(messages: Sequence[BaseEvent]) -> str:
    last = next((m for m in reversed(messages) if is_conversational(m)), None)
    if not isinstance(last, ToolResultsEvent):
        return ""
    lines = []
    for r in last.results:
        parts = getattr(getattr(r, "result", None), "parts", None) or []
        text = " ".join(str(getattr(p, "content", getattr(p, "data", ""))) for p in parts)
        lines.append(f"{getattr(r, 'name', 'tool')}: {text}")
    return " Results of the actions already taken: " + "; ".join(lines)


def _degraded(text: str, step: str) -> ModelResponse:
    meta = {"agentops.served_by": step, "agentops.degraded": True}
    return ModelResponse(
        ModelMessage(text, metadata=meta), usage=Usage(), model=step, provider=DEGRADED_PROVIDER, finish_reason="stop"
    )


def _check_chain(models: Sequence[Any], retry: Any, breakers: Any, cache: Any) -> None:
    """One ConfigError naming the argument and the fix, at construction rather than mid-outage."""
    if not models:
        raise ConfigError("FallbackModel needs at least one model config (the primary)")
    bad = next((m for m in models if not callable(getattr(m, "create", None))), None)  # ModelConfig: a Protocol
    if bad is not None:
        raise ConfigError(
            f"FallbackModel takes AG2 model configs (e.g. model_config('openai', 'gpt-4o-mini')), got "
            f"{type(bad).__name__}: {bad!r}"[:300]
        )
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigError(f"FallbackModel: retry must be a RetryPolicy or None, got {type(retry).__name__}")
    if breakers is not None and not isinstance(breakers, Breakers):
        raise ConfigError(f"FallbackModel: breakers must be a Breakers or None, got {type(breakers).__name__}")
    if cache is not None and not (callable(cache) or callable(getattr(cache, "lookup", None))):
        raise ConfigError(
            "FallbackModel: cache must be an AnswerCache, an object with lookup(request), or a function "
            f"request -> answer | None; got {type(cache).__name__}"
        )


class FallbackModel(ModelConfig):
    """An AG2 ``ModelConfig`` trying ``models`` in order, then a cached answer, then a canned reply.

    Args:
        *models: AG2 model configs, primary first.
        retry: the retry policy of each step (``None``: one attempt per model).
        breakers: circuit breakers by dependency (``None``: no breaker).
        bulkhead: calls in flight per dependency (``None``: unlimited); ``bulkhead_wait_s`` bounds the wait.
        cache: an :class:`AnswerCache`, any object with ``lookup``/``store``, or a function
            ``request -> answer | None``; ``None`` skips the cached step.
        degraded: the canned reply (``None``: raise :class:`FallbackExhausted` instead).
        listeners: receive ``resilience.fallback`` events.
        clock: time for event stamps (match the breakers' clock).
    """

    def __init__(
        self,
        *models: ModelConfig,
        retry: RetryPolicy | None = None,
        breakers: Breakers | None = None,
        bulkhead: int | None = None,
        bulkhead_wait_s: float = 0.0,
        cache: Any = None,
        degraded: str | None = DEGRADED_ANSWER,
        listeners: Iterable[Listener] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_chain(models, retry, breakers, cache)
        names: list[str] = []
        for m in models:  # the same model twice (two regions, two keys) gets "#2", "#3"...
            name = dependency_name(m)
            names.append(name if name not in names else f"{name}#{sum(n.split('#')[0] == name for n in names) + 1}")
        self.models, self.names = tuple(models), names
        self.retry, self.breakers = retry, breakers
        for name in names if breakers is not None else ():
            breakers.get(name)  # every circuit is reported (closed) from the start
        self.bulkheads = {n: Bulkhead(n, bulkhead, bulkhead_wait_s) for n in names} if bulkhead is not None else {}
        self.cache, self.degraded = cache, degraded
        self.listeners, self.clock = checked_listeners(listeners, "FallbackModel"), clock
        self.served: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def provider(self) -> str:
        return str(getattr(self.models[0].provider, "value", self.models[0].provider))

    @property
    def model(self) -> str:
        return self.models[0].model

    def copy(self, **overrides: Any) -> FallbackModel:
        """The same chain (state is shared across turns); overrides are not supported."""
        no_overrides("FallbackModel", overrides, "build a new FallbackModel instead")
        return self

    def create(self) -> LLMClient:
        return _FallbackClient(self)

    def steps(self) -> list[str]:
        """The chain in order, as reported in ``served_by``."""
        return [*self.names, *(["cache"] if self.cache is not None else []), *(["canned"] if self.degraded else [])]

    def __repr__(self) -> str:
        return f"FallbackModel({' → '.join(self.steps())})"

    # -- internals used by the client ----------------------------------------------------------
    def _event(self, step: int, name: str, outcome: str, error: str = "") -> None:
        with self._lock:
            if outcome == "served":
                self.served[name] += 1
        payload = {"step": step, "model": name, "outcome": outcome, "error": error, "at": self.clock()}
        notify(self.listeners, FALLBACK, payload)

    def _lookup(self, request: str) -> str | None:
        if self.cache is None or not request:
            return None
        lookup = getattr(self.cache, "lookup", self.cache)
        return lookup(request)

    def _store(self, request: str, response: ModelResponse) -> None:
        store = getattr(self.cache, "store", None)
        text = response.message.content if response.message is not None else None
        if store is not None and request and text and not response.tool_calls.calls:
            store(request, text)


def _carry(exc: BaseException, served: list[ModelResponse]) -> None:
    """Put what the chain's models served on ``exc`` (see :func:`agentops.usage.served_response`)."""
    if not served:
        return
    own = served_response(exc)
    with contextlib.suppress(AttributeError):
        exc.served = combine_served(served, own) if own is not None else combine_served(served[:-1], served[-1])  # type: ignore[attr-defined]


class _FallbackClient(LazyClients):
    """Per-ask client: creates each model's client on first use."""

    def __init__(self, chain: FallbackModel) -> None:
        super().__init__(chain.models)
        self.chain = chain

    async def __call__(
        self,
        messages: Sequence[BaseEvent],
        context: Any,
        *,
        tools: Iterable[Any] = (),
        response_schema: Any = None,
        serializer: Any = None,
    ) -> ModelResponse:
        chain, tools = self.chain, list(tools)
        request = last_request_text(messages)
        errors: list[str] = []
        served: list[ModelResponse] = []  # what failed steps' models served (and billed): booked with the answer
        for i, name in enumerate(chain.names):
            step = self._step(i, name, tools, response_schema, serializer)
            try:
                response = await (
                    chain.retry.run(step, messages, context, label=name) if chain.retry else step(messages, context)
                )
            except AgentOpsError as exc:
                if not isinstance(exc, ProviderError):
                    _carry(exc, served)
                    raise  # a refusal or a configuration error: not the provider's fault, never fallen back from
                answered = served_response(exc)
                if answered is not None:
                    served.append(answered)
                errors.append(f"{name}: {type(exc).__name__}")
                outcome = {CircuitOpen: "circuit_open", BulkheadFull: "bulkhead_full"}.get(type(exc), "failed")
                chain._event(i, name, outcome, type(exc).__name__)
                continue
            meta = {**response.metadata, "agentops.served_by": name, "agentops.step": i}
            if response.message is not None:
                response.message.metadata = meta
            chain._event(i, name, "served")
            if not _tool_results_text(messages):  # an answer about actions taken is not a reusable answer
                chain._store(request, response)
            return combine_served(served, response)
        try:
            return combine_served(served, await self._last_resort(messages, context, request, errors))
        except BaseException as exc:
            _carry(exc, served)
            raise

    def _step(self, i: int, name: str, tools: list[Any], schema: Any, serializer: Any) -> Any:
        chain = self.chain
        settings = chain.retry.settings if chain.retry else None
        output_schema = chain.retry.output_schema if chain.retry else None

        async def attempt(ev: Any, ctx: Any) -> ModelResponse:
            try:
                raw = await self._client(i)(ev, ctx, tools=tools, response_schema=schema, serializer=serializer)
            except Exception as exc:
                converted = as_provider_error(exc)
                if converted is exc:
                    raise
                raise converted from exc
            return check_output(
                raw, require_finish_reason=bool(settings and settings.require_finish_reason), schema=output_schema
            )

        async def guarded(ev: Any, ctx: Any) -> ModelResponse:
            bulkhead = chain.bulkheads.get(name)
            async with bulkhead.slot() if bulkhead else contextlib.nullcontext():
                if chain.breakers is None:
                    return await attempt(ev, ctx)
                breaker = chain.breakers.get(name)
                try:
                    return await breaker.call(lambda: attempt(ev, ctx))
                except ProviderError as exc:
                    if exc.retryable and breaker.state == "open":
                        exc.retryable = False  # this failure opened the circuit: waiting to retry it is pointless
                    raise

        return guarded

    async def _last_resort(
        self, messages: Sequence[BaseEvent], context: Any, request: str, errors: list[str]
    ) -> ModelResponse:
        chain, n = self.chain, len(self.chain.names)
        response = None
        cached = chain._lookup(request)
        if cached is not None:
            chain._event(n, "cache", "served")
            response = _degraded(CACHED_PREFIX + cached, "cache")
        elif chain.cache is not None:
            chain._event(n, "cache", "miss")
        if response is None and chain.degraded is not None:
            chain._event(n + 1, "canned", "served")
            response = _degraded(chain.degraded + _tool_results_text(messages), "canned")
        if response is not None:
            if hasattr(context, "send"):
                await context.send(response.message)  # live subscribers see it, as they see a model's answer
            return response
        raise FallbackExhausted(
            f"every model failed ({'; '.join(errors)}); add a fallback model, a cache or a degraded answer",
            retryable=False,
        )
