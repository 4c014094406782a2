"""One usage and cost seam: tokens always, USD when the model has a price.

AG2 v1 reports tokens (``Usage`` on every model response) and no cost. Graphs, workflows, evals,
telemetry and budgets all turn usage into USD through this module, so they share **one policy for a
model without a price**:

* a run never fails mid-way because a price is missing: tokens are kept, the cost is ``None``
  ("unpriced"), and an :class:`UnpricedModelWarning` naming the fix is emitted once per model;
* a USD cap cannot be enforced on a model without a price, so :func:`require_price` refuses at
  construction time (budgets call it) with the same fix.

The fix is always ``agentops.pricing.register_price(model, input_per_1k=..., output_per_1k=...)``.

>>> from ag2.events import Usage
>>> cost_usd(Usage(prompt_tokens=1000, completion_tokens=500), "offline-1")
0.00125
>>> meter = UsageMeter()
>>> meter.add(Usage(prompt_tokens=10, completion_tokens=5), "offline-1", None) is not None
True
>>> meter.tokens, meter.calls
(15, 1)
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from typing import Any

import ag2
from ag2 import Middleware
from ag2.events import ModelResponse, Usage
from ag2.middleware import BaseMiddleware

from agentops import _identity
from agentops.errors import ConfigError, UnknownModelPrice
from agentops.pricing import Price, price

__all__ = [
    "UnpricedModelWarning",
    "UsageMeter",
    "combine_served",
    "cost_usd",
    "require_price",
    "served_parts",
    "served_response",
]


class UnpricedModelWarning(UserWarning):
    """A model has no known price: its tokens are counted, its cost is shown as unpriced."""


_warned: set[tuple[str, str | None]] = set()
_warned_lock = threading.Lock()


def _shown(model: str) -> str:
    """The model name as a message may print it: whole, or ``[REDACTED]`` when the name is itself a secret.

    A key pasted where a model name belongs would otherwise reach logs through the warning or the error.
    The guardrails catalogue is imported only here, on the rare unpriced path.
    """
    from agentops.guardrails import redact

    return repr(model) if redact(model) == model else "[REDACTED]"


def _fix(model: str) -> str:
    shown = _shown(model)
    name = shown if shown != "[REDACTED]" else "<model name>"
    return f"agentops.pricing.register_price({name}, input_per_1k=..., output_per_1k=...)"


def _package_dir(module: Any) -> str:
    return os.path.dirname(os.path.abspath(module.__file__)) + os.sep


def _paths() -> dict[str, str]:
    import sysconfig

    paths = sysconfig.get_paths()
    return {k: paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}


_OWN = _package_dir(_identity)
# what runs between the user and the package: AG2's agent loop and its libraries, the event loop
_BETWEEN = tuple({_package_dir(ag2), _package_dir(asyncio), *(os.path.abspath(p) + os.sep for p in _paths().values())})


def _user_level() -> int | None:
    """``stacklevel`` of the user's line that led to this warning, or ``None`` when it is not on the stack.

    The user's frame is the first one outside ``agentops``, the standard library, installed packages
    (AG2, fast_depends, asyncio: what drives the call) and frozen modules — a script's
    ``asyncio.run(...)``, a direct ``cost_usd(...)``. AG2 runs each turn in a task of its own, so the
    line that awaited ``agent.ask`` (a notebook cell) is usually not on the stack; then there is no user
    line to show. ``warnings.warn(skip_file_prefixes=...)`` (Python ≥ 3.12) does the same walk.
    """
    frame, level = sys._getframe(1), 1  # level 1 = _warn_unpriced, which calls warnings.warn
    while frame is not None:
        path = frame.f_code.co_filename
        if not (path.startswith("<frozen") or os.path.abspath(path).startswith((_OWN, *_BETWEEN))):
            return level
        frame, level = frame.f_back, level + 1
    return None


def _warn_unpriced(message: str) -> None:
    """Warn at the user's line; with none on the stack, at ``<agentops.usage>`` (no package source line)."""
    level = _user_level()
    if level is not None:
        warnings.warn(message, UnpricedModelWarning, stacklevel=level)
    else:
        warnings.warn_explicit(message, UnpricedModelWarning, "<agentops.usage>", 0, module="agentops.usage")


