"""Observability for AG2 agents: JSON logs, GenAI spans with cost, Prometheus metrics, a trace store.

AG2 v1 ships ``TelemetryMiddleware`` (OpenTelemetry spans named by the GenAI semantic conventions) and
``MetricsMiddleware`` (Prometheus families ``ag2_*``). :class:`Telemetry` wires both onto any number of
agents with one call and adds what they lack:

* **cost** — ``agentops.cost_usd`` on every ``chat`` and ``invoke_agent`` span, the Prometheus counter
  ``agentops_cost_usd_total`` and the per-request histogram ``agentops_request_cost_usd``;
* **structured JSON logs** through the standard :mod:`logging` module and ``python-json-logger``
  (never a format string), carrying ``trace_id`` and ``span_id`` of the current span, agent, model,
  tokens, cost, latency and outcome: one line per agent turn at INFO, one per model and tool call at
  DEBUG (failures at WARNING or ERROR, whatever the level);
* **safety signals** — :meth:`Telemetry.listener` turns the events of the shared observability hook
  (``guardrail.finding``, ``tool.denied``, ``budget.refused``, ``escalation``, ``handoff.refused``)
  into counters, span events and log lines;
* **redaction everywhere** — secrets and PII never reach a log line, a span attribute or a metric label:
  free text goes through the one catalogue, :mod:`agentops.guardrails` (:func:`redact`, which also
  reads JSON-escaped text), while the telemetry's own vocabulary (agent, model and tool names, entity
  types, event kinds, outcomes) is never rewritten; message content capture is off by default;
* a **trace store** — spans kept in memory or appended to a JSONL file (exported at least every
  second, and at exit), read back as pandas DataFrames (spans, turns, LLM calls, tool calls, events);
  OTLP export is a configuration switch;
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

Layout: :mod:`~agentops.telemetry.facade` (:class:`Telemetry`), :mod:`~agentops.telemetry.middleware`
(what runs inside AG2's middleware), :mod:`~agentops.telemetry.logs`, :mod:`~agentops.telemetry.spans`
(redaction at export, the JSONL exporter), :mod:`~agentops.telemetry.store`,
:mod:`~agentops.telemetry.metrics` (families and the ``/metrics`` endpoint),
:mod:`~agentops.telemetry.dashboard` (Grafana) and :mod:`~agentops.telemetry.clock`. This package
re-exports the names a user needs; the rest stays in its module.
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.telemetry._base import EVENT_KINDS, TelemetryError
from agentops.telemetry._redact import REDACTED_NAME, redact
from agentops.telemetry.clock import SimulatedClock, WallClock
from agentops.telemetry.dashboard import grafana_dashboard
from agentops.telemetry.facade import Telemetry
from agentops.telemetry.logs import JsonLogFormatter, configure_json_logging, current_ids
from agentops.telemetry.metrics import REQUEST_COST_BUCKETS, MetricsServer
from agentops.telemetry.store import TraceFileWarning, TraceStore

__all__ = [
    "EVENT_KINDS",
    "REDACTED_NAME",
    "REQUEST_COST_BUCKETS",
    "JsonLogFormatter",
    "MetricsServer",
    "SimulatedClock",
    "Telemetry",
    "TelemetryError",
    "TraceFileWarning",
    "TraceStore",
    "WallClock",
    "configure_json_logging",
    "current_ids",
    "grafana_dashboard",
    "redact",
]
