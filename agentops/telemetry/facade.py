"""The one object a user holds: :class:`Telemetry` wires logs, spans and metrics onto AG2 agents."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import ag2
from ag2.middleware.builtin import TelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry

from agentops import _ag2
from agentops.errors import ConfigError, MissingDependencyError
from agentops.telemetry._base import EVENT_KINDS, TelemetryError
from agentops.telemetry._redact import clean_str, error_message
from agentops.telemetry._redact import name as _name
from agentops.telemetry.clock import Clock, WallClock
from agentops.telemetry.logs import LOGGER_NAME, configure_json_logging, current_ids, emit
from agentops.telemetry.metrics import AgentOpsMetrics, MetricsServer
from agentops.telemetry.middleware import _AgentOpsFactory
from agentops.telemetry.spans import JsonLinesSpanExporter, RedactingSpanProcessor, batch_processor
from agentops.telemetry.store import TraceStore
from agentops.usage import cost_usd

__all__ = ["Telemetry"]

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _safe_key(key: str) -> str:
    """A payload key usable in ``extra=`` (``from`` and LogRecord attribute names get a prefix)."""
    return f"payload_{key}" if key in _RESERVED or key == "from" else key


def _otlp_exporter(endpoint: str | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingDependencyError(
            "exporter='otlp' needs the OTLP/HTTP exporter: pip install 'ag2-agentops-cookbook[otlp]' "
            "(or pip install opentelemetry-exporter-otlp-proto-http)"
        ) from None
    return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()


class Telemetry:
    """Logs, traces and metrics for any number of AG2 agents, configured once.

    Args:
        exporter: where spans go — ``"memory"`` (default; queryable through :attr:`store`),
            ``"jsonl"`` (append to ``jsonl_path``; :meth:`TraceStore.from_jsonl` reads it back),
            ``"otlp"`` (to a collector over OTLP/HTTP; needs the ``otlp`` extra) or ``"none"``.
        jsonl_path: file for ``exporter="jsonl"``.
        otlp_endpoint: collector URL for ``exporter="otlp"`` (default: the exporter's env variables).
        registry: Prometheus registry (default: a fresh one, so nothing leaks into the global registry).
        service_name: ``service.name`` resource attribute of every span.
        logger: where JSON log records go (default ``logging.getLogger("agentops.telemetry")``; it
            emits nothing until a handler is configured, e.g. with :func:`configure_json_logging`).
        clock: :class:`WallClock` (default) or a :class:`SimulatedClock` for deterministic drills.
        capture_content: record prompts, replies and tool arguments (redacted) in spans and logs.
            Off by default: content is where secrets and personal data live.
        batch: export spans from a background thread (``BatchSpanProcessor``, at least every second);
            the default is on for ``jsonl`` and ``otlp`` and off for ``memory`` (where export is a
            list append).

    Durability: with ``exporter="jsonl"`` every finished span reaches the file within a second (the
    background export flushes each batch to the operating system), so a process killed with
    ``kill -9`` loses at most the last second; on a normal exit the tracer provider's ``atexit``
    hook exports the rest. Call :meth:`flush` to write everything now (before reading the file from
    another process) and :meth:`shutdown` when done.

    Raises:
        ConfigError: unknown exporter or missing ``jsonl_path``.
        MissingDependencyError: ``exporter="otlp"`` without the OTLP exporter installed.
    """

    def __init__(
        self,
        *,
        exporter: str = "memory",
        jsonl_path: str | os.PathLike[str] | None = None,
        otlp_endpoint: str | None = None,
        registry: CollectorRegistry | None = None,
        service_name: str = "agentops",
        logger: logging.Logger | None = None,
        clock: Clock | None = None,
        capture_content: bool = False,
        batch: bool | None = None,
    ) -> None:
        if exporter not in ("memory", "jsonl", "otlp", "none"):
            raise ConfigError(f"unknown span exporter {exporter!r}; choose memory, jsonl, otlp or none")
        if exporter == "jsonl" and jsonl_path is None:
            raise ConfigError("exporter='jsonl' needs jsonl_path='spans.jsonl'")
        self.exporter_kind = exporter
        self.capture_content = bool(capture_content)
        self.clock: Clock = clock or WallClock()
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = AgentOpsMetrics.for_registry(self.registry)
        self.workflow_of: dict[str, str] = {}
        self._handlers: list[logging.Handler] = []
        self._server: MetricsServer | None = None
        self._unpriced_warned: set[str] = set()

        # A memory store has nothing to write at exit; a file or a collector has (OTel's atexit hook).
        self.tracer_provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=exporter != "memory"
        )
        self.span_exporter: SpanExporter | None = None
        memory: InMemorySpanExporter | None = None
        if exporter == "memory":
            memory = InMemorySpanExporter()
            self.span_exporter = memory
        elif exporter == "jsonl":
            self.span_exporter = JsonLinesSpanExporter(jsonl_path)  # type: ignore[arg-type]
        elif exporter == "otlp":
            self.span_exporter = _otlp_exporter(otlp_endpoint)
        if self.span_exporter is not None:
            use_batch = batch if batch is not None else exporter != "memory"
            inner = batch_processor(self.span_exporter) if use_batch else SimpleSpanProcessor(self.span_exporter)
            self.tracer_provider.add_span_processor(RedactingSpanProcessor(inner))
        self._tracer = self.tracer_provider.get_tracer("agentops.telemetry")
        self._store = TraceStore(memory) if memory is not None else None
        self.jsonl_path = Path(jsonl_path) if jsonl_path is not None else None

    @property
    def store(self) -> TraceStore:
        """The trace store: live for ``exporter="memory"``, re-read from the file for ``"jsonl"``."""
        if self._store is not None:
            return self._store
        if self.jsonl_path is not None:
            self.flush()
            return TraceStore.from_jsonl(self.jsonl_path) if self.jsonl_path.exists() else TraceStore()
        raise TelemetryError(
            f"exporter={self.exporter_kind!r} keeps no spans here; use exporter='memory' or 'jsonl' to query them"
        )

    # -- wiring ------------------------------------------------------------------------------------
    def middleware(self, agent_name: str, *, workflow: str | None = None) -> list[Any]:
        """The middleware factories for one agent, outermost first: AG2 telemetry, AG2 metrics, ours.

        AG2's ``TelemetryMiddleware`` opens the spans: ``invoke_agent <agent>`` (carrying
        ``gen_ai.agent.name``) for each turn, with ``chat <model>``, ``execute_tool <tool>`` and usage
        spans inside it; a model call that fails before any response keeps AG2's name ``chat``, and
        this layer labels it with the model and provider of the config the turn ran with. The turn
        span also gets ``agentops.workflow``. The agent and workflow are written on the turn only —
        stamping them on every span costs a span attribute each — and :class:`TraceStore` gives each
        call the agent and workflow of its turn.
        """
        if workflow:
            self.workflow_of[agent_name] = workflow
        return [
            TelemetryMiddleware(
                tracer_provider=self.tracer_provider,
                capture_content=self.capture_content,
                agent_name=agent_name,
            ),
            self.metrics.ag2,
            _AgentOpsFactory(self, agent_name, workflow),
        ]

    def instrument(self, agents: Any, *, workflow: str | None = None) -> list[ag2.Agent]:
        """Attach logs, spans and metrics to agents; returns the agents instrumented.

        ``agents`` is one ``ag2.Agent``, any iterable of them, or an object with an ``agents``
        attribute (a role graph or workflow). The middleware goes outermost, so spans cover every
        other middleware (guardrails, budgets, retries). Calling it again for an agent this telemetry
        already instruments does nothing; an agent instrumented by another :class:`Telemetry` is an
        error (its calls would be counted twice).

        Raises:
            ConfigError: something that is not an ``ag2.Agent`` was given.
            TelemetryError: an agent already carries another Telemetry's middleware.
        """
        if isinstance(agents, ag2.Agent):
            items: list[Any] = [agents]
        else:
            source = getattr(agents, "agents", agents)
            if isinstance(source, Mapping):
                source = source.values()
            try:
                items = list(source)
            except TypeError:
                raise ConfigError(
                    f"instrument() takes an ag2.Agent, an iterable of them or an object with .agents; "
                    f"got {type(agents).__name__}"
                ) from None
        bad = [type(a).__name__ for a in items if not isinstance(a, ag2.Agent)]
        if bad:
            raise ConfigError(f"instrument() accepts ag2.Agent objects only; got {', '.join(sorted(set(bad)))}")
        done: list[ag2.Agent] = []
        for agent in items:
            owners = [d.middleware.telemetry for d in agent.middleware if isinstance(d.middleware, _AgentOpsFactory)]
            if any(o is self for o in owners):
                done.append(agent)
                continue
            if owners:
                raise TelemetryError(
                    f"agent {agent.name!r} is already instrumented by another Telemetry; use one Telemetry "
                    "per process (or per registry) so each call is counted once"
                )
            for factory in reversed(self.middleware(agent.name, workflow=workflow)):
                agent.insert_middleware(factory)
            done.append(agent)
        return done

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A parent span grouping several agent turns into one trace (a workflow run, a request).

        The span gets any ``attributes`` given (``workflow=`` becomes ``agentops.workflow``; other
        string values are free text and redacted), ``agentops.time_s``/``agentops.latency_s`` when the
        clock is simulated, and on an exception ``agentops.outcome="error"``, ``error.type``, an ERROR
        status and an ``exception`` event whose message is redacted, on one line and at most 200
        characters (:func:`~agentops.telemetry._redact.error_message`; no stack trace); the exception
        propagates.

        Example:
            >>> telemetry = Telemetry()
            >>> with telemetry.span("workflow support", workflow="support"):
            ...     pass  # route = await router.ask(question); await billing.ask(question)
            >>> telemetry.store.spans()[["name", "workflow"]].to_dict("records")
            [{'name': 'workflow support', 'workflow': 'support'}]
        """
        clock = self.clock
        start, t0 = clock.now(), clock.tick()
        # the exception is recorded below, redacted, on one line and without a stack trace
        with self._tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False) as span:
            attrs: dict[str, Any] = {"agentops.time_s": start} if clock.simulated else {}
            for key, value in attributes.items():
                key = "agentops.workflow" if key == "workflow" else key
                attrs[key] = value if isinstance(value, (bool, int, float)) else clean_str(key, str(value))
            if attrs:
                span.set_attributes(attrs)
            try:
                yield span
            except BaseException as exc:
                message = error_message(exc)
                kind = type(exc).__name__
                span.set_attributes({"agentops.outcome": "error", "error.type": kind})
                span.set_status(Status(StatusCode.ERROR, message))
                detail = message[len(kind) + 2 :]
                span.add_event("exception", {"exception.type": kind, "exception.message": detail})
                if clock.simulated:
                    span.set_attribute("agentops.latency_s", clock.tick() - t0)
                raise
            if clock.simulated:
                span.set_attribute("agentops.latency_s", clock.tick() - t0)

    # -- cost ----------------------------------------------------------------------------------------
    def price(self, usage: Any, model: str | None, provider: str | None) -> float | None:
        """USD for one call through :func:`agentops.usage.cost_usd`, or ``None`` when unpriced.

        The package's one unpriced policy: tokens are kept, the cost is ``None`` (counted in
        ``agentops_unpriced_llm_calls_total``), :func:`~agentops.usage.cost_usd` warns once per model,
        and this telemetry writes one ``cost.unpriced`` log line per model. Never raises: a usage
        record it cannot price (no model, impossible token counts) is unpriced too.
        """
        try:
            usd = cost_usd(usage, model, provider)
        except ConfigError:
            usd = None
        if usd is None and model and model not in self._unpriced_warned:
            self._unpriced_warned.add(model)
            if self.logger.isEnabledFor(logging.WARNING):
                fix = f"agentops.pricing.register_price({model!r}, input_per_1k=..., output_per_1k=...)"
                error = f"no price known for model {model!r}: tokens are counted, cost is unpriced; set one with {fix}"
                fields = {"event": "cost.unpriced", "model": model, "error": error}
                emit(self.logger, logging.WARNING, "cost.unpriced", fields)
        return usd

    # -- the observability hook ------------------------------------------------------------------
    def listener(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Record one event of the shared observability hook; never raises.

        Pass ``telemetry.listener`` in ``listeners=[...]`` of the guardrail middleware, tool
        authorizer, budget middleware and escalation engine. Each event becomes a Prometheus counter
        increment, a span event (on the current span, or on a short span of its own when none is
        active) and a WARNING log line. Payload fields that are names (``agent``, ``entity_type``,
        ``where``, ``action``, ``tool``, ``rule``, ...) are kept whole — ``"SECRET"`` stays ``"SECRET"``
        — unless a value is itself a secret; free-text fields such as ``reason`` are redacted; label
        values are bounded.

        Example:
            >>> telemetry = Telemetry()
            >>> telemetry.listener("budget.refused", {"agent": "writer", "budget": "daily", "scope": "agent"})
            >>> telemetry.store.events()[["event", "agent"]].to_dict("records")
            [{'event': 'budget.refused', 'agent': 'writer'}]
        """
        try:
            self._listen(kind, payload)
        except Exception:  # an observer must never break the caller it observes
            self.logger.exception("listener.failed", extra={"event": "listener.failed", "kind": str(kind)})

    def _listen(self, kind: str, payload: Mapping[str, Any]) -> None:
        kind = _name(str(kind))
        payload = dict(payload or {})
        self.metrics.record_event(kind, payload)
        attrs: dict[str, Any] = {}
        for key, value in payload.items():
            if value is not None:
                key = str(key)
                attrs[key] = value if isinstance(value, (bool, int, float)) else clean_str(key, str(value))
        simulated = self.clock.simulated
        now = self.clock.now()
        if simulated:
            attrs["agentops.time_s"] = now
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(kind, attrs)
        else:
            with self._tracer.start_as_current_span(f"agentops.event {kind}") as own:
                own.set_attribute(_ag2.SPAN_TYPE_ATTR, "agentops_event")
                if simulated:
                    own.set_attribute("agentops.time_s", now)
                if "agent" in attrs:
                    own.set_attribute("gen_ai.agent.name", attrs["agent"])
                own.add_event(kind, attrs)
        level = logging.WARNING if kind in EVENT_KINDS else logging.INFO
        if self.logger.isEnabledFor(level):
            trace_id, span_id = current_ids()
            fields = {k.replace(".", "_"): v for k, v in attrs.items() if k != "agentops.time_s"}
            fields.update(event=kind, time_s=round(now, 6), trace_id=trace_id, span_id=span_id)
            emit(self.logger, level, kind, {_safe_key(k): v for k, v in fields.items()})

    # -- logs, metrics endpoint, lifecycle -------------------------------------------------------
    def log_to(
        self, target: IO[str] | str | os.PathLike[str] | None = None, *, level: int = logging.INFO
    ) -> logging.Handler:
        """Write this telemetry's records as JSON lines to a stream or file (see configure_json_logging).

        At ``level=logging.INFO`` (the default) a successful turn writes one line, ``agent.turn``; at
        ``logging.DEBUG`` each model and tool call adds its own (``llm.call``, ``tool.call``).
        Failures and hook events (``guardrail.finding``, ...) are WARNING or ERROR: always written.
        """
        handler = configure_json_logging(target, level=level, logger_name=self.logger.name)
        self._handlers.append(handler)
        return handler

    def serve_metrics(self, port: int = 0, *, host: str = "127.0.0.1", allow_remote: bool = False) -> MetricsServer:
        """Start the ``/metrics`` endpoint (loopback by default, ``port=0`` = ephemeral); returns it."""
        if self._server is not None and self._server.running:
            raise TelemetryError(f"metrics already served at {self._server.url}; stop it first")
        self._server = MetricsServer(self.registry, port=port, host=host, allow_remote=allow_remote).start()
        return self._server

    def flush(self) -> None:
        """Export every finished span now (background export otherwise runs at least every second)."""
        self.tracer_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and close exporters, stop the metrics endpoint, remove log handlers added here.

        Spans finished after this are dropped; a normal interpreter exit does the same for a
        ``jsonl`` or ``otlp`` telemetry that was never shut down.
        """
        self.tracer_provider.shutdown()
        if self._server is not None:
            self._server.stop()
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()

    def __repr__(self) -> str:
        return f"Telemetry(exporter={self.exporter_kind!r}, capture_content={self.capture_content})"