def cost_usd(usage: Any, model: str | None, provider: str | None = None) -> float | None:
    """USD for one usage record, or ``None`` when the model has no known price (warned once per model).

    ``usage`` is an AG2 ``Usage`` or any object with ``prompt_tokens``/``completion_tokens``. Negative
    or non-finite token counts are a :class:`ConfigError` (usage never refunds).
    """
    prompt = float(getattr(usage, "prompt_tokens", 0) or 0.0)
    completion = float(getattr(usage, "completion_tokens", 0) or 0.0)
    cached = float(getattr(usage, "cache_read_input_tokens", 0) or 0.0)
    if not all(0.0 <= v < float("inf") for v in (prompt, completion, cached)):
        raise ConfigError(f"token counts must be finite and ≥ 0, got prompt={prompt}, completion={completion}")
    if not model:
        return None if (prompt or completion) else 0.0
    try:
        p = price(model, provider)
    except UnknownModelPrice:
        key = (model, provider)
        with _warned_lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            _warn_unpriced(
                f"no price known for model {_shown(model)}: its tokens are counted and its cost is shown as "
                f"unpriced; set one with {_fix(model)}"
            )
        return None
    return p.cost(prompt, completion, cached)


def require_price(model: str, provider: str | None = None, *, what: str = "a USD cap") -> Price:
    """The model's :class:`Price`, or :class:`UnknownModelPrice` saying ``what`` cannot work without one."""
    try:
        return price(model, provider)
    except UnknownModelPrice:
        raise UnknownModelPrice(
            f"{what} needs a price for model {_shown(model)}, and none is known; set one with {_fix(model)} "
            f"(for a local model, 0.0 is fine), or use a token cap instead"
        ) from None


def served_response(exc: BaseException) -> ModelResponse | None:
    """What the provider served (and billed) for a model call that then raised ``exc``, or ``None``.

    The package's one convention for usage that must not be lost when a call fails after the provider
    answered: the error carries the answer. :func:`agentops.resilience.validation.check_output` and
    :func:`agentops.toolguard.check_tool_calls` set ``exc.response`` (the refused answer);
    :class:`~agentops.resilience.RetryPolicy` and :class:`~agentops.resilience.FallbackModel`, when they give
    up or are cancelled, set ``exc.served`` to what every attempt served (one model's attempts summed,
    other models' kept as :func:`served_parts`). Meters, budgets and telemetry book it once, each part
    at its own price; an error with neither (a refused connection, a timeout) booked nothing.

    >>> err = ValueError("cut")
    >>> served_response(err) is None
    True
    >>> err.response = ModelResponse(usage=Usage(prompt_tokens=3, completion_tokens=2))
    >>> served_response(err).usage.prompt_tokens
    3
    """
    for attr in ("served", "response"):
        found = getattr(exc, attr, None)
        if isinstance(found, ModelResponse):
            return found
    return None


_EARLIER = "agentops_served_before"  # an attribute of the ModelResponse (AG2 events take attributes)


def served_parts(response: ModelResponse) -> tuple[ModelResponse, ...]:
    """What was served for one model call, in order: answers *other models* served before ``response``
    (a fallback chain's failed steps, a retry's attempts that another model answered), then ``response``.

    Each part is priced at its own model. Copies the package makes of a response keep the parts
    (:func:`keep_served_before`).

    >>> a = ModelResponse(usage=Usage(prompt_tokens=5), model="m-1")
    >>> b = combine_served([a], ModelResponse(usage=Usage(prompt_tokens=7), model="m-2"))
    >>> [(p.model, p.usage.prompt_tokens) for p in served_parts(b)]
    [('m-1', 5), ('m-2', 7)]
    """
    return (*getattr(response, _EARLIER, ()), response)


def combine_served(earlier: list[ModelResponse], final: ModelResponse) -> ModelResponse:
    """``final`` with what was served before it for the same call: answers of the same model and provider
    are added to its usage (one price), answers of other models are kept as parts (:func:`served_parts`).

    >>> first = ModelResponse(usage=Usage(prompt_tokens=5, completion_tokens=1), model="m")
    >>> combine_served([first], ModelResponse(usage=Usage(prompt_tokens=5, completion_tokens=2), model="m")).usage
    Usage(prompt_tokens=10, completion_tokens=3, total_tokens=None, cache_read_input_tokens=None, \
cache_creation_input_tokens=None, thinking_tokens=None)
    """
    parts = [p for e in earlier for p in served_parts(e)]
    if not parts:
        return final
    same = [p for p in parts if (p.model, p.provider) == (final.model, final.provider)]
    other = [p for p in parts if (p.model, p.provider) != (final.model, final.provider)]
    usage = sum((p.usage for p in same), final.usage) if same else final.usage
    combined = _copy(final, usage)
    setattr(combined, _EARLIER, (*other, *getattr(final, _EARLIER, ())))
    return combined


def keep_served_before(source: ModelResponse, copy: ModelResponse) -> ModelResponse:
    """Give ``copy`` (a rebuilt ``source``) the parts served before ``source``; returns ``copy``."""
    earlier = getattr(source, _EARLIER, ())
    if earlier:
        setattr(copy, _EARLIER, earlier)
    return copy


