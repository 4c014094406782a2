"""Budgets and the AG2 middleware that enforces them before every model call.

Identity is the call, not the history: the factory mints one id per model call (a random factory token
plus a counter), so two calls never share a reservation whatever trims the history in front of the
budget (``HistoryLimiter``, ``TokenLimiter``, assembly policies) and whatever order the middleware is
in. A retry of the same call — ``RetryMiddleware`` placed *outside* the budget re-invoking it with the
very same events after an attempt failed — keeps the call's id and counts as its next attempt; the
failed attempt's reservation was released, so each attempt that reaches the provider is booked once.
With the retry *inside* the budget, one reservation covers every attempt and is settled once, with
the usage of every attempt the provider served: :class:`~agentops.resilience.RetryPolicy` adds its
failed attempts' usage to the answer it returns, or to the error it gives up with
(:func:`agentops.usage.served_response`). A failure after the provider answered is booked at what was
served (outcome ``"malformed"`` for an answer refused as unusable); one where it served nothing books
nothing. A reservation covers one attempt, so for a cap that is never overshot put the retry policy
*outside* the budget (each attempt is then reserved before it is made); inside, the extra attempts are
still booked truthfully and counted in ``overruns()``.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import uuid
import warnings
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ag2.events import BaseEvent, ModelResponse, Usage, estimated_tokens
from ag2.middleware import BaseMiddleware
from ag2.middleware.describe import MiddlewareDescription

from agentops.budgets._ledger import (
    MAX_AMOUNT,
    MAX_USD,
    NANO_USD,
    BudgetExceeded,
    Ledger,
    Line,
    to_nano,
)
from agentops.errors import AgentOpsError, ConfigError, OutputError
from agentops.listeners import BUDGET_REFUSED, Listener, checked_listeners, notify
from agentops.usage import UnpricedModelWarning, cost_usd, require_price, served_parts, served_response

log = logging.getLogger("agentops.budgets")

Scope = Literal["conversation", "agent", "global"]


def _positive(budget: str, field: str, value: Any, *, whole: bool, upper: float, example: str) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and 0 < value <= upper and (not whole or float(value).is_integer())
    if not ok:
        kind = "a whole number" if whole else "a finite number"
        raise ConfigError(
            f"budget {budget!r}: {field} must be {kind} > 0 and ≤ {upper:,.0f}, got {value!r}; pass e.g. {example}"
        )


@dataclass(frozen=True)
class Budget:
    """One cap. At least one of ``max_usd``, ``max_tokens``, ``max_requests`` must be set.

    Args:
        name: how the budget is named in errors and reports (``"conversation"``, ``"team-hourly"``).
        scope: ``"conversation"`` (each AG2 stream separately), ``"agent"`` (each agent name) or
            ``"global"`` (everything that uses the ledger).
        max_usd: USD cap (finite, > 0); the model must have a price.
        max_tokens: total (prompt + completion) token cap.
        max_requests: model calls allowed per ``window_s`` (a sliding window); needs ``window_s``.
        window_s: ``None`` for a lifetime budget; else the window length in seconds (calendar windows
            aligned to the epoch for USD/tokens, e.g. 3600 → per clock hour).

    >>> Budget("conversation", max_usd=0.05).scope
    'conversation'
    """

    name: str
    scope: Scope = "conversation"
    max_usd: float | None = None
    max_tokens: int | None = None
    max_requests: int | None = None
    window_s: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str) or "|" in self.name:
            raise ConfigError(f"budget name must be a non-empty string without '|', got {self.name!r}")
        if self.scope not in ("conversation", "agent", "global"):
            raise ConfigError(f"budget {self.name!r}: scope must be conversation, agent or global, got {self.scope!r}")
        if self.max_usd is None and self.max_tokens is None and self.max_requests is None:
            raise ConfigError(f"budget {self.name!r} has no cap: set max_usd, max_tokens or max_requests")
        checks = (
            ("max_usd", False, MAX_USD, "max_usd=0.5"),
            ("max_tokens", True, MAX_AMOUNT, "max_tokens=50_000"),
            ("max_requests", True, MAX_AMOUNT, "max_requests=60, window_s=60"),
            ("window_s", False, 10**9, "window_s=3600"),
        )
        for field, whole, upper, example in checks:
            value = getattr(self, field)
            if value is not None:
                _positive(self.name, field, value, whole=whole, upper=upper, example=example)
        if self.max_requests is not None and self.window_s is None:
            raise ConfigError(f"budget {self.name!r}: max_requests needs window_s (e.g. window_s=60 for per minute)")


@dataclass(frozen=True)
class _CallRecord:
    call: int
    attempt: int
    agent: str
    conversation: str
    outcome: str
    budget: str | None
    estimate_usd: float
    estimate_tokens: int
    actual_usd: float | None
    actual_tokens: int


def _model_name(model: Any) -> str:
    name = model if isinstance(model, str) else getattr(model, "model", None)
    if not name or not isinstance(name, str):
        raise ConfigError("model must be a model name or an AG2 ModelConfig with .model")
    return name


class BudgetMiddleware:
    """AG2 middleware factory: reserve before every model call, settle after, refuse over the cap.

    Safe to share across threads and asyncio tasks; one factory may serve many conversations.

    Args:
        ledger: an :class:`InProcessLedger` or :class:`RedisLedger` (may be shared by many agents).
        agent: the agent's name (scope key for ``scope="agent"`` budgets, and in reports).
        budgets: the caps that apply to this agent's calls.
        model: model name (or an AG2 ``ModelConfig``) used to price the estimate; responses are
            settled at the model they report. A USD cap needs a price: an unpriced model is refused
            here, naming ``agentops.pricing.register_price``; token and request caps need none (the
            cost is then reported as unpriced, ``None``, per :mod:`agentops.usage`).
        provider: provider for pricing (taken from ``model`` when it is a config).
        max_completion_tokens: the completion part of every estimate — use your provider's ``max_tokens``
            so the estimate is an upper bound.
        chars_per_token: prompt-size heuristic for the estimate (3 over-estimates for English text).
        listeners: callables receiving ``("budget.refused", {"agent", "budget", "scope"})``.
        max_records: attempts kept for :meth:`usage_frame` and conversation labels kept for :meth:`report`
            (the most recent ones; ``None`` keeps all). A long-running service would otherwise grow without
            bound; the ledger's accounts, not these records, are what the caps are checked against.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        agent: str,
        budgets: Sequence[Budget],
        model: Any,
        provider: str | None = None,
        max_completion_tokens: int = 1024,
        chars_per_token: int = 3,
        listeners: Sequence[Listener] = (),
        max_records: int | None = 10_000,
    ) -> None:
        if not isinstance(ledger, Ledger):
            raise ConfigError("ledger must be an InProcessLedger or RedisLedger (see agentops.budgets)")
        if not agent or not isinstance(agent, str):
            raise ConfigError("BudgetMiddleware needs the agent's name: BudgetMiddleware(ledger, agent='writer', ...)")
        if isinstance(budgets, Budget) or not isinstance(budgets, Sequence):
            raise ConfigError(
                f"budgets must be a list of Budget objects, got {type(budgets).__name__}; pass budgets=[Budget(...)]"
            )
        if not budgets or not all(isinstance(b, Budget) for b in budgets):
            raise ConfigError("BudgetMiddleware needs at least one Budget(...), and only Budget objects")
        names = [b.name for b in budgets]
        if len(set(names)) != len(names):
            raise ConfigError(f"budget names must be unique, got {names}")
        for field, value in (("max_completion_tokens", max_completion_tokens), ("chars_per_token", chars_per_token)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**7:
                raise ConfigError(f"{field} must be a whole number ≥ 1, got {value!r}")
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1
        ):
            raise ConfigError(f"max_records must be a whole number ≥ 1 or None (keep all), got {max_records!r}")
        self.model = _model_name(model)
        self.provider = provider or (None if isinstance(model, str) else str(getattr(model, "provider", "") or ""))
        self._require_prices(budgets)
        self.ledger = ledger
        self.agent = agent
        self.budgets = tuple(budgets)
        self.max_completion_tokens = max_completion_tokens
        self.chars_per_token = chars_per_token
        self.listeners = checked_listeners(listeners, "BudgetMiddleware")
        self.token = uuid.uuid4().hex[:16]  # call ids are "<token>:<n>": unique across factories and hosts
        self._calls = itertools.count(1)
        self._lock = threading.Lock()
        self.max_records = max_records
        self._records: deque[_CallRecord] = deque(maxlen=max_records)
        self._conversations: OrderedDict[str, str] = OrderedDict()
        self._labels = itertools.count(1)

    def _require_prices(self, budgets: Sequence[Budget]) -> None:
        capped = [b.name for b in budgets if b.max_usd is not None]
        if capped:  # a USD cap needs a price: refuse now, naming agentops.pricing.register_price
            require_price(self.model, self.provider or None, what=f"budget(s) {capped} capping USD")

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _BudgetTurn(event, context, self)

    def describe(self) -> MiddlewareDescription:
        """AG2-style introspection."""
        return MiddlewareDescription(
            kind=type(self).__qualname__,
            config={
                "agent": self.agent,
                "model": self.model,
                "budgets": tuple(b.name for b in self.budgets),
                "max_completion_tokens": self.max_completion_tokens,
            },
        )

    # -- ids, estimates, lines ----------------------------------------------------------------------
    def next_call(self) -> int:
        """A new call number (thread-safe); the ledger key is ``f"{token}:{number}"``."""
        with self._lock:
            return next(self._calls)

    def cost_usd(self, usage: Any, model: str | None = None, provider: str | None = None) -> float | None:
        """USD for ``usage`` at ``model`` (this factory's model when that one has no price); None if unpriced.

        Unpriced models follow :mod:`agentops.usage`'s one policy: tokens counted, cost ``None``.
        """
        if model and model != self.model:
            with warnings.catch_warnings():  # the response names another model: fall back quietly
                warnings.simplefilter("ignore", UnpricedModelWarning)
                usd = cost_usd(usage, model, provider or None)
            if usd is not None:
                return usd
        return cost_usd(usage, self.model, self.provider or None)

    def _earlier(self, response: ModelResponse) -> tuple[float, int]:
        """(USD, tokens) other models served for the same call before ``response`` (see
        :func:`agentops.usage.served_parts`); a part with impossible or missing usage adds nothing."""
        usd, tokens = 0.0, 0
        for part in served_parts(response)[:-1]:
            try:
                amounts = _usage_amounts(part.usage)
            except ConfigError:
                continue
            if amounts is not None:
                usd += self.cost_usd(part.usage, part.model, part.provider) or 0.0
                tokens += sum(amounts)
        return usd, tokens

    def estimate(self, events: Sequence[BaseEvent], context: Any) -> tuple[int, int]:
        """(nano-USD, tokens) reserved for one call: prompt estimate + ``max_completion_tokens``."""
        prompt = sum(estimated_tokens(e, self.chars_per_token) for e in events)
        prompt += sum(len(p) for p in (getattr(context, "prompt", None) or [])) // self.chars_per_token
        prompt += 16  # role/format overhead per call
        usd = self.cost_usd(Usage(prompt_tokens=prompt, completion_tokens=self.max_completion_tokens))
        return (to_nano(usd, round_up=True) if usd is not None else 0), prompt + self.max_completion_tokens

    def lines(self, conversation: str, usd: int, tokens: int, now: float) -> tuple[Line, ...]:
        """The ledger lines for one call of this agent in ``conversation``."""
        out = []
        for b in self.budgets:
            scope_key = {
                "conversation": f"conversation={conversation}",
                "agent": f"agent={self.agent}",
                "global": "global",
            }[b.scope]
            account = f"{b.name}|{scope_key}"
            if b.window_s is not None and b.max_requests is None:
                account += f"|w{int(now // b.window_s)}"
            out.append(
                Line(
                    account,
                    b.name,
                    scope_key,
                    to_nano(b.max_usd) if b.max_usd is not None else -1,
                    int(b.max_tokens) if b.max_tokens is not None else -1,
                    int(b.max_requests) if b.max_requests is not None else -1,
                    float(b.window_s or 0.0),
                    usd,
                    tokens,
                )
            )
        return tuple(out)

    # -- records ------------------------------------------------------------------------------------
    def _conversation_label(self, stream_id: str) -> str:
        with self._lock:
            label = self._conversations.get(stream_id)
            if label is None:
                label = self._conversations[stream_id] = f"conv-{next(self._labels)}"
                if self.max_records is not None and len(self._conversations) > self.max_records:
                    self._conversations.popitem(last=False)  # the oldest conversation keeps its raw id in reports
            return label

    def _record(self, *fields: Any) -> None:
        with self._lock:
            self._records.append(_CallRecord(*fields))

    def _notify(self, exc: BudgetExceeded) -> None:
        payload = {"agent": self.agent, "budget": exc.budget, "scope": exc.scope.split("=", 1)[0]}
        notify(self.listeners, BUDGET_REFUSED, payload)

    def usage_frame(self) -> Any:
        """Per attempt (the most recent ``max_records``): call, attempt, agent, conversation, outcome, budget,
        estimate/actual USD and tokens."""
        import pandas as pd

        with self._lock:
            rows = [r.__dict__ for r in self._records]
        return pd.DataFrame(rows, columns=list(_CallRecord.__dataclass_fields__))

    def report(self) -> Any:
        """The ledger's accounts this agent's budgets use, as a DataFrame (conversations relabelled)."""
        import pandas as pd

        names = {b.name for b in self.budgets}
        rows = [r for r in self.ledger.accounts() if r["budget"] in names]
        with self._lock:
            labels = dict(self._conversations)
        for r in rows:
            for stream_id, label in labels.items():
                r["account"] = r["account"].replace(stream_id, label)
                r["scope"] = r["scope"].replace(stream_id, label)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["utilisation"] = [
                (r["spent_usd"] / r["cap_usd"])
                if r["cap_usd"]
                else (r["spent_tokens"] / r["cap_tokens"])
                if r["cap_tokens"]
                else None
                for r in rows
            ]
        return frame


