"""Retries on the model call that honour the provider: backoff with full jitter, ``Retry-After``, a deadline.

AG2's ``RetryMiddleware`` already knows the one thing that is hard to get right: an attempt that
published anything to the stream (streamed chunks, a message) must not be repeated, because every live
consumer would see both attempts' output. It retries immediately, on exception types, with no deadline.
:class:`RetryPolicy` composes with it rather than re-implementing it — AG2's middleware drives the loop
and the publish check, and the inner call this module hands it adds what AG2 lacks:

* only errors :func:`agentops.errors.is_retryable` marks are retried (a refusal or a bad request never);
* waits: the provider's ``Retry-After`` when it sent one (capped), else exponential backoff with full
  jitter: a uniform draw below tenacity's ``wait_exponential`` window, from a seeded generator so a
  drill is reproducible;
* a total deadline per model call, across attempts and waits;
* output validation as a fault: an empty answer, an answer cut at the token limit or (with
  ``require_finish_reason``) a stream that ended without a finish reason is retried, then fails clearly;
* every retry reported to listeners (``resilience.retry``) and counted on the policy.

Example::

    policy = RetryPolicy(max_attempts=4, deadline_s=20)
    agent = ag2.Agent("a", "Be brief.", config=config, middleware=[policy])
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ag2.events import BaseEvent, ModelResponse
from ag2.middleware import BaseMiddleware, RetryMiddleware
from pydantic import Field
from tenacity import RetryCallState, wait_exponential

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import (
    EmptyOutputError,
    MalformedOutputError,
    ProviderTimeout,
    TruncatedOutputError,
    is_retryable,
)
from agentops.listeners import Listener, notify

__all__ = ["RETRY", "RetryPolicy", "RetrySettings", "check_output", "retry_after_of"]

RETRY = "resilience.retry"  # {"attempt", "error", "wait_s"}


class RetrySettings(Spec):
    """How hard to try one model call.

    Args:
        max_attempts: attempts in total (1 = no retry).
        base_s: first backoff window; window ``n`` is ``base_s * 2**(n-1)``, capped at ``max_backoff_s``.
        max_backoff_s: largest backoff window.
        retry_after_cap_s: largest ``Retry-After`` honoured (a provider asking for longer fails the call).
        deadline_s: total time for the call, attempts and waits included.
        require_finish_reason: treat a response with no finish reason (a cut stream) as truncated.
    """

    max_attempts: int = Field(4, ge=1, le=20)
    base_s: float = Field(0.1, ge=0, le=60)
    max_backoff_s: float = Field(5.0, ge=0, le=600)
    retry_after_cap_s: float = Field(10.0, ge=0, le=3600)
    deadline_s: float = Field(60.0, gt=0, le=3600)
    require_finish_reason: bool = False


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


def check_output(response: ModelResponse, *, require_finish_reason: bool = False) -> ModelResponse:
    """Raise an output error when a response cannot be used as an answer; else return it."""
    text = response.message.content if response.message is not None else None
    calls = list(response.tool_calls.calls) if response.tool_calls is not None else []
    finish = response.finish_reason
    if finish == "length":
        raise TruncatedOutputError(
            f"the answer from {response.model!r} stopped at the token limit (finish_reason=length)"
        )
    if require_finish_reason and finish is None:
        raise TruncatedOutputError(f"the answer from {response.model!r} ended without a finish reason (a cut stream)")
    if not calls and not (text or "").strip():
        raise EmptyOutputError(f"the answer from {response.model!r} has no text and no tool calls")
    return response


class _RetryNow(Exception):
    """Handed to AG2's RetryMiddleware to ask for one more attempt; never escapes this module."""


class RetryPolicy:
    """AG2 middleware factory: call-level retries composed with AG2's ``RetryMiddleware``.

    Safe to share across agents, threads and tasks: per-call state lives in the per-turn instance and the
    counters are guarded by a lock. ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        listeners: Iterable[Listener] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        **overrides: Any,
    ) -> None:
        base = settings or RetrySettings()
        self.settings = RetrySettings(**{**base.model_dump(), **overrides}) if overrides else base
        self.listeners = tuple(listeners)
        self.sleep, self.clock = sleep, clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.attempts = 0
        self.retries: Counter[str] = Counter()
        self.gave_up = 0
        self._window = wait_exponential(multiplier=self.settings.base_s, max=self.settings.max_backoff_s)

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _RetryTurn(event, context, policy=self)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if retry_after is not None:
            return min(retry_after, self.settings.retry_after_cap_s)
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        with self._lock:
            u = self._rng.random()
        return u * self._window(state)  # full jitter: uniform in [0, window)

    def _count(self, kind: str | None, gave_up: bool = False) -> None:
        with self._lock:
            self.attempts += 1
            if kind:
                self.retries[kind] += 1
            if gave_up:
                self.gave_up += 1


class _RetryTurn(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, *, policy: RetryPolicy) -> None:
        super().__init__(event, context)
        self.policy = policy
        n = policy.settings.max_attempts
        self._ag2 = RetryMiddleware(max_retries=n - 1, retry_on=(_RetryNow,))(event, context) if n > 1 else None

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        policy, s = self.policy, self.policy.settings
        started, attempt = policy.clock(), 0

        async def one_attempt(ev: Any, ctx: Any) -> ModelResponse:
            nonlocal attempt
            attempt += 1
            remaining = s.deadline_s - (policy.clock() - started)
            try:
                if remaining <= 0:
                    raise ProviderTimeout(f"the call's deadline of {s.deadline_s:g} s passed before attempt {attempt}")
                try:
                    response = await asyncio.wait_for(call_next(ev, ctx), remaining)
                except asyncio.TimeoutError:
                    raise ProviderTimeout(
                        f"the call's deadline of {s.deadline_s:g} s passed during attempt {attempt}"
                    ) from None
                policy._count(None)
                return check_output(response, require_finish_reason=s.require_finish_reason)
            except asyncio.CancelledError:
                raise
            except json.JSONDecodeError as exc:  # the provider's body was not JSON: a malformed answer
                return await self._after_failure(
                    MalformedOutputError(f"the provider's response is not JSON: {exc}"), attempt, started
                )
            except Exception as exc:
                return await self._after_failure(exc, attempt, started)

        try:
            if self._ag2 is None:
                return await one_attempt(events, context)
            return await self._ag2.on_llm_call(one_attempt, events, context)
        except _RetryNow as wrapped:  # AG2 refused to repeat an attempt that published output
            raise wrapped.__cause__ from None

    async def _after_failure(self, exc: Exception, attempt: int, started: float) -> ModelResponse:
        policy, s = self.policy, self.policy.settings
        wait = policy.backoff(attempt, retry_after_of(exc))
        late = (policy.clock() - started) + wait > s.deadline_s
        too_long = (retry_after_of(exc) or 0) > s.retry_after_cap_s
        if not is_retryable(exc) or attempt >= s.max_attempts or late or too_long:
            policy._count(None, gave_up=is_retryable(exc))
            raise exc
        policy._count(type(exc).__name__)
        notify(policy.listeners, RETRY, {"attempt": attempt, "error": type(exc).__name__, "wait_s": round(wait, 3)})
        await policy.sleep(wait)
        raise _RetryNow() from exc
