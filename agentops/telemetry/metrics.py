"""Prometheus metrics: AG2's ``MetricsMiddleware`` plus the agentops families, and a loopback endpoint.

Label values are bounded (at most ``label_limit`` distinct values per label, then ``"other"``) and
checked as names: a secret passed where an agent or tool name belongs becomes ``[REDACTED]``.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from typing import Any

from ag2.middleware.builtin import MetricsMiddleware
from prometheus_client import CollectorRegistry, Counter, Histogram

from agentops.errors import ConfigError
from agentops.listeners import (
    BUDGET_REFUSED,
    ESCALATION,
    GUARDRAIL_FINDING,
    HANDOFF_REFUSED,
    MALFORMED_ANSWER,
    TOOL_DENIED,
)
from agentops.telemetry._base import TelemetryError
from agentops.telemetry._redact import name as _name

__all__ = ["REQUEST_COST_BUCKETS", "AgentOpsMetrics", "MetricsServer"]

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
    ``agentops_handoff_refusals_total{source,target}`` ·
    ``agentops_malformed_answers_total{agent,model}`` (answers the provider served — their tokens and
    cost are counted — that were unusable: tool-call arguments that are not JSON, cut, empty).
    """

    # The event counters, one per kind of the observability hook (built from _EVENT_FAMILIES).
    guardrail_findings: Counter
    tool_denials: Counter
    budget_refusals: Counter
    escalations: Counter
    handoff_refusals: Counter
    malformed_answers: Counter

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
        for attr, (name, doc, labels) in _EVENT_FAMILIES.items():
            setattr(self, attr, Counter(name, doc, labels, registry=registry))

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
        found = _EVENT_LABELS.get(kind)
        if found is not None:
            attr, keys = found
            g = self.label
            getattr(self, attr).labels(*(g(label, payload.get(key)) for label, key in keys)).inc()


# The counter family of each observability-hook event kind: attribute, (name, help, labels).
_EVENT_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "guardrail_findings": (
        "agentops_guardrail_findings",
        "Guardrail findings (secrets, PII, injections, ...)",
        ("agent", "entity_type", "where", "action"),
    ),
    "tool_denials": ("agentops_tool_denials", "Tool calls refused by the tool authorizer", ("agent", "tool")),
    "budget_refusals": (
        "agentops_budget_refusals",
        "Calls refused because a token or cost budget was exhausted",
        ("agent", "budget", "scope"),
    ),
    "escalations": (
        "agentops_escalations",
        "Escalations raised by escalation rules",
        ("rule", "severity", "handler", "outcome"),
    ),
    "handoff_refusals": (
        "agentops_handoff_refusals",
        "Hand-offs refused because the edge is not allowed",
        ("source", "target"),
    ),
    "malformed_answers": (
        "agentops_malformed_answers",
        "Answers the provider served (tokens and cost counted) that were unusable",
        ("agent", "model"),
    ),
}
# Event kind -> (attribute, ((bounded label set, payload key), ...)): hand-off ends are agent names.
_EVENT_LABELS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    GUARDRAIL_FINDING: ("guardrail_findings", tuple((k, k) for k in ("agent", "entity_type", "where", "action"))),
    TOOL_DENIED: ("tool_denials", (("agent", "agent"), ("tool", "tool"))),
    BUDGET_REFUSED: ("budget_refusals", tuple((k, k) for k in ("agent", "budget", "scope"))),
    ESCALATION: ("escalations", tuple((k, k) for k in ("rule", "severity", "handler", "outcome"))),
    HANDOFF_REFUSED: ("handoff_refusals", (("agent", "from"), ("agent", "to"))),
    MALFORMED_ANSWER: ("malformed_answers", (("agent", "agent"), ("model", "model"))),
}


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
            self._server, self._thread = start_http_server(self._requested, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise TelemetryError(
                f"cannot serve metrics on {self.host}:{self._requested} ({exc.strerror}); pick another port or 0"
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
