"""Observability for AG2 agents: JSON logs, GenAI spans with cost, Prometheus metrics, a trace store.

AG2 v1 ships ``TelemetryMiddleware`` (OpenTelemetry spans named by the GenAI semantic conventions) and
``MetricsMiddleware`` (Prometheus families ``ag2_*``). :class:`Telemetry` wires both onto any number of
agents with one call and adds what they lack:

* **cost** — ``agentops.cost_usd`` on every ``chat`` and ``invoke_agent`` span, the Prometheus counter
  ``agentops_cost_usd_total`` and the per-request histogram ``agentops_request_cost_usd``;
* **structured JSON logs** through the standard :mod:`logging` module and ``python-json-logger``
  (never a format string): one line per turn, model call and tool call, carrying ``trace_id`` and
  ``span_id`` of the current span, agent, model, tokens, cost, latency and outcome;
* **safety signals** — :meth:`Telemetry.listener` turns the events of the shared observability hook
  (``guardrail.finding``, ``tool.denied``, ``budget.refused``, ``escalation``, ``handoff.refused``)
  into counters, span events and log lines;
* **redaction everywhere** — secrets and PII never reach a log line, a span attribute or a metric label:
  free text goes through the guardrails scanner plus a pass over known key formats (:func:`redact`),
  while the telemetry's own vocabulary (agent, model and tool names, entity types, event kinds,
  outcomes) is never rewritten; message content capture is off by default;
* a **trace store** — spans kept in memory or appended to a JSONL file, read back as pandas
  DataFrames (spans, turns, LLM calls, tool calls, events); OTLP export is a configuration switch;
* a **metrics endpoint** on loopback, started explicitly and stoppable (:meth:`Telemetry.serve_metrics`).

Example::

    telemetry = Telemetry(exporter="memory")
    telemetry.instrument([router, planner, writer], workflow="support")
    await router.ask("hello")
    telemetry.store.llm_calls()[["agent", "model", "input_tokens", "cost_usd"]]

Why some of this is hand-written: AG2's middleware does not price calls, does not log in JSON, and has no
exporter that turns spans into DataFrames; ``python-json-logger``, ``opentelemetry-sdk`` and
``prometheus_client`` do the heavy lifting, this module only connects them.

Thread and asyncio safety: metrics, the span processors and the JSONL exporter are safe under threads
and asyncio; one :class:`Telemetry` may serve many agents and concurrent conversations.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import ag2
from ag2.events import ModelRequest, TextInput, ToolErrorEvent
from ag2.middleware import BaseMiddleware
from ag2.middleware.builtin import MetricsMiddleware, TelemetryMiddleware
from ag2.utils import MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status
from prometheus_client import CollectorRegistry, Counter, Histogram
from pythonjsonlogger.json import JsonFormatter

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops import guardrails as _guardrails
from agentops.errors import AgentOpsError, ConfigError, MissingDependencyError, UnknownModelPrice
from agentops.listeners import (
    BUDGET_REFUSED,
    ESCALATION,
    GUARDRAIL_FINDING,
    HANDOFF_REFUSED,
    PAYLOAD_KEYS,
    TOOL_DENIED,
)
from agentops.pricing import cost as _price_cost

__all__ = [
    "EVENT_KINDS",
    "REDACTED_NAME",
    "REQUEST_COST_BUCKETS",
    "AgentOpsMetrics",
    "CorrelationFilter",
    "JsonLinesSpanExporter",
    "JsonLogFormatter",
    "MetricsServer",
    "RedactingSpanProcessor",
    "SimulatedClock",
    "Telemetry",
    "TelemetryError",
    "TraceStore",
    "WallClock",
    "configure_json_logging",
    "current_ids",
    "dashboard_queries",
    "grafana_dashboard",
    "promql_metric_names",
    "redact",
]

LOGGER_NAME = "agentops.telemetry"
# A library never prints by itself: without this, Python's last-resort handler would write our WARNING
# records to stderr until the application configures logging.
logging.getLogger("agentops").addHandler(logging.NullHandler())

#: The hook's event kinds that telemetry turns into metrics, span events and log lines, with their keys.
EVENT_KINDS: Mapping[str, tuple[str, ...]] = {
    k: PAYLOAD_KEYS[k] for k in (GUARDRAIL_FINDING, TOOL_DENIED, BUDGET_REFUSED, ESCALATION, HANDOFF_REFUSED)
}

#: Buckets (USD) of the per-request cost histogram; the cost SLO threshold must be one of them.
REQUEST_COST_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class TelemetryError(AgentOpsError):
    """Telemetry was configured or used in a way that cannot work; the message names the fix."""


# --------------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------------

# Well-known credential formats and email addresses: a second pass after the guardrails scanner. They
# are prefix-anchored and certain, so a key the scanner's plausibility checks let through (a
# low-entropy token, a key glued to other text) still never reaches telemetry. Each maps onto the
# scanner's placeholder vocabulary, and no placeholder matches any pattern, so redaction is idempotent.
_KNOWN_FORMATS: tuple[tuple[str, str], ...] = (
    ("private_key", r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----|[\s\S]*)"),
    ("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),
    ("stripe_key", r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"),
    ("openai_key", r"sk-[A-Za-z0-9_-]{16,}"),
    ("aws_access_key", r"(?:AKIA|ASIA)[0-9A-Z]{16}"),
    ("github_token", r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}"),
    ("bearer_token", r"(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}=*"),
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
)
_KNOWN_RE = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _KNOWN_FORMATS))

#: What a vocabulary value (a name, kind or outcome) becomes when it is itself a secret or PII.
REDACTED_NAME = "[REDACTED]"


def _known_placeholder(match: re.Match[str]) -> str:
    return "[EMAIL_ADDRESS]" if match.lastgroup == "email" else "[SECRET]"


def redact(text: Any) -> str:
    """Replace secrets and PII in free text with the guardrails' typed placeholders.

    The text goes through :func:`agentops.guardrails.redact` — emails, phone numbers, Luhn-checked
    cards, IBANs, SSNs, IP addresses, URLs, and secrets found by format, assignment and entropy — and
    then through a pass over well-known credential formats (OpenAI/Anthropic ``sk-…``, Stripe, AWS,
    GitHub, Slack, Google keys, bearer tokens, JWTs, PEM private keys, emails), so a key the
    scanner's plausibility checks let through is still removed. Placeholders are ``[SECRET]``,
    ``[EMAIL_ADDRESS]``, ``[CREDIT_CARD]``, ...; none matches any pattern, so ``redact`` is
    idempotent. Non-strings are converted with ``str`` first.

    This is for free text (messages, errors, tool arguments). Names that are the telemetry's own
    vocabulary — agents, models, tools, entity types, event kinds, outcomes — are never rewritten:
    they are kept whole, or dropped whole as ``[REDACTED]`` if a value is itself a secret.

    Example:
        >>> redact("key=sk-abcdefghijklmnop1234 mail a@b.io")
        'key=[SECRET] mail [EMAIL_ADDRESS]'
    """
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return text
    return _KNOWN_RE.sub(_known_placeholder, _guardrails.redact(text))


# Strings that redaction leaves unchanged — names, event kinds, short messages — seen so far. A set
# lookup is the whole cost of checking them again on the hot path (span export, log formatting). Only
# strings of at most 256 characters are remembered, and the set is emptied when it grows too large.
_CLEAN: set[str] = set()
_CLEAN_MAX = 8192


def _remember_clean(text: str) -> None:
    if len(_CLEAN) >= _CLEAN_MAX:
        _CLEAN.clear()
    _CLEAN.add(text)


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    out = redact(text)
    if out == text:
        _remember_clean(text)
    return out


def _redact_text(value: str) -> str:
    """Redact free text, memoising short strings (event names, messages) so repeats are a lookup."""
    if value in _CLEAN:
        return value
    return _redact_short(value) if len(value) <= 256 else redact(value)


@functools.lru_cache(maxsize=4096)
def _check_name(value: str) -> str:
    if redact(value) != value:
        return REDACTED_NAME
    if len(value) <= 256:
        _remember_clean(value)
    return value


def _name(value: str) -> str:
    """A vocabulary value, verbatim — or :data:`REDACTED_NAME` if the whole value is a secret or PII.

    Never rewritten in part: ``"SECRET"`` (an entity type) stays ``"SECRET"``, while an API key passed
    where an agent name belongs disappears entirely.
    """
    return value if value in _CLEAN else _check_name(value)


# Keys whose string values are the telemetry's own vocabulary (span attributes, log fields, hook
# payloads): checked as names, never rewritten. Identifiers are passed through unchanged. Every other
# string — messages, errors, tool arguments, payload fields like ``reason``, attributes a caller adds —
# is free text and redacted.
_VOCABULARY_KEYS = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.agent.name",
        "gen_ai.tool.name",
        "gen_ai.tool.type",
        "gen_ai.response.finish_reasons",
        "ag2.span.type",
        "ag2.usage.kind",
        "ag2.usage.label",
        "agentops.workflow",
        "agentops.outcome",
        "error.type",
        "exception.type",
        "service.name",
        "event",
        "level",
        "logger",
        "agent",
        "model",
        "provider",
        "workflow",
        "outcome",
        "error_type",
        "finish_reason",
        "tool",
        "kind",
        *(key for keys in EVENT_KINDS.values() for key in keys if key != "reason"),
        "payload_from",
        "stage",
        "status",
    }
)
_IDENTIFIER_KEYS = frozenset(
    {"trace_id", "span_id", "timestamp", "gen_ai.tool.call.id", "gen_ai.response.id"}
)


_IS_NAME, _IS_ID = 1, 2
# One lookup tells how a key's string values are treated (absent: free text).
_KEY_KIND: dict[str, int] = {**dict.fromkeys(_VOCABULARY_KEYS, _IS_NAME), **dict.fromkeys(_IDENTIFIER_KEYS, _IS_ID)}
_SCALARS = frozenset({int, float, bool, type(None)})


def _clean_str(key: str, value: str) -> str:
    if value in _CLEAN:  # clean as free text means clean as a name too: the same check
        return value
    kind = _KEY_KIND.get(key)
    if kind is None:
        return _redact_short(value) if len(value) <= 256 else redact(value)
    return _check_name(value) if kind == _IS_NAME else value


def _clean_value(key: str, value: Any) -> Any:
    """One log field, span attribute or payload value, cleaned according to its key."""
    if value.__class__ is str:
        return _clean_str(key, value)
    if value.__class__ in _SCALARS:
        return value
    if isinstance(value, str):
        return _clean_str(key, value)
    if isinstance(value, Mapping):  # nested structures are content: every string in them is redacted
        return {_redact_text(str(k)): _clean_value("", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_value(key, v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------------


class WallClock:
    """Real time: ``now()`` is the Unix time in seconds, durations come from ``perf_counter``."""

    simulated = False

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def tick(self) -> float:
        """A monotonic reading for measuring durations."""
        return time.perf_counter()


class SimulatedClock:
    """Deterministic time for drills and notebooks: it moves only when told to or when a model "waits".

    ``now()`` is ``start`` plus every explicit :meth:`advance` plus the simulated latency of every call
    recorded so far by the offline models it follows (``OfflineModel(sleep=False)`` records latency
    without sleeping). Requests run one after another, so the latency measured between two readings is
    exactly the simulated latency of the calls in between — a serial server's clock.

    Safe under asyncio; meant for one event loop (followed models are read without their lock).

    Example:
        >>> clock = SimulatedClock(start=0.0)
        >>> clock.advance(30); clock.now()
        30.0
    """

    simulated = True

    def __init__(self, start: float = 0.0, follow: Iterable[Any] = ()) -> None:
        self._base = float(start)
        self._lock = threading.Lock()
        self._followed: list[list[Any]] = []  # [model, records seen]
        for model in follow:
            self.follow(model)

    def follow(self, model: Any) -> SimulatedClock:
        """Add an offline model whose recorded latency advances this clock; returns self."""
        if not hasattr(model, "log") or not hasattr(model, "calls"):
            raise ConfigError(
                "SimulatedClock can only follow an OfflineModel (with .log and .calls), "
                f"got {type(model).__name__}"
            )
        with self._lock:
            if all(m is not model for m, _ in self._followed):
                self._followed.append([model, model.calls])
        return self

    def _absorb(self) -> None:
        for entry in self._followed:
            model, seen = entry
            new = model.calls - seen
            if new > 0:
                log = model.log
                records = list(log)[-new:] if new <= len(log) else list(log)
                self._base += sum(r.latency_s for r in records)
                entry[1] = model.calls

    def now(self) -> float:
        """Current simulated time in seconds."""
        with self._lock:
            self._absorb()
            return self._base

    tick = now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (≥ 0); returns the new time."""
        if seconds < 0:
            raise ConfigError(f"a clock cannot go backwards: advance({seconds})")
        with self._lock:
            self._absorb()
            self._base += float(seconds)
            return self._base

    def advance_to(self, t: float) -> float:
        """Move time forward to ``t`` if it is later than now (a request arriving); returns now."""
        with self._lock:
            self._absorb()
            self._base = max(self._base, float(t))
            return self._base


