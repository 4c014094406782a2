"""The middleware telemetry adds inside AG2's ``TelemetryMiddleware``: cost, turn totals, JSON log lines.

AG2 opens the spans and counts the calls; this layer adds only what AG2 lacks. It runs directly inside
AG2's middleware, annotates the span AG2 opened for the hook (found through
:func:`agentops._ag2.hook_span`), prices each model call through :func:`agentops.usage.cost_usd`, and
writes JSON log lines — only when a handler would emit them: one per turn at INFO (ERROR when it
failed), one per model or tool call at DEBUG (WARNING when it failed). A turn's line carries its
model, tokens, cost, latency and outcome, so the default INFO level costs one line per request.

Hot path: everything that does not change from turn to turn (the agent's label values, the metric
children they select) is resolved once per agent by :class:`_AgentOpsFactory`, and log lines go straight to
the telemetry's own handlers (:func:`agentops.telemetry.logs.emit`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ag2.events import ToolErrorEvent
from ag2.middleware import BaseMiddleware

from agentops import _ag2
from agentops._wrapper import request_text
from agentops.errors import OutputError
from agentops.listeners import MALFORMED_ANSWER
from agentops.telemetry._redact import redact
from agentops.telemetry.logs import current_ids, emit
from agentops.usage import served_parts, served_response

if TYPE_CHECKING:
    from agentops.telemetry.facade import Telemetry

__all__: list[str] = []

_DEBUG, _INFO, _WARNING, _ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
_MAX_TEXT = 500  # characters of an error or captured content kept in a log line


def model_labels(config: Any) -> tuple[str | None, str | None]:
    """``(provider, model)`` of a ``ModelConfig`` (either may be ``None``)."""
    if config is None:
        return None, None
    try:
        provider = config.provider
        provider = getattr(provider, "value", provider)
    except (AttributeError, NotImplementedError):
        provider = None
    try:
        model = config.model
    except (AttributeError, NotImplementedError):
        model = None
    return (str(provider) if provider else None), (str(model) if model else None)


class _AgentOpsFactory:
    """Per-agent factory of :class:`_AgentOpsMiddleware` (bound to one :class:`Telemetry`).

    Holds what does not change from turn to turn: the agent's label values and the metric children
    they select, so a turn records its metrics with dictionary lookups.
    """

    _MAX_CHILDREN = 256  # (provider, model) pairs cached per agent; beyond it children are looked up

    def __init__(self, telemetry: Telemetry, agent_name: str, workflow: str | None = None) -> None:
        self.telemetry = telemetry
        self.agent_name = agent_name
        self.workflow = workflow
        metrics = telemetry.metrics
        self.agent_label = metrics.label("agent", agent_name)
        self.turn_cost = metrics.request_cost_usd.labels(self.agent_label)
        self._children: dict[tuple[bool, str | None, str | None], Any] = {}
        clock = telemetry.clock
        self.simulated = bool(clock.simulated)
        # Readings taken on every hook: plain C functions for the wall clock, the clock's own otherwise.
        self.now = clock.now if self.simulated else time.time
        self.tick = clock.tick if self.simulated else time.perf_counter

    def describe(self) -> Any:
        from ag2.middleware.describe import MiddlewareDescription

        return MiddlewareDescription(kind="AgentOpsTelemetry", config={"agent": self.agent_name})

    def cost_counter(self, priced: bool, provider: str | None, model: str | None) -> Any:
        """The ``agentops_cost_usd_total`` child (priced) or ``agentops_unpriced_llm_calls_total`` one."""
        key = (priced, provider, model)
        child = self._children.get(key)
        if child is None:
            metrics = self.telemetry.metrics
            g = metrics.label
            if priced:
                child = metrics.cost_usd.labels(self.agent_label, g("provider", provider), g("model", model))
            else:
                child = metrics.unpriced_calls.labels(g("model", model))
            if len(self._children) < self._MAX_CHILDREN:
                self._children[key] = child
        return child

    def __call__(self, event: Any, context: Any) -> BaseMiddleware:
        return _AgentOpsMiddleware(event, context, self)


class _AgentOpsMiddleware(BaseMiddleware):
    """Runs inside AG2's ``TelemetryMiddleware``: it annotates the span AG2 opened for each hook.

    Per hook it does only what AG2 lacks: cost (attribute, counter, per-turn histogram), the turn's
    token totals, error details, and — only when a handler would emit them — JSON log lines. With the
    wall clock, times and latencies are the span's own timestamps; a simulated clock adds its readings
    as ``agentops.time_s``/``agentops.latency_s``.
    """

    def __init__(self, event: Any, context: Any, factory: _AgentOpsFactory) -> None:
        self.initial_event, self.context = event, context  # BaseMiddleware's two fields, set directly
        self.f = factory
        self.turn_cost = 0.0
        self.turn_in = 0
        self.turn_out = 0

    # -- what every hook ends with ---------------------------------------------------------------
    def _annotate(
        self, span: Any, attrs: dict[str, Any], start: float, latency: float, exc: BaseException | None
    ) -> None:
        """Set ``attrs`` on AG2's span, plus the simulated clock's readings and the error, in one call."""
        if self.f.simulated:
            attrs["agentops.time_s"] = start
            attrs["agentops.latency_s"] = latency
        if exc is not None:
            attrs["agentops.outcome"] = "error"
            attrs["error.type"] = type(exc).__name__
        if len(attrs) == 1:
            span.set_attribute(*next(iter(attrs.items())))  # one attribute: the cheap call
        elif attrs:
            span.set_attributes(attrs)

    def _log(
        self,
        level: int,
        event: str,
        span: Any,
        labels: tuple[str | None, str | None],
        measures: dict[str, Any],
        start: float,
        latency: float,
        exc: BaseException | None,
    ) -> None:
        """Write one JSON line: the agent's fields, ``measures`` (tokens, cost, tool, captured content),
        then latency, outcome, time and the error, if any."""
        f = self.f
        provider, model = labels
        if span is None:
            trace_id, span_id = current_ids()
        else:
            ctx = span.get_span_context()
            trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        fields: dict[str, Any] = {"event": event, "agent": f.agent_name, "trace_id": trace_id, "span_id": span_id}
        if model:
            fields["model"] = model
        if provider:
            fields["provider"] = provider
        if f.workflow:
            fields["workflow"] = f.workflow
        fields.update(measures)
        fields["latency_s"] = round(latency, 6)
        fields["outcome"] = "success" if exc is None else "error"
        fields["time_s"] = round(start, 6)
        if exc is not None:
            fields["error_type"] = type(exc).__name__
            fields["error"] = redact(str(exc))[:_MAX_TEXT]
        emit(f.telemetry.logger, level, event, fields)

    # -- turn ------------------------------------------------------------------------------------
    async def on_turn(self, call_next: Any, event: Any, context: Any) -> Any:
        f = self.f
        start, t0 = f.now(), f.tick()
        try:
            response = await call_next(event, context)
        except BaseException as exc:
            self._finish_turn(start, f.tick() - t0, context, event, exc)
            raise
        self._finish_turn(start, f.tick() - t0, context, event, None)
        return response

    def _finish_turn(self, start: float, latency: float, context: Any, event: Any, exc: BaseException | None) -> None:
        f = self.f
        t = f.telemetry
        span = _ag2.hook_span(_ag2.SPAN_TYPE_AGENT)
        if span is not None:  # the turn's tokens are summed from its chat spans by the trace store
            attrs: dict[str, Any] = {"agentops.cost_usd": self.turn_cost}
            if f.workflow:
                attrs["agentops.workflow"] = f.workflow
            self._annotate(span, attrs, start, latency, exc)
        f.turn_cost.observe(self.turn_cost)
        level = _INFO if exc is None else _ERROR
        if t.logger.isEnabledFor(level):
            measures: dict[str, Any] = {
                "input_tokens": self.turn_in,
                "output_tokens": self.turn_out,
                "cost_usd": round(self.turn_cost, 8),
            }
            if t.capture_content:
                measures["request"] = redact(request_text(event))[:_MAX_TEXT]
            labels = model_labels(_ag2.turn_model_config(context))
            self._log(level, "agent.turn", span, labels, measures, start, latency, exc)

    # -- model call ------------------------------------------------------------------------------
    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> Any:
        f = self.f
        start, t0 = f.now(), f.tick()
        try:
            response = await call_next(events, context)
        except BaseException as exc:
            self._failed_call(start, f.tick() - t0, context, exc)
            raise
        self._finished_call(start, f.tick() - t0, context, response)
        return response

    def _finished_call(self, start: float, latency: float, context: Any, response: Any) -> None:
        f = self.f
        t = f.telemetry
        model, provider = response.model, response.provider
        named: dict[str, Any] = {}
        if not model or not provider:  # AG2 labels the span from the response; fill in from the config
            cfg_provider, cfg_model = model_labels(_ag2.turn_model_config(context))
            if not model and cfg_model:
                model = named["gen_ai.request.model"] = cfg_model
            if not provider and cfg_provider:
                provider = named["gen_ai.provider.name"] = cfg_provider
        usage = response.usage
        n_in, n_out = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
        usd = t.price(usage, model, provider)
        self.turn_in += n_in
        self.turn_out += n_out
        if usd is not None:
            self.turn_cost += usd
            f.cost_counter(True, provider, model).inc(usd)
            named["agentops.cost_usd"] = usd
        else:
            f.cost_counter(False, provider, model).inc()
        parts = served_parts(response)
        if len(parts) > 1:  # other models served this call first (a fallback chain): each at its price
            for part in parts[:-1]:
                _, _, more = self._book_usage(part.usage, part.model, part.provider)
                if more is not None and usd is not None:
                    named["agentops.cost_usd"] = named["agentops.cost_usd"] + more
        span = _ag2.hook_span(_ag2.SPAN_TYPE_LLM)
        if span is not None:
            self._annotate(span, named, start, latency, None)
        if t.logger.isEnabledFor(_DEBUG):
            measures = {
                "input_tokens": n_in,
                "output_tokens": n_out,
                "cost_usd": round(usd, 8) if usd is not None else None,
                "finish_reason": response.finish_reason,
            }
            self._log(_DEBUG, "llm.call", span, (provider, model), measures, start, latency, None)

    def _failed_call(self, start: float, latency: float, context: Any, exc: BaseException) -> None:
        f = self.f
        provider, model = model_labels(_ag2.turn_model_config(context))
        attrs: dict[str, Any] = {}
        measures: dict[str, Any] = {}
        served = served_response(exc)
        if served is not None:  # the provider answered and billed before the call failed: book it
            model, provider = served.model or model, served.provider or provider
            n_in, n_out, usd = self._book_served(served, model, provider, exc)
            attrs = {"gen_ai.usage.input_tokens": n_in, "gen_ai.usage.output_tokens": n_out}
            measures = {"input_tokens": n_in, "output_tokens": n_out, "cost_usd": None}
            if usd is not None:
                attrs["agentops.cost_usd"] = usd
                measures["cost_usd"] = round(usd, 8)
        span = _ag2.hook_span(_ag2.SPAN_TYPE_LLM)
        if span is not None:
            if model:
                attrs["gen_ai.request.model"] = model
            if provider:
                attrs["gen_ai.provider.name"] = provider
            self._annotate(span, attrs, start, latency, exc)
        if f.telemetry.logger.isEnabledFor(_WARNING):
            self._log(_WARNING, "llm.call", span, (provider, model), measures, start, latency, exc)

    def _book_served(
        self, served: Any, model: str | None, provider: str | None, exc: BaseException
    ) -> tuple[int, int, float | None]:
        """Tokens and cost of what was served before the call failed; a refused answer counts as malformed."""
        *earlier, _ = served_parts(served)
        n_in, n_out, usd = self._book_usage(served.usage, model, provider)
        for part in earlier:
            p_in, p_out, p_usd = self._book_usage(part.usage, part.model, part.provider)
            n_in, n_out = n_in + p_in, n_out + p_out
            usd = usd + p_usd if usd is not None and p_usd is not None else usd
        if isinstance(exc, OutputError):
            self.f.telemetry.listener(MALFORMED_ANSWER, {"agent": self.f.agent_name, "model": model or ""})
        return n_in, n_out, usd

    def _book_usage(self, usage: Any, model: str | None, provider: str | None) -> tuple[int, int, float | None]:
        """Add one served usage to the turn's totals and the cost counters; returns tokens in, out and USD."""
        f = self.f
        n_in, n_out = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
        self.turn_in += n_in
        self.turn_out += n_out
        usd = f.telemetry.price(usage, model, provider)
        if usd is not None:
            self.turn_cost += usd
            f.cost_counter(True, provider, model).inc(usd)
        else:
            f.cost_counter(False, provider, model).inc()
        return n_in, n_out, usd

    # -- tool call -------------------------------------------------------------------------------
    async def on_tool_execution(self, call_next: Any, event: Any, context: Any) -> Any:
        f = self.f
        start, t0 = f.now(), f.tick()
        try:
            result = await call_next(event, context)
        except BaseException as exc:
            self._finish_tool(event, start, f.tick() - t0, exc)
            raise
        error = result.error if isinstance(result, ToolErrorEvent) else None
        self._finish_tool(event, start, f.tick() - t0, error)
        return result

    def _finish_tool(self, event: Any, start: float, latency: float, error: BaseException | None) -> None:
        f = self.f
        t = f.telemetry
        span = _ag2.hook_span(_ag2.SPAN_TYPE_TOOL)
        if span is not None:
            self._annotate(span, {}, start, latency, error)
        level = _DEBUG if error is None else _WARNING
        if t.logger.isEnabledFor(level):
            measures = {"tool": event.name}
            if t.capture_content:
                measures["arguments"] = redact(event.arguments)[:_MAX_TEXT]
            self._log(level, "tool.call", span, (None, None), measures, start, latency, error)
