"""Retries that honour the provider: backoff with full jitter, ``Retry-After``, a deadline, output checks.

AG2's ``RetryMiddleware`` already knows the one thing that is hard to get right: an attempt that
published anything to the stream (streamed chunks, a message) must not be repeated, because every live
consumer would see both attempts' output. It retries immediately, on exception types, with no deadline.
:class:`RetryPolicy` composes with it rather than re-implementing it — AG2's middleware drives the loop
and the publish check, and the inner call this module hands it adds what AG2 lacks:

* only errors :func:`agentops.errors.is_retryable` marks are retried (a refusal or a bad request never);
  foreign errors (the openai SDK's, httpx's, a body that is not JSON) become the package's
  :class:`~agentops.errors.ProviderError` family first (:func:`as_provider_error`);
* waits: the provider's ``Retry-After`` when it sent one (capped: asking for longer fails the call),
  else exponential backoff with full jitter — a uniform draw below tenacity's ``wait_exponential``
  window, from a seeded generator so a drill is reproducible;
* a total deadline per model call, across attempts and waits;
* output validation as a fault (:func:`~agentops.resilience.validation.check_output`): an empty answer,
  one cut at the token limit, malformed structured output → retried, then a clear failure;
* **held output**: what the client publishes during an attempt (AG2's OpenAI client sends the message
  to the stream *before* returning) is held back until the answer validates, then released. A bad
  answer therefore leaves no trace and AG2 lets it be retried; with ``buffer_output=False`` chunks
  stream live and an attempt that published cannot be retried (AG2 refuses; the fallback chain takes
  over);
* every retry reported to listeners (``resilience.retry``) and counted on the policy.

The same policy retries tools that declare themselves idempotent (:meth:`RetryPolicy.for_tool`, a
tool-level AG2 hook); a tool without it is never re-run by a retry.

Example::

    policy = RetryPolicy(max_attempts=4, deadline_s=20)
    agent = ag2.Agent("a", "Be brief.", config=config, middleware=[policy])

    @ag2.tool(middleware=[policy.for_tool()])
    async def lookup_order(order_id: str) -> str: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ag2.events import BaseEvent, ModelMessage, ModelMessageChunk, ModelResponse, ToolErrorEvent
from ag2.middleware import BaseMiddleware, RetryMiddleware
from ag2.middleware.describe import MiddlewareDescription
from ag2.utils import MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY
from pydantic import Field
from tenacity import RetryCallState, wait_exponential

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import (
    AgentOpsError,
    ConfigError,
    MalformedOutputError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    is_retryable,
)
from agentops.listeners import RETRY, Listener, checked_listeners, notify
from agentops.resilience.validation import check_output
from agentops.usage import combine_served, served_response

__all__ = ["RETRY", "AttemptTimeout", "RetryPolicy", "RetrySettings", "as_provider_error", "retry_after_of"]


_SLOW_FIX = "the model server answered too slowly: raise the retry policy's deadline_s or use a faster server"


class AttemptTimeout(ProviderTimeout):
    """One attempt ran past the caller's ``attempt_timeout_s`` (not the provider's own timeout)."""


class RetrySettings(Spec):
    """How hard to try one model call.

    Args:
        max_attempts: attempts in total (1 = no retry).
        base_s: first backoff window; window ``n`` is ``base_s * 2**(n-1)``, capped at ``max_backoff_s``.
        max_backoff_s: largest backoff window.
        retry_after_cap_s: largest ``Retry-After`` honoured (a provider asking for longer fails the call).
        deadline_s: total time for the call, attempts and waits included.
        attempt_timeout_s: time limit of one attempt (``None``: only the deadline); an attempt that
            exceeds it raises :class:`AttemptTimeout`, which is retried like a provider timeout.
        require_finish_reason: treat a response with no finish reason (a cut stream) as truncated.
        allow_truncated: accept an answer cut at the token limit (for callers that cap replies on purpose).
        buffer_output: hold what the client publishes until the answer validates (see the module doc).
    """

    max_attempts: int = Field(4, ge=1, le=20)
    base_s: float = Field(0.1, ge=0, le=60)
    max_backoff_s: float = Field(5.0, ge=0, le=600)
    retry_after_cap_s: float = Field(10.0, ge=0, le=3600)
    deadline_s: float = Field(60.0, gt=0, le=3600)
    attempt_timeout_s: float | None = Field(None, gt=0, le=3600)
    require_finish_reason: bool = False
    allow_truncated: bool = False
    buffer_output: bool = True


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait: our ``ProviderError.retry_after`` or a ``Retry-After`` header."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP-date or garbage: fall back to backoff
    return seconds if seconds is not None and seconds >= 0 else None


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


_EPSILON_S = 1e-3  # a deadline this close counts as passed (clock granularity)
_TIMEOUT_NAMES = frozenset({"APITimeoutError", "ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout"})


def as_provider_error(exc: BaseException) -> BaseException:
    """The package's error for a foreign provider failure (the original kept as ``__cause__``).

    ``AgentOpsError`` and unknown errors (bugs, not provider failures) are returned unchanged.

    >>> type(as_provider_error(json.JSONDecodeError("Expecting value", "{", 1))).__name__
    'MalformedOutputError'
    """
    if isinstance(exc, AgentOpsError):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    kwargs: dict[str, Any] = {"request_id": getattr(exc, "request_id", None)}
    status, retry_after = _status_of(exc), retry_after_of(exc)
    if isinstance(exc, json.JSONDecodeError):
        new: ProviderError = MalformedOutputError(f"the provider's response is not JSON: {exc}", **kwargs)
    elif status == 429:
        new = RateLimitError(message, retry_after=retry_after, **kwargs)
    elif status is not None and status >= 500:
        new = ServerError(message, status_code=status, retry_after=retry_after, **kwargs)
    elif status is not None:
        new = ProviderError(message, status_code=status, retryable=is_retryable(exc), **kwargs)
    elif isinstance(exc, TimeoutError) or type(exc).__name__ in _TIMEOUT_NAMES:
        new = ProviderTimeout(message, **kwargs)
    elif is_retryable(exc):  # a dropped or refused connection
        new = ProviderError(message, retryable=True, **kwargs)
    else:
        return exc
    new.__cause__ = exc
    return new


class _RetryNow(Exception):
    """Handed to AG2's RetryMiddleware to ask for one more attempt; never escapes this module."""


