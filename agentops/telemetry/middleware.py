"""The middleware telemetry adds inside AG2's ``TelemetryMiddleware``: cost, turn totals, JSON log lines.

AG2 opens the spans and counts the calls; this layer adds only what AG2 lacks. It runs directly inside
AG2's middleware, annotates the span AG2 opened for the hook (found through
:func:`agentops._ag2.hook_span`), prices each model call through :func:`agentops.usage.cost_usd`, and
writes JSON log lines — only when a handler would emit them: one per turn at INFO (ERROR when it
failed), one per model or tool call at DEBUG (WARNING when it failed). A turn's line carries its
model, tokens, cost, latency and outcome, so the default INFO level costs one line per request.

Hot path: everything that does not change from turn to turn (the agent's label values, the metric
children they select) is resolved once per agent by :class:`_AgentOpsFactory`, and log records skip
``logging``'s stack walk (:func:`agentops.telemetry.logs.emit`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ag2.events import ModelRequest, TextInput, ToolErrorEvent
from ag2.middleware import BaseMiddleware

from agentops import _ag2
from agentops.telemetry._redact import redact
from agentops.telemetry.logs import current_ids, emit

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


def _request_text(event: Any) -> str:
    if isinstance(event, ModelRequest):
        return " ".join(p.content for p in event.parts if isinstance(p, TextInput))
    return ""


def _ids(span: Any) -> tuple[str | None, str | None]:
    if span is None:
        return current_ids()
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


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

    def fields(self, event: str, span: Any, model: str | None, provider: str | None) -> dict[str, Any]:
        """The fields every log line of this agent starts with."""
        trace_id, span_id = _ids(span)
        fields: dict[str, Any] = {"event": event, "agent": self.agent_name, "trace_id": trace_id}
        fields["span_id"] = span_id
        if model:
            fields["model"] = model
        if provider:
            fields["provider"] = provider
        if self.workflow:
            fields["workflow"] = self.workflow
        return fields

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
        super().__init__(event, context)
        self.f = factory
        self.turn_cost = 0.0
        self.turn_in = 0
        self.turn_out = 0

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
            if exc is None and not f.simulated and not f.workflow:
                span.set_attribute("agentops.cost_usd", self.turn_cost)  # one attribute: the cheap call
            else:
                attrs: dict[str, Any] = {"agentops.cost_usd": self.turn_cost}
                if f.workflow:
                    attrs["agentops.workflow"] = f.workflow
                if f.simulated:
                    attrs["agentops.time_s"] = start
                    attrs["agentops.latency_s"] = latency
                if exc is not None:
                    attrs["agentops.outcome"] = "error"
                    attrs["error.type"] = type(exc).__name__
                span.set_attributes(attrs)
        f.turn_cost.observe(self.turn_cost)
        level = _INFO if exc is None else _ERROR
        if t.logger.isEnabledFor(level):
            provider, model = model_labels(_ag2.turn_model_config(context))
            fields = f.fields("agent.turn", span, model, provider)
            fields["input_tokens"] = self.turn_in
            fields["output_tokens"] = self.turn_out
            fields["cost_usd"] = round(self.turn_cost, 8)
            fields["latency_s"] = round(latency, 6)
            fields["outcome"] = "success" if exc is None else "error"
            fields["time_s"] = round(start, 6)
            if exc is not None:
                fields["error_type"] = type(exc).__name__
                fields["error"] = redact(str(exc))[:_MAX_TEXT]
            if t.capture_content:
                fields["request"] = redact(_request_text(event))[:_MAX_TEXT]
            emit(t.logger, level, "agent.turn", fields)

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
        named: dict[str, str] = {}
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
        else:
            f.cost_counter(False, provider, model).inc()
        span = _ag2.hook_span(_ag2.SPAN_TYPE_LLM)
        if span is not None:
            if usd is not None:
                named["agentops.cost_usd"] = usd  # type: ignore[assignment]
            if f.simulated:
                named["agentops.time_s"] = start  # type: ignore[assignment]
                named["agentops.latency_s"] = latency  # type: ignore[assignment]
            if len(named) == 1:
                span.set_attribute(*next(iter(named.items())))  # one attribute: the cheap call
            elif named:
                span.set_attributes(named)
        if t.logger.isEnabledFor(_DEBUG):
            fields = f.fields("llm.call", span, model, provider)
            fields["input_tokens"] = n_in
            fields["output_tokens"] = n_out
            fields["cost_usd"] = round(usd, 8) if usd is not None else None
            fields["latency_s"] = round(latency, 6)
            fields["outcome"] = "success"
            fields["finish_reason"] = response.finish_reason
            fields["time_s"] = round(start, 6)
            emit(t.logger, _DEBUG, "llm.call", fields)

    def _failed_call(self, start: float, latency: float, context: Any, exc: BaseException) -> None:
        f = self.f
        t = f.telemetry
        provider, model = model_labels(_ag2.turn_model_config(context))
        span = _ag2.hook_span(_ag2.SPAN_TYPE_LLM)
        if span is not None:
            attrs: dict[str, Any] = {"agentops.outcome": "error", "error.type": type(exc).__name__}
            if model:
                attrs["gen_ai.request.model"] = model
            if provider:
                attrs["gen_ai.provider.name"] = provider
            if f.simulated:
                attrs["agentops.time_s"] = start
                attrs["agentops.latency_s"] = latency
            span.set_attributes(attrs)
        if t.logger.isEnabledFor(_WARNING):
            fields = f.fields("llm.call", span, model, provider)
            fields["latency_s"] = round(latency, 6)
            fields["outcome"] = "error"
            fields["error_type"] = type(exc).__name__
            fields["error"] = redact(str(exc))[:_MAX_TEXT]
            fields["time_s"] = round(start, 6)
            emit(t.logger, _WARNING, "llm.call", fields)

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
        if span is not None and (error is not None or f.simulated):
            attrs: dict[str, Any] = {}
            if f.simulated:
                attrs["agentops.time_s"] = start
                attrs["agentops.latency_s"] = latency
            if error is not None:
                attrs["agentops.outcome"] = "error"
                attrs["error.type"] = type(error).__name__
            span.set_attributes(attrs)
        level = _DEBUG if error is None else _WARNING
        if t.logger.isEnabledFor(level):
            fields = f.fields("tool.call", span, None, None)
            fields["tool"] = event.name
            fields["latency_s"] = round(latency, 6)
            fields["outcome"] = "success" if error is None else "error"
            fields["time_s"] = round(start, 6)
            if error is not None:
                fields["error_type"] = type(error).__name__
                fields["error"] = redact(str(error))[:_MAX_TEXT]
            if t.capture_content:
                fields["arguments"] = redact(event.arguments)[:_MAX_TEXT]
            emit(t.logger, level, "tool.call", fields)
