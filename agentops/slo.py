"""Service level objectives: SLIs, error budgets and burn rates from traces; Prometheus burn-rate alerts.

An SLO here is data (:class:`SLO`): *what fraction of events must be good* over a compliance window.
Four kinds cover an agent service:

================  ===============================================  ================================
kind              a bad event is                                   Prometheus source
================  ===============================================  ================================
``availability``  an agent turn (request) that raised              ``ag2_agent_turns_total``
``error_rate``    a model call that failed                         ``ag2_llm_calls_total``
``latency``       a successful turn slower than ``threshold`` s    ``ag2_agent_turn_duration_seconds``
``cost``          a turn costing more than ``threshold`` USD       ``agentops_request_cost_usd``
================  ===============================================  ================================

From the trace store (:class:`agentops.telemetry.TraceStore`) this module computes the SLI, the error
budget remaining and burn rates (:func:`evaluate`, :func:`slo_table`, :func:`burn_rates`), and replays
alerting over a recorded period (:func:`alert_timeline`). For production it generates Prometheus rules
(:func:`alert_rules`) with the multi-window, multi-burn-rate scheme of the Google SRE Workbook (ch. 5):
page when the budget burns 14.4× too fast over 1 h (confirmed over 5 m), page at 6× over 6 h (30 m),
open a ticket at 1× over 3 d (6 h). Every alert carries a ``runbook_url`` annotation.
:func:`promtool_check` and :func:`promtool_test` run ``promtool`` on the generated files.

Burn rate: the observed bad-event ratio divided by the ratio the SLO allows (``1 - target``). A burn
rate of 1 spends exactly the budget over the window; 14.4 over one hour spends 2 % of a 30-day budget.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.errors import AgentOpsError, ConfigError, MissingDependencyError
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
    "PromtoolError",
    "SLOReport",
    "Spec",
    "alert_rules",
    "alert_timeline",
    "burn_rates",
    "evaluate",
    "parse_duration",
    "promtool_check",
    "promtool_test",
    "rules_yaml",
    "runbook_url",
    "sli_events",
    "slo_table",
    "write_rules",
]

#: Bucket bounds (s) of AG2's ``ag2_agent_turn_duration_seconds``; a latency threshold must be one.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)

#: Where ``runbook_url`` annotations point by default (render the runbooks there, or pass your own).
DEFAULT_RUNBOOK_BASE_URL = "https://runbooks.example.com/agentops"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


class PromtoolError(AgentOpsError):
    """``promtool`` rejected a rule or test file; the message carries its output."""


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


# --------------------------------------------------------------------------------------------------
# SLOs and alert windows as data
# --------------------------------------------------------------------------------------------------


class Spec(BaseModel):
    """Base of the frozen config models here: bad input raises :class:`ConfigError`, not a pydantic trace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or type(self).__name__}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid {type(self).__name__}: {problems}") from None


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

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    model_config = ConfigDict(frozen=True, extra="forbid")

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


# --------------------------------------------------------------------------------------------------
# SLIs from the trace store
# --------------------------------------------------------------------------------------------------


def _frame_of(store: Any, kind: str) -> Any:
    if hasattr(store, "turns"):
        return store.llm_calls() if kind == "error_rate" else store.turns()
    return store  # already a DataFrame of the right spans


def sli_events(slo: SLO, store: Any) -> Any:
    """One row per event the SLO counts: ``time_s`` and ``good`` (bool), oldest first.

    ``store`` is a :class:`~agentops.telemetry.TraceStore` (or a DataFrame of its turns / LLM calls).
    """
    import pandas as pd

    frame = _frame_of(store, slo.kind)
    if slo.agent is not None and len(frame):
        frame = frame[frame["agent"] == slo.agent]
    if slo.kind == "latency" and len(frame):
        frame = frame[frame["outcome"] == "success"]
    if not len(frame):
        return pd.DataFrame({"time_s": pd.Series(dtype=float), "good": pd.Series(dtype=bool)})
    if slo.kind in ("availability", "error_rate"):
        good = frame["outcome"] == "success"
    elif slo.kind == "latency":
        good = frame["latency_s"].astype(float) <= float(slo.threshold)  # type: ignore[arg-type]
    else:
        good = frame["cost_usd"].fillna(0.0).astype(float) <= float(slo.threshold)  # type: ignore[arg-type]
    out = pd.DataFrame(
        {"time_s": frame["time_s"].astype(float).to_numpy(), "good": good.to_numpy(dtype=bool)}
    )
    return out.sort_values("time_s", kind="stable").reset_index(drop=True)