def _copy(response: ModelResponse, usage: Usage) -> ModelResponse:
    return ModelResponse(
        response.message,
        tool_calls=response.tool_calls,
        usage=usage,
        response_force=response.response_force,
        files=response.files,
        model=response.model,
        provider=response.provider,
        finish_reason=response.finish_reason,
        response_id=response.response_id,
    )


def _refused_answer(exc: BaseException) -> bool:
    """True when ``exc`` refused an answer the provider served (an output error), not a failed call."""
    from agentops.errors import OutputError

    return isinstance(exc, OutputError)


class UsageMeter:
    """Thread- and asyncio-safe tally of model calls, tokens and USD cost, fed by AG2 middleware.

    ``meter.middleware()`` adds every LLM call's ``Usage`` to the meter, including what the provider
    served for a call that then raised (:func:`served_response`: failed attempts of a retry policy
    inside, an answer refused after it was served). Outcomes of the ``calls``:

    * ``errors`` — the call failed without an answer (a refused connection, a timeout, a rate limit or
      server error that outlived the retries); what earlier attempts served, if any, is still booked;
    * ``malformed_calls`` — the provider served an answer that was unusable (tool-call arguments that
      are not a JSON object, an answer cut at the token limit, an empty one, invalid structured
      output): its tokens are booked and it is **not** an error, whether
      :class:`~agentops.toolguard.ToolCallGuard` then answered it, a retry asked again, or it was raised;
    * the rest succeeded.

    Cost comes from :func:`cost_usd` for the model the provider reported (or ``model_name`` when the
    provider reports none); calls to unpriced models add their tokens and are counted in
    ``unpriced_calls`` instead of ``cost_usd``.
    """

    def __init__(self, model_name: str = "") -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.calls = 0
        self.errors = 0
        self.malformed_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.unpriced_calls = 0
        self.unpriced_models: set[str] = set()

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def priced(self) -> bool:
        """True when every call so far had a price (so ``cost_usd`` is the whole spend)."""
        return self.unpriced_calls == 0

    def add(self, usage: Usage | None, model: str | None, provider: str | None, *, call: bool = True) -> float | None:
        """Record one call's usage (``call=False``: more usage of a call already counted); returns its cost
        (``None`` when unpriced)."""
        usage = usage or Usage()
        name = model or self.model_name
        spent = cost_usd(usage, name, provider)
        with self._lock:
            self.calls += call
            self.prompt_tokens += int(usage.prompt_tokens or 0)
            self.completion_tokens += int(usage.completion_tokens or 0)
            if spent is None:
                self.unpriced_calls += 1
                self.unpriced_models.add(name or "<unnamed>")
            else:
                self.cost_usd += spent
        return spent

    async def metered(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        """Run one LLM call through ``call_next`` and record its usage (or its failure)."""
        try:
            response = await call_next(events, context)
        except BaseException as exc:
            served = served_response(exc)
            try:
                if served is not None:
                    self._book(served)  # counts the call; usage is booked
            except ConfigError:  # impossible counts on a failed call: its own error is the one to raise
                served = None
            if served is None:
                self.fail()
                raise
            if _refused_answer(exc):
                with self._lock:
                    self.malformed_calls += 1
            else:  # served attempts, then a failure that served nothing (e.g. a retry policy gave up)
                with self._lock:
                    self.errors += 1
            raise
        try:
            self._book(response)
        except ConfigError as exc:  # impossible counts: the call is counted as failed, the client named
            self.fail()
            raise ConfigError(
                f"the model client reported usage {response.usage}: {exc}; the call was counted as failed "
                "and nothing was booked — fix the client's usage reporting"
            ) from None
        return response

    def _book(self, response: ModelResponse) -> None:
        """One call: what other models served before ``response`` (:func:`served_parts`), then it."""
        *earlier, last = served_parts(response)
        for part in earlier:
            self.add(part.usage, part.model, part.provider, call=False)
        self.add(last.usage, last.model, last.provider)

    def fail(self) -> None:
        """Count a call that raised before the provider served anything."""
        with self._lock:
            self.calls += 1
            self.errors += 1

    def middleware(self) -> Middleware:
        """An AG2 middleware factory feeding this meter."""
        return Middleware(_MeterHook, meter=self)


class _MeterHook(BaseMiddleware):
    def __init__(self, event: Any, context: Any, *, meter: UsageMeter) -> None:
        super().__init__(event, context)
        self.meter = meter

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        return await self.meter.metered(call_next, events, context)