Clock = WallClock | SimulatedClock


# --------------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------------


def current_ids() -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` of the current OpenTelemetry span as hex, or ``(None, None)``."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class CorrelationFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the current span to every record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            record.trace_id, record.span_id = current_ids()
        return True


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line (``python-json-logger``), with secrets and PII redacted.

    Fields: ``timestamp`` (ISO 8601), ``level``, ``logger``, ``message`` and everything passed in
    ``extra=``. Free text — the message, exception text, ``error``, ``request``, any field this
    module does not know — goes through :func:`redact`; vocabulary fields (``event``, ``agent``,
    ``model``, ``tool``, ``entity_type``, ``outcome``, ...) are kept whole unless a value is itself a
    secret; ``trace_id``/``span_id`` pass unchanged. Quotes, newlines and any unicode stay valid JSON.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("reserved_attrs", None)
        super().__init__("{levelname}{name}{message}", style="{", **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Redact free text (recursively) and check vocabulary fields before serialisation."""
        clean = _CLEAN
        for key, value in log_data.items():
            cls = value.__class__
            if cls is str:
                if value not in clean:
                    log_data[key] = _clean_str(key, value)
            elif cls not in _SCALARS:
                log_data[key] = _clean_value(key, value)
        return log_data


def configure_json_logging(
    target: IO[str] | str | os.PathLike[str] | None = None,
    *,
    level: int = logging.INFO,
    logger_name: str = "agentops",
) -> logging.Handler:
    """Send ``logger_name`` records as JSON lines to a stream or file; returns the handler to remove later.

    The logger stops propagating to the root logger (so lines are not printed twice) and gets a
    :class:`CorrelationFilter`. Call ``logging.getLogger(logger_name).removeHandler(handler)`` (or
    :meth:`Telemetry.shutdown` for handlers it created) to undo.

    Args:
        target: a text stream (default ``sys.stderr``) or a file path (appended to).
        level: minimum level; below it nothing is formatted at all.
        logger_name: the logger to configure (``"agentops"`` covers every module of this package).
    """
    if target is None or hasattr(target, "write"):
        handler: logging.Handler = logging.StreamHandler(target)  # type: ignore[arg-type]
    else:
        handler = logging.FileHandler(os.fspath(target), encoding="utf-8")
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


# --------------------------------------------------------------------------------------------------
# Spans: redaction at the export boundary, a JSONL exporter, the trace store
# --------------------------------------------------------------------------------------------------

def _clean_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Span or event attributes with free text redacted and names checked; ``None`` if unchanged."""
    if not attrs:
        return None
    out: dict[str, Any] | None = None
    clean = _CLEAN
    for key, value in attrs.items():
        cls = value.__class__
        if cls is str:
            if value in clean:
                continue
            new: Any = _clean_str(key, value)
        elif cls is tuple and value and value[0].__class__ is str:
            new = tuple(_clean_str(key, v) for v in value)
        else:
            continue
        if new != value:
            if out is None:
                out = dict(attrs)
            out[key] = new
    return out


class RedactingSpanProcessor(SpanProcessor):
    """Wraps a span processor and redacts every finished span before it is exported.

    Free-text attributes (captured messages, tool arguments and results, exception messages and stack
    traces, anything a caller adds), event attributes and the status description pass through
    :func:`redact`; vocabulary attributes (agent, model, provider, tool names, outcome, entity type,
    ...) are kept whole unless a value is itself a secret. A span that needs no change is forwarded as
    is, so the usual cost is a few dictionary lookups per span.
    """

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        attrs = _clean_attrs(span.attributes)
        changed = attrs is not None
        events = span.events
        if events:
            cleaned = []
            for ev in events:
                ev_attrs = _clean_attrs(ev.attributes)
                if ev_attrs is not None:
                    changed = True
                    ev = Event(ev.name, ev_attrs, ev.timestamp)
                cleaned.append(ev)
            events = tuple(cleaned)
        status = span.status
        if status.description:
            desc = redact(status.description)
            if desc != status.description:
                status, changed = Status(status.status_code, desc), True
        if changed:
            span = ReadableSpan(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=span.resource,
                attributes=attrs if attrs is not None else span.attributes,
                events=events,
                links=span.links,
                kind=span.kind,
                status=status,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope,
            )
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as a plain JSON-ready dict (the JSONL line format and the store's row source)."""
    ctx = span.context
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "kind": span.kind.name,
        "start_time_ns": span.start_time,
        "end_time_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": _jsonable(dict(span.attributes or {})),
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": _jsonable(dict(e.attributes or {}))}
            for e in span.events
        ],
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line to a file (see :func:`span_record` for the schema).

    Thread-safe; every batch is written and flushed under a lock, so a reader never sees half a line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_SPAN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "operation",
    "agent",
    "workflow",
    "provider",
    "model",
    "tool",
    "status",
    "outcome",
    "error_type",
    "time_s",
    "latency_s",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "start_time_ns",
    "end_time_ns",
    "attributes",
]


def _row(rec: Mapping[str, Any]) -> dict[str, Any]:
    a = rec.get("attributes") or {}
    start, end = rec.get("start_time_ns") or 0, rec.get("end_time_ns") or 0
    duration = (end - start) / 1e9 if end and start else None
    status = rec.get("status", "UNSET")
    outcome = a.get("agentops.outcome") or ("error" if status == "ERROR" else "success")
    return {
        "trace_id": rec.get("trace_id"),
        "span_id": rec.get("span_id"),
        "parent_span_id": rec.get("parent_span_id"),
        "name": rec.get("name"),
        "operation": a.get("gen_ai.operation.name") or a.get("ag2.span.type") or "other",
        "agent": a.get("gen_ai.agent.name"),
        "workflow": a.get("agentops.workflow"),
        "provider": a.get("gen_ai.provider.name"),
        "model": a.get("gen_ai.response.model") or a.get("gen_ai.request.model"),
        "tool": a.get("gen_ai.tool.name"),
        "status": status,
        "outcome": outcome,
        "error_type": a.get("error.type"),
        "time_s": a.get("agentops.time_s", start / 1e9 if start else None),
        "latency_s": a.get("agentops.latency_s", duration),
        "duration_s": duration,
        "input_tokens": a.get("gen_ai.usage.input_tokens", 0),
        "output_tokens": a.get("gen_ai.usage.output_tokens", 0),
        "cost_usd": a.get("agentops.cost_usd"),
        "start_time_ns": start,
        "end_time_ns": end,
        "attributes": dict(a),
    }


class TraceStore:
    """Finished spans as pandas DataFrames: all spans, turns, LLM calls, tool calls and events.

    Built live over an ``InMemorySpanExporter`` (``Telemetry(exporter="memory")``) or from a JSONL file
    written by :class:`JsonLinesSpanExporter` (:meth:`from_jsonl`). Time columns: ``time_s`` is the
    span start by the telemetry clock (simulated or Unix seconds), ``latency_s`` its duration by that
    clock; ``duration_s`` is always wall time.
    """

    def __init__(
        self, exporter: InMemorySpanExporter | None = None, records: Iterable[Mapping[str, Any]] = ()
    ):
        self._exporter = exporter
        self._records: list[dict[str, Any]] = [dict(r) for r in records]
        self._converted = 0
        self._lock = threading.Lock()

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> TraceStore:
        """Load a store from a JSONL span file; raises :class:`TelemetryError` on a corrupt line."""
        records = []
        with Path(path).open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise TelemetryError(
                        f"{path}:{n} is not a JSON span record ({exc.msg}); was it truncated?"
                    ) from None
        return cls(records=records)

    def records(self) -> list[dict[str, Any]]:
        """Every span as a dict (see :func:`span_record`), oldest first."""
        with self._lock:
            if self._exporter is not None:
                finished = self._exporter.get_finished_spans()
                if len(finished) < self._converted:  # exporter was cleared
                    self._records, self._converted = [], 0
                self._records.extend(span_record(s) for s in finished[self._converted :])
                self._converted = len(finished)
            return list(self._records)

    def clear(self) -> None:
        """Forget every span collected so far."""
        with self._lock:
            if self._exporter is not None:
                self._exporter.clear()
            self._records, self._converted = [], 0

    def __len__(self) -> int:
        return len(self.records())

    def spans(self) -> Any:
        """One row per span; columns include operation, agent, model, tokens, cost_usd, time_s, latency_s."""
        import pandas as pd

        frame = pd.DataFrame([_row(r) for r in self.records()], columns=_SPAN_COLUMNS)
        return frame.sort_values(["time_s", "start_time_ns"], kind="stable").reset_index(drop=True)

    def _op(self, op: str) -> Any:
        frame = self.spans()
        return frame[frame["operation"] == op].reset_index(drop=True)

    def turns(self) -> Any:
        """``invoke_agent`` spans: one row per agent turn (a request), with its total cost."""
        return self._op("invoke_agent")

    def llm_calls(self) -> Any:
        """``chat`` spans: one row per model call."""
        return self._op("chat")

    def tool_calls(self) -> Any:
        """``execute_tool`` spans: one row per tool execution."""
        return self._op("execute_tool")

    def events(self) -> Any:
        """Span events (guardrail findings, budget refusals, exceptions, ...), one row each."""
        import pandas as pd

        rows = []
        for rec in self.records():
            attrs = rec.get("attributes") or {}
            for ev in rec.get("events") or []:
                ea = ev.get("attributes") or {}
                rows.append(
                    {
                        "event": ev.get("name"),
                        "trace_id": rec.get("trace_id"),
                        "span_id": rec.get("span_id"),
                        "span": rec.get("name"),
                        "agent": ea.get("agent", attrs.get("gen_ai.agent.name")),
                        "time_s": ea.get("agentops.time_s", (ev.get("time_ns") or 0) / 1e9),
                        "attributes": dict(ea),
                    }
                )
        cols = ["event", "trace_id", "span_id", "span", "agent", "time_s", "attributes"]
        return pd.DataFrame(rows, columns=cols).sort_values("time_s", kind="stable").reset_index(drop=True)

    def trace(self, trace_id: str) -> Any:
        """Spans of one trace with ``depth`` and ``offset_s`` (start relative to the root): a waterfall."""
        frame = self.spans()
        frame = frame[frame["trace_id"] == trace_id].reset_index(drop=True)
        if frame.empty:
            raise TelemetryError(
                f"no spans with trace_id {trace_id!r}; pick one from store.turns()['trace_id']"
            )
        parents = dict(zip(frame["span_id"], frame["parent_span_id"], strict=True))

        def depth(span_id: str) -> int:
            d, seen = 0, set()
            while parents.get(span_id) in parents and span_id not in seen:
                seen.add(span_id)
                span_id, d = parents[span_id], d + 1
            return d

        frame["depth"] = [depth(s) for s in frame["span_id"]]
        frame["offset_s"] = frame["time_s"] - frame["time_s"].min()
        return frame.sort_values(["offset_s", "depth"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


class _LabelGuard:
    """Bounds label values: names are checked (a secret becomes ``[REDACTED]``, never part of one), cut
    to 64 characters, and beyond ``limit`` distinct values per label they become ``"other"``."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: Any) -> str:
        text = "unknown" if value is None or value == "" else _name(str(value))[:64]
        seen = self._seen.get(label)
        if seen is not None and text in seen:
            return text
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if text in seen:
                return text
            if len(seen) >= self.limit:
                return "other"
            seen.add(text)
            return text


_metrics_by_registry: dict[int, AgentOpsMetrics] = {}
_metrics_lock = threading.Lock()


class AgentOpsMetrics:
    """AG2's ``MetricsMiddleware`` plus the agentops families, one set per ``CollectorRegistry``.

    Use :meth:`for_registry`: AG2 allows one ``MetricsMiddleware`` per registry, so it is created once
    and shared by every agent and every :class:`Telemetry` using that registry.

    Families added (all label values bounded, see ``label_limit``):

    ``agentops_cost_usd_total{agent,provider,model}`` · ``agentops_request_cost_usd{agent}`` (histogram,
    one observation per turn) · ``agentops_unpriced_llm_calls_total{model}`` ·
    ``agentops_guardrail_findings_total{agent,entity_type,where,action}`` ·
    ``agentops_tool_denials_total{agent,tool}`` · ``agentops_budget_refusals_total{agent,budget,scope}`` ·
    ``agentops_escalations_total{rule,severity,handler,outcome}`` ·
    ``agentops_handoff_refusals_total{source,target}``.
    """

    def __init__(self, registry: CollectorRegistry, *, label_limit: int = 100) -> None:
        self.registry = registry
        self.ag2 = MetricsMiddleware(registry)
        self.label = _LabelGuard(label_limit)
        self.cost_usd = Counter(
            "agentops_cost_usd",
            "Model spend in US dollars",
            ["agent", "provider", "model"],
            registry=registry,
        )
        self.request_cost_usd = Histogram(
            "agentops_request_cost_usd",
            "Model spend per agent turn (request) in US dollars",
            ["agent"],
            buckets=(*REQUEST_COST_BUCKETS, float("inf")),
            registry=registry,
        )
        self.unpriced_calls = Counter(
            "agentops_unpriced_llm_calls",
            "Model calls whose model has no known price",
            ["model"],
            registry=registry,
        )
        self.guardrail_findings = Counter(
            "agentops_guardrail_findings",
            "Guardrail findings (secrets, PII, injections, ...)",
            ["agent", "entity_type", "where", "action"],
            registry=registry,
        )
        self.tool_denials = Counter(
            "agentops_tool_denials",
            "Tool calls refused by the tool authorizer",
            ["agent", "tool"],
            registry=registry,
        )
        self.budget_refusals = Counter(
            "agentops_budget_refusals",
            "Calls refused because a token or cost budget was exhausted",
            ["agent", "budget", "scope"],
            registry=registry,
        )
        self.escalations = Counter(
            "agentops_escalations",
            "Escalations raised by escalation rules",
            ["rule", "severity", "handler", "outcome"],
            registry=registry,
        )
        self.handoff_refusals = Counter(
            "agentops_handoff_refusals",
            "Hand-offs refused because the edge is not allowed",
            ["source", "target"],
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> AgentOpsMetrics:
        """The one instance for ``registry`` (created on first use; thread-safe)."""
        key = id(registry)
        with _metrics_lock:
            found = _metrics_by_registry.get(key)
            if found is not None and found.registry is registry:
                return found
            try:
                made = cls(registry)
            except ValueError as exc:
                raise TelemetryError(
                    f"registry already holds ag2_* or agentops_* metrics from another source ({exc}); "
                    "pass a fresh CollectorRegistry or reuse the Telemetry that created them"
                ) from None
            _metrics_by_registry[key] = made
            return made

    def record_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Count one observability-hook event (unknown kinds are ignored)."""
        g = self.label
        p = payload
        if kind == GUARDRAIL_FINDING:
            self.guardrail_findings.labels(
                g("agent", p.get("agent")),
                g("entity_type", p.get("entity_type")),
                g("where", p.get("where")),
                g("action", p.get("action")),
            ).inc()
        elif kind == TOOL_DENIED:
            self.tool_denials.labels(g("agent", p.get("agent")), g("tool", p.get("tool"))).inc()
        elif kind == BUDGET_REFUSED:
            self.budget_refusals.labels(
                g("agent", p.get("agent")), g("budget", p.get("budget")), g("scope", p.get("scope"))
            ).inc()
        elif kind == ESCALATION:
            self.escalations.labels(
                g("rule", p.get("rule")),
                g("severity", p.get("severity")),
                g("handler", p.get("handler")),
                g("outcome", p.get("outcome")),
            ).inc()
        elif kind == HANDOFF_REFUSED:
            self.handoff_refusals.labels(g("agent", p.get("from")), g("agent", p.get("to"))).inc()


class MetricsServer:
    """A Prometheus ``/metrics`` endpoint on loopback, started explicitly and stoppable.

    ``port=0`` binds an ephemeral port; read the bound one from :attr:`port`. Use as a context manager
    or call :meth:`stop`.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        allow_remote: bool = False,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"metrics port must be an int in 0..65535 (0 = any free port), got {port!r}")
        if not allow_remote and not _is_loopback(host):
            raise ConfigError(
                f"metrics host {host!r} is not a loopback address; bind 127.0.0.1 (or ::1), or pass "
                "allow_remote=True if a firewall protects the port"
            )
        self.registry, self.host, self._requested = registry, host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind and serve in a daemon thread; raises :class:`TelemetryError` if the port is taken."""
        if self._server is not None:
            return self
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(
                self._requested, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            raise TelemetryError(
                f"cannot serve metrics on {self.host}:{self._requested} ({exc.strerror}); "
                "pick another port or 0"
            ) from None
        return self

    @property
    def port(self) -> int:
        """The bound port (raises if the server is not running)."""
        if self._server is None:
            raise TelemetryError("metrics server is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# Grafana dashboard
# --------------------------------------------------------------------------------------------------


def grafana_dashboard() -> dict[str, Any]:
    """The shipped Grafana dashboard (``agentops/data/grafana_dashboard.json``) as a dict.

    Import it in Grafana (Dashboards → Import) and pick your Prometheus data source: request rate,
    error ratio, p50/p95 latency, tokens and cost per agent and model, tool calls, guardrail findings,
    budget refusals, tool denials, escalations and refused hand-offs.
    """
    from importlib import resources

    text = resources.files("agentops").joinpath("data/grafana_dashboard.json").read_text(encoding="utf-8")
    return json.loads(text)


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[str]:
    """Every PromQL expression in a Grafana dashboard: panel targets and query variables."""
    exprs: list[str] = []

    def walk(panels: Iterable[Mapping[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for var in (dashboard.get("templating") or {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            exprs.append(query.get("query") if isinstance(query, Mapping) else str(query))
    return exprs


_PROMQL_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (or Grafana ``label_values(metric, label)``) selects.

    Strips string literals, label matchers, range selectors, ``by``/``without`` clauses and Grafana
    variables, then keeps identifiers that are not functions or keywords.

    Example:
        >>> sorted(promql_metric_names('sum by (le) (rate(x_bucket{a="b"}[5m])) / sum(rate(y_total[5m]))'))
        ['ag2_x_bucket', 'y_total']
    """
    text = re.sub(r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'""", "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    label_values = re.match(r"\s*label_values\s*\(\s*([A-Za-z_:][\w:]*)\s*,", text)
    if label_values:
        return {label_values.group(1)}
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, is_call = m.group(1), m.group(2)
        if not is_call and name.lower() not in _PROMQL_KEYWORDS:
            names.add(name)
    return names


# --------------------------------------------------------------------------------------------------
# The middleware we add
# --------------------------------------------------------------------------------------------------


def _model_labels(context: Any) -> tuple[str | None, str | None]:
    cfg = (getattr(context, "dependencies", None) or {}).get(MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY)
    if cfg is None:
        return None, None
    try:
        provider = cfg.provider
        provider = getattr(provider, "value", provider)
    except (AttributeError, NotImplementedError):
        provider = None
    try:
        model = cfg.model
    except (AttributeError, NotImplementedError):
        model = None
    return (str(provider) if provider else None), (str(model) if model else None)


_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _safe_key(key: str) -> str:
    """A payload key usable in ``extra=`` (``from`` and LogRecord attribute names get a prefix)."""
    return f"payload_{key}" if key in _RESERVED or key == "from" else key


def _request_text(event: Any) -> str:
    if isinstance(event, ModelRequest):
        return " ".join(p.content for p in event.parts if isinstance(p, TextInput))
    return ""


def _hex_ids(span: Any) -> tuple[str | None, str | None]:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
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
    """Runs inside AG2's ``TelemetryMiddleware``: the current span is the one AG2 opened for the hook.

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

    def _fields(
        self, event: str, span: Any, model: str | None, provider: str | None, **extra: Any
    ) -> dict[str, Any]:
        trace_id, span_id = _hex_ids(span)
        fields: dict[str, Any] = {"event": event, "agent": self.f.agent_name}
        fields["trace_id"], fields["span_id"] = trace_id, span_id
        if model:
            fields["model"] = model
        if provider:
            fields["provider"] = provider
        if self.f.workflow:
            fields["workflow"] = self.f.workflow
        fields.update(extra)
        return fields

    # -- turn ------------------------------------------------------------------------------------
    async def on_turn(self, call_next: Any, event: Any, context: Any) -> Any:
        clock = self.f.telemetry.clock
        start = clock.now() if clock.simulated else time.time()
        t0 = clock.tick()
        try:
            response = await call_next(event, context)
        except BaseException as exc:
            self._finish_turn(start, clock.tick() - t0, context, event, exc)
            raise
        self._finish_turn(start, clock.tick() - t0, context, event, None)
        return response

    def _finish_turn(
        self, start: float, latency: float, context: Any, event: Any, exc: BaseException | None
    ) -> None:
        f = self.f
        t = f.telemetry
        span = trace.get_current_span()
        if span.is_recording():
            attrs: dict[str, Any] = {
                "agentops.cost_usd": self.turn_cost,
                "gen_ai.usage.input_tokens": self.turn_in,
                "gen_ai.usage.output_tokens": self.turn_out,
            }
            if t.clock.simulated:
                attrs["agentops.time_s"] = start
                attrs["agentops.latency_s"] = latency
            if exc is not None:
                attrs["agentops.outcome"] = "error"
                attrs["error.type"] = type(exc).__name__
            span.set_attributes(attrs)
        f.turn_cost.observe(self.turn_cost)
        level = logging.INFO if exc is None else logging.ERROR
        if t.logger.isEnabledFor(level):
            provider, model = _model_labels(context)
            fields = self._fields(
                "agent.turn",
                span,
                model,
                provider,
                input_tokens=self.turn_in,
                output_tokens=self.turn_out,
                cost_usd=round(self.turn_cost, 8),
                latency_s=round(latency, 6),
                outcome="success" if exc is None else "error",
                time_s=round(start, 6),
            )
            if exc is not None:
                fields["error_type"] = type(exc).__name__
                fields["error"] = redact(str(exc))[:500]
            if t.capture_content:
                fields["request"] = redact(_request_text(event))[:500]
            t.logger.log(level, "agent.turn", extra=fields)

    # -- model call ------------------------------------------------------------------------------
    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> Any:
        t = self.f.telemetry
        clock = t.clock
        start = clock.now() if clock.simulated else time.time()
        t0 = clock.tick()
        try:
            response = await call_next(events, context)
        except BaseException as exc:
            self._failed_call(start, clock.tick() - t0, context, exc)
            raise
        latency = clock.tick() - t0
        model, provider = response.model, response.provider
        named: dict[str, str] = {}
        if not model or not provider:  # AG2 names the span from the response; fill in from the config
            cfg_provider, cfg_model = _model_labels(context)
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
            self.f.cost_counter(True, provider, model).inc(usd)
        else:
            self.f.cost_counter(False, provider, model).inc()
        span = trace.get_current_span()
        if span.is_recording():
            attrs: dict[str, Any] = dict(named)
            if usd is not None:
                attrs["agentops.cost_usd"] = usd
            if clock.simulated:
                attrs["agentops.time_s"] = start
                attrs["agentops.latency_s"] = latency
            if attrs:
                span.set_attributes(attrs)
            if "gen_ai.request.model" in named:
                span.update_name(f"chat {model}")
        if t.logger.isEnabledFor(logging.INFO):
            fields = self._fields(
                "llm.call",
                span,
                model,
                provider,
                input_tokens=n_in,
                output_tokens=n_out,
                cost_usd=round(usd, 8) if usd is not None else None,
                latency_s=round(latency, 6),
                outcome="success",
                finish_reason=response.finish_reason,
                time_s=round(start, 6),
            )
            t.logger.info("llm.call", extra=fields)
        return response

    def _failed_call(self, start: float, latency: float, context: Any, exc: BaseException) -> None:
        t = self.f.telemetry
        provider, model = _model_labels(context)
        span = trace.get_current_span()
        if span.is_recording():  # AG2 names the span from a response; there is none
            attrs: dict[str, Any] = {"agentops.outcome": "error", "error.type": type(exc).__name__}
            if model:
                attrs["gen_ai.request.model"] = model
                span.update_name(f"chat {model}")
            if provider:
                attrs["gen_ai.provider.name"] = provider
            if t.clock.simulated:
                attrs["agentops.time_s"] = start
                attrs["agentops.latency_s"] = latency
            span.set_attributes(attrs)
        if t.logger.isEnabledFor(logging.WARNING):
            fields = self._fields(
                "llm.call",
                span,
                model,
                provider,
                latency_s=round(latency, 6),
                outcome="error",
                error_type=type(exc).__name__,
                error=redact(str(exc))[:500],
                time_s=round(start, 6),
            )
            t.logger.warning("llm.call", extra=fields)

    # -- tool call -------------------------------------------------------------------------------
    async def on_tool_execution(self, call_next: Any, event: Any, context: Any) -> Any:
        clock = self.f.telemetry.clock
        start = clock.now() if clock.simulated else time.time()
        t0 = clock.tick()
        try:
            result = await call_next(event, context)
        except BaseException as exc:
            self._finish_tool(event, start, clock.tick() - t0, exc)
            raise
        error = result.error if isinstance(result, ToolErrorEvent) else None
        self._finish_tool(event, start, clock.tick() - t0, error)
        return result

    def _finish_tool(self, event: Any, start: float, latency: float, error: BaseException | None) -> None:
        t = self.f.telemetry
        span = trace.get_current_span()
        if span.is_recording() and (error is not None or t.clock.simulated):
            attrs: dict[str, Any] = {}
            if t.clock.simulated:
                attrs["agentops.time_s"] = start
                attrs["agentops.latency_s"] = latency
            if error is not None:
                attrs["agentops.outcome"] = "error"
                attrs["error.type"] = type(error).__name__
            span.set_attributes(attrs)
        level = logging.INFO if error is None else logging.WARNING
        if t.logger.isEnabledFor(level):
            fields = self._fields(
                "tool.call",
                span,
                None,
                None,
                tool=event.name,
                latency_s=round(latency, 6),
                outcome="success" if error is None else "error",
                time_s=round(start, 6),
            )
            if error is not None:
                fields["error_type"] = type(error).__name__
                fields["error"] = redact(str(error))[:500]
            if t.capture_content:
                fields["arguments"] = redact(event.arguments)[:500]
            t.logger.log(level, "tool.call", extra=fields)


# --------------------------------------------------------------------------------------------------
# The one object a user holds
# --------------------------------------------------------------------------------------------------


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
        batch: export spans from a background thread (``BatchSpanProcessor``); the default is on for
            ``jsonl`` and ``otlp`` and off for ``memory`` (where export is a list append).

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

        self.tracer_provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
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
            inner = (
                BatchSpanProcessor(self.span_exporter)
                if use_batch
                else SimpleSpanProcessor(self.span_exporter)
            )
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
            f"exporter={self.exporter_kind!r} keeps no spans here; "
            "use exporter='memory' or 'jsonl' to query them"
        )

    # -- wiring ------------------------------------------------------------------------------------
    def middleware(self, agent_name: str, *, workflow: str | None = None) -> list[Any]:
        """The middleware factories for one agent, outermost first: AG2 telemetry, AG2 metrics, ours.

        AG2's ``TelemetryMiddleware`` stamps ``gen_ai.agent.name`` (and ``agentops.workflow``) on every
        span it opens — turns, model calls, tool calls and usage records — through its
        ``span_attributes`` option.
        """
        attrs = {"gen_ai.agent.name": agent_name}
        if workflow:
            attrs["agentops.workflow"] = workflow
            self.workflow_of[agent_name] = workflow
        return [
            TelemetryMiddleware(
                tracer_provider=self.tracer_provider,
                capture_content=self.capture_content,
                agent_name=agent_name,
                span_attributes=attrs,
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
            raise ConfigError(
                f"instrument() accepts ag2.Agent objects only; got {', '.join(sorted(set(bad)))}"
            )
        done: list[ag2.Agent] = []
        for agent in items:
            owners = [
                d.middleware.telemetry for d in agent.middleware if isinstance(d.middleware, _AgentOpsFactory)
            ]
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
        clock is simulated, and on an exception ``agentops.outcome="error"`` and ``error.type``; the
        exception propagates.

        Example:
            >>> with telemetry.span("workflow support", workflow="support"):
            ...     route = await router.ask(question)
            ...     answer = await billing.ask(question)
        """
        clock = self.clock
        start, t0 = clock.now(), clock.tick()
        with self._tracer.start_as_current_span(name) as span:
            attrs: dict[str, Any] = {"agentops.time_s": start} if clock.simulated else {}
            for key, value in attributes.items():
                key = "agentops.workflow" if key == "workflow" else key
                attrs[key] = value if isinstance(value, (bool, int, float)) else _clean_str(key, str(value))
            if attrs:
                span.set_attributes(attrs)
            try:
                yield span
            except BaseException as exc:
                span.set_attributes({"agentops.outcome": "error", "error.type": type(exc).__name__})
                if clock.simulated:
                    span.set_attribute("agentops.latency_s", clock.tick() - t0)
                raise
            if clock.simulated:
                span.set_attribute("agentops.latency_s", clock.tick() - t0)

    # -- cost ----------------------------------------------------------------------------------------
    def price(self, usage: Any, model: str | None, provider: str | None) -> float | None:
        """USD for a usage via :func:`agentops.pricing.cost`; ``None`` (and one warning) if unpriced."""
        if not model:
            return None
        try:
            return _price_cost(usage, model, provider)
        except UnknownModelPrice as exc:
            if model not in self._unpriced_warned:
                self._unpriced_warned.add(model)
                self.logger.warning(
                    "cost.unpriced", extra={"event": "cost.unpriced", "model": model, "error": str(exc)}
                )
            return None

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
            >>> telemetry.listener("budget.refused", {"agent": "writer", "budget": "daily", "scope": "agent"})
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
                attrs[key] = value if isinstance(value, (bool, int, float)) else _clean_str(key, str(value))
        simulated = self.clock.simulated
        now = self.clock.now()
        if simulated:
            attrs["agentops.time_s"] = now
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(kind, attrs)
        else:
            with self._tracer.start_as_current_span(f"agentops.event {kind}") as own:
                own.set_attribute("ag2.span.type", "agentops_event")
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
            self.logger.log(level, kind, extra={_safe_key(k): v for k, v in fields.items()})

    # -- logs, metrics endpoint, lifecycle -------------------------------------------------------
    def log_to(
        self, target: IO[str] | str | os.PathLike[str] | None = None, *, level: int = logging.INFO
    ) -> logging.Handler:
        """Write this telemetry's records as JSON lines to a stream or file (see configure_json_logging)."""
        handler = configure_json_logging(target, level=level, logger_name=self.logger.name)
        self._handlers.append(handler)
        return handler

    def serve_metrics(
        self, port: int = 0, *, host: str = "127.0.0.1", allow_remote: bool = False
    ) -> MetricsServer:
        """Start the ``/metrics`` endpoint (loopback by default, ``port=0`` = ephemeral); returns it."""
        if self._server is not None and self._server.running:
            raise TelemetryError(f"metrics already served at {self._server.url}; stop it first")
        self._server = MetricsServer(self.registry, port=port, host=host, allow_remote=allow_remote).start()
        return self._server

    def flush(self) -> None:
        """Export every finished span now (matters for batch export)."""
        self.tracer_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and close exporters, stop the metrics endpoint, remove log handlers added here."""
        self.tracer_provider.shutdown()
        if self._server is not None:
            self._server.stop()
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()

    def __repr__(self) -> str:
        return f"Telemetry(exporter={self.exporter_kind!r}, capture_content={self.capture_content})"