class SLOReport(BaseModel):
    """The state of one SLO over its window (or the data available, if shorter)."""

    model_config = ConfigDict(frozen=True)

    slo: str
    objective: str
    target: float
    events: int
    bad: int
    sli: float | None
    allowed_bad: float
    budget_remaining: float | None
    burn_rate: float | None
    met: bool | None

    def row(self) -> dict[str, Any]:
        """A flat dict for a table."""
        return self.model_dump()


def evaluate(slo: SLO, store: Any, *, now: float | None = None, window_s: float | None = None) -> SLOReport:
    """SLI, error budget remaining and burn rate of ``slo`` over ``(now - window, now]``.

    ``now`` defaults to the time of the last event; ``window_s`` to the SLO's window. Budget remaining
    is ``1 - bad / allowed_bad`` (negative once the budget is overspent); burn rate is
    ``(bad / events) / (1 - target)``. With no events, SLI, budget and burn rate are ``None``.
    """
    events = sli_events(slo, store)
    if now is None and len(events):
        now = float(events["time_s"].iloc[-1])
    span = float(window_s if window_s is not None else slo.window_s)
    if len(events):
        times = events["time_s"].to_numpy()
        sel = events[(times > now - span) & (times <= now)]  # type: ignore[operator]
    else:
        sel = events
    n = len(sel)
    bad = int((~sel["good"]).sum()) if n else 0
    allowed = slo.error_budget * n
    if n == 0:
        return SLOReport(
            slo=slo.name,
            objective=slo.objective(),
            target=slo.target,
            events=0,
            bad=0,
            sli=None,
            allowed_bad=0.0,
            budget_remaining=None,
            burn_rate=None,
            met=None,
        )
    ratio = bad / n
    return SLOReport(
        slo=slo.name,
        objective=slo.objective(),
        target=slo.target,
        events=n,
        bad=bad,
        sli=1.0 - ratio,
        allowed_bad=allowed,
        budget_remaining=1.0 - bad / allowed,
        burn_rate=ratio / slo.error_budget,
        met=bad <= allowed + 1e-9,  # the budget is not overspent (tolerating float rounding)
    )


def slo_table(slos: Iterable[SLO], store: Any, *, now: float | None = None) -> Any:
    """:func:`evaluate` for several SLOs as a DataFrame (one row per SLO)."""
    import pandas as pd

    rows = [evaluate(s, store, now=now).row() for s in slos]
    return pd.DataFrame(rows).set_index("slo")


def _window_counts(times: Any, bad: Any, at: Any, window_s: float) -> tuple[Any, Any]:
    """Events and bad events in ``(t - window, t]`` for each ``t`` in ``at`` (vectorised)."""
    import numpy as np

    cum_bad = np.concatenate([[0], np.cumsum(bad)])
    hi = np.searchsorted(times, at, side="right")
    lo = np.searchsorted(times, at - window_s, side="right")
    return hi - lo, cum_bad[hi] - cum_bad[lo]


def _grid(start: float, end: float, step_s: float) -> Any:
    import numpy as np

    if step_s <= 0:
        raise ConfigError(f"step must be > 0 seconds, got {step_s}")
    return np.arange(start, end + step_s * 0.5, step_s)