class _HeldStream:
    """A stream that keeps what is sent to it; everything else is the real stream's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.held: list[BaseEvent] = []

    async def send(self, event: BaseEvent, context: Any) -> None:
        self.held.append(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _hold(context: Any) -> tuple[Any, _HeldStream | None]:
    if not dataclasses.is_dataclass(context) or not hasattr(context, "stream"):
        return context, None  # not an AG2 conversation context: nothing to hold
    held = _HeldStream(context.stream)
    return dataclasses.replace(context, stream=held), held


async def _release(held: _HeldStream, context: Any, response: ModelResponse) -> None:
    repaired = bool(response.metadata.get("agentops.repaired"))
    for event in held.held:
        if repaired and isinstance(event, (ModelMessage, ModelMessageChunk)):
            continue  # the repaired answer replaces what the model streamed
        await context.send(event)
    if repaired and response.message is not None:
        await context.send(response.message)


def _model_label(context: Any) -> str:
    cfg = (getattr(context, "dependencies", None) or {}).get(MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY)
    try:
        return str(cfg.model) if cfg is not None else ""
    except (AttributeError, NotImplementedError):
        return ""


def _carry_served(exc: BaseException, served: list[ModelResponse]) -> None:
    """Put what ``served`` holds on ``exc`` as ``exc.served`` (see :func:`served_response`)."""
    if not served:
        return
    with contextlib.suppress(AttributeError):  # an exception type that takes no attributes cannot carry it
        exc.served = combine_served(served[:-1], served[-1])  # type: ignore[attr-defined]


def _check_hooks(sleep: Any, clock: Any, output_schema: Any) -> None:
    """Refuse what would only fail at the first retry, deep inside a turn."""
    if not callable(sleep):
        raise ConfigError(
            f"RetryPolicy: sleep must be an async callable like asyncio.sleep, got {type(sleep).__name__}"
        )
    if not callable(clock):
        raise ConfigError(f"RetryPolicy: clock must be a callable returning seconds, got {type(clock).__name__}")
    if output_schema is not None and not (isinstance(output_schema, type) and hasattr(output_schema, "model_validate")):
        raise ConfigError(
            f"RetryPolicy: output_schema must be a pydantic model class (class Answer(BaseModel): ...), "
            f"got {output_schema!r}"[:300]
        )


class RetryPolicy:
    """AG2 middleware factory: call-level retries composed with AG2's ``RetryMiddleware``.

    Safe to share across agents, threads and tasks: per-call state lives in :meth:`run`, the counters
    are guarded by a lock. ``sleep`` and ``clock`` are injectable (simulated time in tests and drills).

    Args:
        settings: a :class:`RetrySettings` (keyword ``overrides`` replace its fields).
        output_schema: a pydantic model the answer's JSON must validate against (repaired when possible).
        listeners: receive ``resilience.retry`` events.
        seed: seeds the jitter.
    """

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        output_schema: type[Any] | None = None,
        listeners: Iterable[Listener] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        **overrides: Any,
    ) -> None:
        base = settings or RetrySettings()
        self.settings = RetrySettings(**{**base.model_dump(), **overrides}) if overrides else base
        _check_hooks(sleep, clock, output_schema)
        self.output_schema = output_schema
        self.listeners = checked_listeners(listeners, "RetryPolicy")
        self.sleep, self.clock = sleep, clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.attempts = 0
        self.retries: Counter[str] = Counter()
        self.gave_up = 0
        self.repaired = 0
        self._window = wait_exponential(multiplier=self.settings.base_s, max=self.settings.max_backoff_s)

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _RetryTurn(event, context, policy=self)

    def describe(self) -> MiddlewareDescription:
        """AG2's introspection: the settings (no secrets here)."""
        return MiddlewareDescription(kind=type(self).__qualname__, config=self.settings.model_dump())

    @property
    def total_retries(self) -> int:
        """Retries made so far (model calls and idempotent tools)."""
        with self._lock:
            return sum(self.retries.values())

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if retry_after is not None:
            return min(retry_after, self.settings.retry_after_cap_s)
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        with self._lock:
            u = self._rng.random()
        return u * self._window(state)  # full jitter: uniform in [0, window)

    def _count(self, kind: str | None = None, *, gave_up: bool = False, repaired: bool = False) -> None:
        with self._lock:
            self.attempts += 1
            if kind:
                self.retries[kind] += 1
            self.gave_up += gave_up
            self.repaired += repaired

    async def run(self, call_next: Any, events: Any, context: Any, *, label: str = "") -> ModelResponse:
        """One model call with this policy: ``call_next(events, context)`` is one attempt.

        Usage is never lost: an attempt the provider served and that then failed (an answer cut at the
        token limit, empty, with unusable tool arguments) was billed, so its usage is added to the
        answer returned (kept as a part priced at its own model when another model answered it, see
        :func:`agentops.usage.served_parts`), or — when the policy gives up or is cancelled — carried by
        the error as ``exc.served`` (:func:`agentops.usage.served_response`). Meters and budgets outside the policy
        therefore book every served attempt once; attempts that served nothing add nothing.
        """
        s, started, attempt = self.settings, self.clock(), 0
        label = label or _model_label(context)
        served: list[ModelResponse] = []  # what the provider served for attempts that then failed

        async def one_attempt(ev: Any, ctx: Any) -> ModelResponse:
            nonlocal attempt
            attempt += 1
            held_ctx, held = _hold(ctx) if s.buffer_output else (ctx, None)
            try:
                response = await self._attempt(call_next, ev, held_ctx, attempt, started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = as_provider_error(exc)
                answered = served_response(error) or served_response(exc)
                if answered is not None:
                    served.append(answered)
                await self._after_failure(error, attempt, started, label)
                raise AssertionError("unreachable") from None  # _after_failure always raises
            self._count(repaired=bool(response.metadata.get("agentops.repaired")))
            if held is not None:
                await _release(held, ctx, response)
            return response

        try:
            if s.max_attempts == 1:
                response = await one_attempt(events, context)
            else:
                ag2_retry = RetryMiddleware(max_retries=s.max_attempts - 1, retry_on=(_RetryNow,))(None, context)
                try:
                    response = await ag2_retry.on_llm_call(one_attempt, events, context)
                except _RetryNow as wrapped:  # AG2 refused to repeat an attempt that published output
                    raise wrapped.__cause__ from None  # type: ignore[misc]
        except BaseException as exc:
            _carry_served(exc, served)
            raise
        return combine_served(served, response)  # the same model's attempts summed, another's kept as parts

    async def _attempt(self, call_next: Any, ev: Any, ctx: Any, attempt: int, started: float) -> ModelResponse:
        s = self.settings
        remaining = s.deadline_s - (self.clock() - started)
        if remaining <= 0:
            raise ProviderTimeout(
                f"the call's deadline of {s.deadline_s:g} s passed before attempt {attempt}; {_SLOW_FIX}"
            )
        own_limit = s.attempt_timeout_s is not None and s.attempt_timeout_s <= remaining
        try:
            response = await asyncio.wait_for(call_next(ev, ctx), s.attempt_timeout_s if own_limit else remaining)
        except asyncio.TimeoutError as exc:  # the builtin TimeoutError from Python 3.11 on
            if not isinstance(exc.__cause__, asyncio.CancelledError):
                raise  # the client's own timeout
            if own_limit:
                raise AttemptTimeout(
                    f"attempt {attempt} exceeded {s.attempt_timeout_s:g} s; the model server answered too slowly: "
                    "raise attempt_timeout_s or use a faster server"
                ) from None
            raise ProviderTimeout(
                f"the call's deadline of {s.deadline_s:g} s passed during attempt {attempt}; {_SLOW_FIX}"
            ) from None
        return check_output(
            response,
            require_finish_reason=s.require_finish_reason,
            schema=self.output_schema,
            allow_truncated=s.allow_truncated,
        )

    async def _after_failure(self, exc: BaseException, attempt: int, started: float, label: str) -> None:
        """Wait and ask for another attempt (raise ``_RetryNow``), or give up (raise ``exc``)."""
        s = self.settings
        retryable = is_retryable(exc)
        asked = retry_after_of(exc)
        wait = self.backoff(attempt, asked)
        late = (self.clock() - started) + wait >= s.deadline_s - _EPSILON_S
        too_long = asked is not None and asked > s.retry_after_cap_s
        if not retryable or attempt >= s.max_attempts or late or too_long:
            self._count(gave_up=retryable)
            raise exc
        kind = type(exc).__name__
        self._count(kind)
        payload = {"model": label, "attempt": attempt, "error": kind, "wait_s": round(wait, 3)}
        notify(self.listeners, RETRY, payload)
        await self.sleep(wait)
        raise _RetryNow() from exc

    # -- tools ---------------------------------------------------------------------------------
    def for_tool(self) -> Callable[..., Awaitable[Any]]:
        """A tool-level AG2 hook (``@ag2.tool(middleware=[policy.for_tool()])``) declaring the tool
        idempotent: a retryable failure re-runs it with the same waits and deadline as a model call."""

        async def idempotent_tool(call_next: Any, event: Any, context: Any) -> Any:
            started, attempt = self.clock(), 0
            while True:
                attempt += 1
                result = await call_next(event, context)
                error = result.error if isinstance(result, ToolErrorEvent) else None
                if error is None:
                    self._count()
                    return result
                try:
                    await self._after_failure(as_provider_error(error), attempt, started, f"tool:{event.name}")
                except _RetryNow:
                    continue
                except Exception:
                    return result  # gave up: the model sees the tool's error, as without the hook

        idempotent_tool.__qualname__ = "RetryPolicy.for_tool"
        return idempotent_tool


class _RetryTurn(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, *, policy: RetryPolicy) -> None:
        super().__init__(event, context)
        self.policy = policy

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        return await self.policy.run(call_next, events, context)