def _usage_amounts(usage: Usage | None) -> tuple[int, int] | None:
    """(prompt, completion) tokens from a response's usage; None when the client reported none."""
    if usage is None or (usage.prompt_tokens is None and usage.completion_tokens is None):
        return None
    amounts = (usage.prompt_tokens or 0, usage.completion_tokens or 0)
    for n in amounts:
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n < 0:
            raise ConfigError(
                f"the model client reported usage {amounts}; token counts must be finite and ≥ 0. "
                "The call was charged its full reservation; fix the client's usage reporting"
            )
    return int(amounts[0]), int(amounts[1])


class _BudgetTurn(BaseMiddleware):
    """One turn: every ``on_llm_call`` is one attempt of a model call."""

    def __init__(self, event: BaseEvent, context: Any, factory: BudgetMiddleware) -> None:
        super().__init__(event, context)
        self.f = factory
        self._failed: tuple[tuple[int, ...], int, int] | None = None  # (events seen, call, attempt)

    def _identify(self, seen: tuple[int, ...]) -> tuple[int, int]:
        """(call, attempt): the failed call again when re-invoked with the very same events, else a new one."""
        failed, self._failed = self._failed, None
        if failed is not None and failed[0] == seen:
            return failed[1], failed[2] + 1
        return self.f.next_call(), 1

    def _book_failure(self, exc: BaseException, key: str, head: tuple, usd: int, tokens: int) -> bool:
        """Settle what the provider served before ``exc`` (True), or release the reservation (False).

        Served usage (:func:`agentops.usage.served_response`: an answer refused after it was served,
        a retry policy's earlier attempts) is booked once; usage with impossible counts is charged the
        reservation, never nothing. The caller re-raises ``exc`` either way.
        """
        f, served = self.f, served_response(exc)
        if served is None:
            f.ledger.release(key)
            f._record(*head, "error", None, usd / NANO_USD, tokens, 0.0, 0)
            return False
        outcome = "malformed" if isinstance(exc, OutputError) else "error"
        try:
            amounts = _usage_amounts(served.usage)
        except ConfigError:
            amounts, outcome = None, "bad usage"
        if amounts is None:  # served without usable usage: charge the reservation, never nothing
            f.ledger.settle(key, usd, tokens)
            f._record(*head, outcome, None, usd / NANO_USD, tokens, usd / NANO_USD, tokens)
            return True
        actual = f.cost_usd(served.usage, served.model, served.provider or f.provider)
        more_usd, more_tokens = f._earlier(served)
        spent_usd = (actual or 0.0) + more_usd if actual is not None or more_usd else None
        f.ledger.settle(key, to_nano(spent_usd) if spent_usd is not None else 0, sum(amounts) + more_tokens)
        f._record(*head, outcome, None, usd / NANO_USD, tokens, spent_usd, sum(amounts) + more_tokens)
        return True

    async def on_llm_call(self, call_next: Any, events: Sequence[BaseEvent], context: Any) -> ModelResponse:
        f = self.f
        stream_id = str(getattr(getattr(context, "stream", None), "id", "") or id(context))
        label = f._conversation_label(stream_id)
        seen = tuple(map(id, events))
        call, attempt = self._identify(seen)
        key = f"{f.token}:{call}"
        usd, tokens = f.estimate(events, context)
        now = f.ledger.clock() if hasattr(f.ledger, "clock") else time.time()
        head = (call, attempt, f.agent, label)
        try:
            res = f.ledger.reserve(key, f.lines(stream_id, usd, tokens, now))
        except BudgetExceeded as exc:
            f._record(*head, "refused", exc.budget, usd / NANO_USD, tokens, 0.0, 0)
            f._notify(exc)
            raise
        if not res.fresh:  # ids are minted per call, so a held key means two callers share a token
            raise AgentOpsError(f"budget call id {key!r} is already reserved; give each BudgetMiddleware its own")
        try:
            resp: ModelResponse = await call_next(events, context)
        except BaseException as exc:
            if not self._book_failure(exc, key, head, usd, tokens):
                self._failed = (seen, call, attempt)
            raise
        try:
            amounts = _usage_amounts(resp.usage)
        except ConfigError:
            f.ledger.settle(key, usd, tokens)
            f._record(*head, "bad usage", None, usd / NANO_USD, tokens, usd / NANO_USD, tokens)
            raise
        if amounts is None:  # no usage reported: charge the reservation, never nothing
            log.warning("model response without usage; charging the reservation of call %s", key)
            f.ledger.settle(key, usd, tokens)
            f._record(*head, "ok", None, usd / NANO_USD, tokens, usd / NANO_USD, tokens)
            return resp
        actual = f.cost_usd(resp.usage, resp.model, resp.provider or f.provider)
        more_usd, more_tokens = f._earlier(resp)  # what other models served for this call (a fallback chain)
        spent_usd = (actual or 0.0) + more_usd if actual is not None or more_usd else None
        f.ledger.settle(key, to_nano(spent_usd) if spent_usd is not None else 0, sum(amounts) + more_tokens)
        f._record(*head, "ok", None, usd / NANO_USD, tokens, spent_usd, sum(amounts) + more_tokens)
        return resp