def burn_rates(
    slo: SLO,
    store: Any,
    *,
    windows: Sequence[str] = ("5m", "1h"),
    step: str = "1m",
    start: float | None = None,
    end: float | None = None,
) -> Any:
    """Burn rate over each trailing window, sampled every ``step``: columns ``time_s`` and one per window.

    A value is NaN where the window holds no events.
    """
    import numpy as np
    import pandas as pd

    events = sli_events(slo, store)
    if not len(events):
        return pd.DataFrame(columns=["time_s", *windows])
    times = events["time_s"].to_numpy(dtype=float)
    bad = (~events["good"]).to_numpy(dtype=int)
    grid = _grid(
        times[0] if start is None else start, times[-1] if end is None else end, parse_duration(step)
    )
    out = {"time_s": grid}
    for w in windows:
        n, b = _window_counts(times, bad, grid, parse_duration(w))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[w] = np.where(n > 0, b / np.maximum(n, 1) / slo.error_budget, np.nan)
    return pd.DataFrame(out)


def _intervals(
    alert: str, firing: Any, grid: Any, step_s: float, extra: dict[str, Any], peak: Any
) -> list[dict]:
    rows = []
    i, n = 0, len(grid)
    while i < n:
        if firing[i]:
            j = i
            while j + 1 < n and firing[j + 1]:
                j += 1
            resolved = float(grid[j + 1]) if j + 1 < n else None
            rows.append(
                {
                    "alert": alert,
                    "fired_at_s": float(grid[i]),
                    "resolved_at_s": resolved,
                    "peak": float(peak[i : j + 1].max()),
                    **extra,
                }
            )
            i = j + 1
        else:
            i += 1
    return rows


