"""SLOs, burn-rate windows and event alerts as data, with durations and runbook links.

An SLO is *what fraction of events must be good* over a compliance window (see :mod:`agentops.slo`).
The latency and cost thresholds must be bucket bounds of the histograms Prometheus counts them with,
so an alert rule can count "worse than the threshold" exactly.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agentops import _ag2
from agentops.config import Spec
from agentops.errors import ConfigError
from agentops.listeners import BUDGET_REFUSED, GUARDRAIL_FINDING

__all__ = [
    "DEFAULT_BURN_WINDOWS",
    "DEFAULT_EVENT_ALERTS",
    "DEFAULT_RUNBOOK_BASE_URL",
    "DEFAULT_SLOS",
    "LATENCY_BUCKETS",
    "SLO",
    "BurnWindow",
    "EventAlert",
    "parse_duration",
    "runbook_url",
]

#: Bucket bounds (s) of AG2's ``ag2_agent_turn_duration_seconds``; a latency threshold must be one.
LATENCY_BUCKETS: tuple[float, ...] = _ag2.turn_duration_buckets()

#: Where ``runbook_url`` annotations point by default (render the runbooks there, or pass your own).
DEFAULT_RUNBOOK_BASE_URL = "https://runbooks.example.com/agentops"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus-style duration with one unit (``"5m"``, ``"1h"``, ``"30d"``)."""
    m = _DURATION.match(str(text).strip())
    if not m or int(m.group(1)) == 0:
        raise ConfigError(
            f"invalid duration {text!r}: use a positive integer and one unit of s, m, h, d, w (e.g. '5m')"
        )
    return int(m.group(1)) * _UNITS[m.group(2)]


def _duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{int(seconds)}s"