def alert_timeline(
    slos: Iterable[SLO],
    store: Any,
    *,
    windows: Sequence[BurnWindow] = DEFAULT_BURN_WINDOWS,
    event_alerts: Sequence[EventAlert] = DEFAULT_EVENT_ALERTS,
    step: str = "1m",
    start: float | None = None,
    end: float | None = None,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
) -> Any:
    """Replay the generated alert rules over the trace store: when each alert fired and resolved.

    Evaluates every ``step`` exactly what :func:`alert_rules` asks Prometheus to evaluate: a burn-rate
    alert fires while the bad ratio exceeds ``factor × (1 - target)`` over both its long and short
    window; an event alert while more than ``threshold`` events fall in its window. Returns one row
    per firing interval: ``alert, severity, slo, fired_at_s, resolved_at_s, peak, runbook, runbook_url``
    (``peak`` is the highest long-window burn rate, or event count). ``resolved_at_s`` is ``None`` if
    still firing at ``end``.
    """
    import numpy as np
    import pandas as pd

    slos = list(slos)
    step_s = parse_duration(step)
    per_slo = [(s, sli_events(s, store)) for s in slos]
    ev_frame = store.events() if hasattr(store, "events") else None
    all_times = [e["time_s"].to_numpy(dtype=float) for _, e in per_slo if len(e)]
    if ev_frame is not None and len(ev_frame):
        all_times.append(ev_frame["time_s"].to_numpy(dtype=float))
    cols = ["alert", "severity", "slo", "fired_at_s", "resolved_at_s", "peak", "runbook", "runbook_url"]
    if not all_times:
        return pd.DataFrame(columns=cols)
    t0 = min(float(t.min()) for t in all_times) if start is None else start
    t1 = max(float(t.max()) for t in all_times) if end is None else end
    grid = _grid(t0, t1, step_s)
    rows: list[dict[str, Any]] = []
    for slo, events in per_slo:
        if not len(events):
            continue
        times = events["time_s"].to_numpy(dtype=float)
        bad = (~events["good"]).to_numpy(dtype=int)
        limit = slo.error_budget
        for w in windows:
            n_l, b_l = _window_counts(times, bad, grid, w.long_s)
            n_s, b_s = _window_counts(times, bad, grid, w.short_s)
            with np.errstate(invalid="ignore", divide="ignore"):
                burn_l = np.where(n_l > 0, b_l / np.maximum(n_l, 1) / limit, 0.0)
                burn_s = np.where(n_s > 0, b_s / np.maximum(n_s, 1) / limit, 0.0)
            firing = (burn_l > w.factor) & (burn_s > w.factor)
            rb = slo.runbook
            rows += _intervals(
                _alert_name(slo, w),
                firing,
                grid,
                step_s,
                {
                    "severity": w.severity,
                    "slo": slo.name,
                    "runbook": rb,
                    "runbook_url": runbook_url(rb, runbook_base_url) if rb else None,
                },
                burn_l,
            )
    if ev_frame is not None and len(ev_frame):
        for ea in event_alerts:
            sel = ev_frame[ev_frame["event"] == ea.event]
            if not len(sel):
                continue
            times = np.sort(sel["time_s"].to_numpy(dtype=float))
            n, _ = _window_counts(times, np.zeros(len(times), dtype=int), grid, ea.window_s)
            rows += _intervals(
                ea.name,
                n > ea.threshold,
                grid,
                step_s,
                {
                    "severity": ea.severity,
                    "slo": None,
                    "runbook": ea.runbook,
                    "runbook_url": runbook_url(ea.runbook, runbook_base_url),
                },
                n.astype(float),
            )
    frame = pd.DataFrame(rows, columns=cols)
    return frame.sort_values(["fired_at_s", "alert"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Prometheus rules
# --------------------------------------------------------------------------------------------------


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _alert_name(slo: SLO, w: BurnWindow) -> str:
    return f"{_camel(slo.name)}ErrorBudgetBurn{w.long}"


def _fmt(x: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(x)


def _matchers(slo: SLO, *extra: str) -> str:
    parts = list(extra)
    if slo.agent is not None:
        parts.append(f'agent="{slo.agent}"')
    return "{" + ",".join(parts) + "}" if parts else ""


def _error_ratio_expr(slo: SLO, window: str) -> str:
    """PromQL for the fraction of bad events of ``slo`` over ``window``."""
    if slo.kind in ("availability", "error_rate"):
        metric = "ag2_agent_turns_total" if slo.kind == "availability" else "ag2_llm_calls_total"
        errors = _matchers(slo, 'outcome="error"')
        bad = f"sum(rate({metric}{errors}[{window}]))"
        total = f"sum(rate({metric}{_matchers(slo)}[{window}]))"
        return f"{bad} / {total}"
    if slo.kind == "latency":
        base, sel = "ag2_agent_turn_duration_seconds", ('outcome="success"',)
    else:
        base, sel = "agentops_request_cost_usd", ()
    le = f'le="{_fmt(float(slo.threshold))}"'  # type: ignore[arg-type]
    total = f"sum(rate({base}_count{_matchers(slo, *sel)}[{window}]))"
    good = f"sum(rate({base}_bucket{_matchers(slo, *sel, le)}[{window}]))"
    return f"({total} - {good}) / {total}"


def _record_name(window: str) -> str:
    return f"agentops_slo:error_ratio:rate{window}"


def alert_rules(
    slos: Iterable[SLO] = DEFAULT_SLOS,
    *,
    windows: Sequence[BurnWindow] = DEFAULT_BURN_WINDOWS,
    event_alerts: Sequence[EventAlert] = DEFAULT_EVENT_ALERTS,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
    interval: str = "30s",
) -> dict[str, Any]:
    """A Prometheus rule group (as a dict ready for YAML): recording rules, then burn-rate alerts.

    One recording rule per SLO and window (``agentops_slo:error_ratio:rate5m{slo="availability"}``),
    then per SLO one alert per :class:`BurnWindow` named like ``AvailabilityErrorBudgetBurn1h`` with
    labels ``severity``, ``slo``, ``long_window``, ``short_window`` and annotations ``summary``,
    ``description`` and ``runbook_url``, and one alert per :class:`EventAlert`.

    Raises:
        ConfigError: two SLOs share a name, or an SLO has no runbook.
    """
    slos = list(slos)
    names = [s.name for s in slos]
    if len(set(names)) != len(names):
        raise ConfigError(f"SLO names must be unique, got {names}")
    missing = [s.name for s in slos if not s.runbook]
    if missing:
        raise ConfigError(f"SLO(s) {missing} have no runbook; every alert must link one (set runbook='...')")
    parse_duration(interval)
    durations = sorted({d for w in windows for d in (w.long, w.short)}, key=parse_duration)
    records = [
        {"record": _record_name(d), "expr": _error_ratio_expr(s, d), "labels": {"slo": s.name}}
        for s in slos
        for d in durations
    ]
    alerts: list[dict[str, Any]] = []
    for s in slos:
        for w in windows:
            limit = _fmt(round(w.factor * s.error_budget, 12))
            alerts.append(
                {
                    "alert": _alert_name(s, w),
                    "expr": (
                        f'{_record_name(w.long)}{{slo="{s.name}"}} > {limit} '
                        f'and {_record_name(w.short)}{{slo="{s.name}"}} > {limit}'
                    ),
                    "labels": {
                        "severity": w.severity,
                        "slo": s.name,
                        "long_window": w.long,
                        "short_window": w.short,
                    },
                    "annotations": {
                        "summary": f"SLO {s.name}: error budget burning {w.factor:g}x too fast over {w.long}",
                        "description": (
                            f"{s.objective()}. Bad-event ratio over {w.long} is "
                            "{{ $value | humanizePercentage }} (limit "
                            + f"{w.factor:g} x {s.error_budget:.4g})."
                        ),
                        "runbook_url": runbook_url(s.runbook, runbook_base_url),  # type: ignore[arg-type]
                    },
                }
            )
    for ea in event_alerts:
        alerts.append(
            {
                "alert": ea.name,
                "expr": f"sum(increase({ea.metric}[{ea.window}])) > {_fmt(ea.threshold)}",
                "labels": {"severity": ea.severity},
                "annotations": {
                    "summary": ea.summary,
                    "description": f"{{{{ $value }}}} {ea.event} events in the last {ea.window}.",
                    "runbook_url": runbook_url(ea.runbook, runbook_base_url),
                },
            }
        )
    # One group: Prometheus evaluates a group's rules in order, so every alert reads error ratios
    # recorded in the same evaluation (separate groups run independently and could lag one interval).
    return {"groups": [{"name": "agentops-slo", "interval": interval, "rules": [*records, *alerts]}]}


def rules_yaml(slos: Iterable[SLO] = DEFAULT_SLOS, **kwargs: Any) -> str:
    """:func:`alert_rules` rendered as YAML text (a Prometheus ``rule_files`` entry)."""
    import yaml

    return yaml.safe_dump(alert_rules(slos, **kwargs), sort_keys=False, width=200)


def write_rules(path: str | Path, slos: Iterable[SLO] = DEFAULT_SLOS, **kwargs: Any) -> Path:
    """Write :func:`rules_yaml` to ``path`` atomically (temp file, then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = rules_yaml(slos, **kwargs)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _promtool(*args: str) -> str:
    exe = shutil.which("promtool")
    if exe is None:
        raise MissingDependencyError(
            "promtool is not installed: `sudo apt-get install prometheus` (Debian/Ubuntu) "
            "or `make system-deps`"
        )
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise PromtoolError(f"promtool {' '.join(args[:2])} failed (exit {proc.returncode}):\n{output}")
    return output


def promtool_check(path: str | Path) -> str:
    """Run ``promtool check rules`` on a rule file; returns its output, raises :class:`PromtoolError`."""
    return _promtool("check", "rules", str(path))


def promtool_test(path: str | Path) -> str:
    """Run ``promtool test rules`` on a unit-test file; returns its output, raises :class:`PromtoolError`."""
    return _promtool("test", "rules", str(path))