def runbook_url(runbook: str, base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> str:
    """The URL an alert links to for a runbook id (``{base_url}/{runbook}``)."""
    return f"{base_url.rstrip('/')}/{runbook}"


class SLO(Spec):
    """One objective: ``target`` fraction of events good over ``window``.

    Args:
        name: identifier used in rule labels (``[a-z][a-z0-9_]*``).
        kind: ``availability``, ``error_rate``, ``latency`` or ``cost`` (see the module table).
        target: fraction of good events, strictly between 0 and 1 (``0.99`` = 99 %).
        window: compliance window as a duration (``"30d"``).
        threshold: seconds for ``latency``, USD per request for ``cost`` — a bucket bound of the
            matching histogram, so Prometheus can count events above it exactly.
        agent: restrict to one agent (a label matcher); ``None`` = the whole service.
        runbook: id of the runbook its alerts link to.
        description: one line for people.
    """

    name: str
    kind: Literal["availability", "error_rate", "latency", "cost"]
    target: float = Field(gt=0, lt=1)
    window: str = "30d"
    threshold: float | None = None
    agent: str | None = None
    runbook: str | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError(f"SLO name {v!r} must match [a-z][a-z0-9_]* (it becomes a Prometheus label)")
        return v

    @field_validator("window")
    @classmethod
    def _window_ok(cls, v: str) -> str:
        try:
            parse_duration(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _threshold_ok(self) -> SLO:
        from agentops.telemetry import REQUEST_COST_BUCKETS

        buckets = {"latency": LATENCY_BUCKETS, "cost": REQUEST_COST_BUCKETS}.get(self.kind)
        if buckets is None:
            if self.threshold is not None:
                raise ValueError(f"SLO {self.name!r} of kind {self.kind!r} takes no threshold")
            return self
        if self.threshold is None or not any(abs(self.threshold - b) < 1e-12 for b in buckets):
            unit = "seconds" if self.kind == "latency" else "USD"
            raise ValueError(
                f"SLO {self.name!r} ({self.kind}) needs a threshold in {unit} equal to a histogram bucket, "
                f"one of {list(buckets)}; got {self.threshold!r}"
            )
        return self

    @property
    def error_budget(self) -> float:
        """The allowed fraction of bad events, ``1 - target``."""
        return 1.0 - self.target

    @property
    def window_s(self) -> int:
        """The compliance window in seconds."""
        return parse_duration(self.window)

    def objective(self) -> str:
        """The objective in words, e.g. ``"99.0% of turns succeed over 30d"``."""
        if self.kind == "latency":
            what = f"of successful turns finish within {self.threshold:g} s"
        elif self.kind == "cost":
            what = f"of turns cost at most ${self.threshold:g}"
        else:
            what = "of turns succeed" if self.kind == "availability" else "of model calls succeed"
        return f"{self.target * 100:.4g}% {what} over {self.window}"


DEFAULT_SLOS: tuple[SLO, ...] = (
    SLO(
        name="availability",
        kind="availability",
        target=0.99,
        runbook="high_error_rate",
        description="requests answered without an error",
    ),
    SLO(
        name="model_errors",
        kind="error_rate",
        target=0.98,
        runbook="high_error_rate",
        description="model calls that the provider answered",
    ),
    SLO(
        name="latency",
        kind="latency",
        target=0.95,
        threshold=5.0,
        runbook="high_latency",
        description="p95 turn latency within 5 s",
    ),
    SLO(
        name="cost",
        kind="cost",
        target=0.99,
        threshold=0.001,
        runbook="cost_spike",
        description="requests within the per-request cost budget",
    ),
)


class BurnWindow(Spec):
    """One rule of the multi-window scheme: alert when both windows burn faster than ``factor``."""

    long: str
    short: str
    factor: float = Field(gt=0)
    severity: Literal["page", "ticket"]

    @model_validator(mode="after")
    def _short_is_twelfth(self) -> BurnWindow:
        long_s, short_s = parse_duration(self.long), parse_duration(self.short)
        if long_s != 12 * short_s:
            raise ValueError(
                f"short window {self.short} must be 1/12 of the long window {self.long} "
                f"(SRE Workbook); use {_duration(long_s / 12)}"
            )
        return self

    @property
    def long_s(self) -> int:
        """Long window in seconds."""
        return parse_duration(self.long)

    @property
    def short_s(self) -> int:
        """Short window in seconds."""
        return parse_duration(self.short)


DEFAULT_BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow(long="1h", short="5m", factor=14.4, severity="page"),
    BurnWindow(long="6h", short="30m", factor=6.0, severity="page"),
    BurnWindow(long="3d", short="6h", factor=1.0, severity="ticket"),
)


class EventAlert(Spec):
    """A threshold alert on an observability-hook event: more than ``threshold`` events in ``window``.

    ``metric`` is the Prometheus counter family; ``event`` the hook event kind counted in the trace store.
    """

    name: str
    event: str
    metric: str
    window: str = "10m"
    threshold: float = Field(ge=0)
    severity: Literal["page", "ticket"] = "ticket"
    runbook: str
    summary: str

    @property
    def window_s(self) -> int:
        """The counting window in seconds."""
        return parse_duration(self.window)


DEFAULT_EVENT_ALERTS: tuple[EventAlert, ...] = (
    EventAlert(
        name="GuardrailFindingsSpike",
        event=GUARDRAIL_FINDING,
        metric="agentops_guardrail_findings_total",
        window="10m",
        threshold=10,
        severity="page",
        runbook="guardrail_spike",
        summary="more than 10 guardrail findings in 10 minutes",
    ),
    EventAlert(
        name="BudgetRefusalsSpike",
        event=BUDGET_REFUSED,
        metric="agentops_budget_refusals_total",
        window="15m",
        threshold=5,
        severity="ticket",
        runbook="cost_spike",
        summary="more than 5 budget refusals in 15 minutes",
    ),
)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def alert_name(slo: SLO, w: BurnWindow) -> str:
    """The name of the burn-rate alert of ``slo`` over ``w`` (``AvailabilityErrorBudgetBurn1h``)."""
    return f"{_camel(slo.name)}ErrorBudgetBurn{w.long}"
