"""SLIs from the trace store: good and bad events, error budgets, burn rates and an alert replay.

Every function takes a :class:`~agentops.telemetry.TraceStore` (or a DataFrame of its turns or model
calls) and evaluates exactly what the generated Prometheus rules ask Prometheus to evaluate, so a
recorded period can be replayed before the rules go live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentops.errors import ConfigError
from agentops.slo.objectives import (
    DEFAULT_BURN_WINDOWS,
    DEFAULT_EVENT_ALERTS,
    DEFAULT_RUNBOOK_BASE_URL,
    SLO,
    BurnWindow,
    EventAlert,
    alert_name,
    parse_duration,
    runbook_url,
)

__all__ = ["SLOReport", "alert_timeline", "burn_rates", "evaluate", "sli_events", "slo_table"]


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
    out = pd.DataFrame({"time_s": frame["time_s"].astype(float).to_numpy(), "good": good.to_numpy(dtype=bool)})
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
    grid = _grid(times[0] if start is None else start, times[-1] if end is None else end, parse_duration(step))
    out = {"time_s": grid}
    for w in windows:
        n, b = _window_counts(times, bad, grid, parse_duration(w))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[w] = np.where(n > 0, b / np.maximum(n, 1) / slo.error_budget, np.nan)
    return pd.DataFrame(out)


def _intervals(alert: str, firing: Any, grid: Any, step_s: float, extra: dict[str, Any], peak: Any) -> list[dict]:
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


def _burn_alert_rows(
    slo: SLO, events: Any, windows: Sequence[BurnWindow], grid: Any, step_s: float, base_url: str
) -> list[dict[str, Any]]:
    """Firing intervals of the burn-rate alerts of one SLO (both windows above the factor)."""
    import numpy as np

    times = events["time_s"].to_numpy(dtype=float)
    bad = (~events["good"]).to_numpy(dtype=int)
    rb = slo.runbook
    extra = {
        "slo": slo.name,
        "runbook": rb,
        "runbook_url": runbook_url(rb, base_url) if rb else None,
    }
    rows: list[dict[str, Any]] = []
    for w in windows:
        n_l, b_l = _window_counts(times, bad, grid, w.long_s)
        n_s, b_s = _window_counts(times, bad, grid, w.short_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            burn_l = np.where(n_l > 0, b_l / np.maximum(n_l, 1) / slo.error_budget, 0.0)
            burn_s = np.where(n_s > 0, b_s / np.maximum(n_s, 1) / slo.error_budget, 0.0)
        firing = (burn_l > w.factor) & (burn_s > w.factor)
        rows += _intervals(alert_name(slo, w), firing, grid, step_s, {"severity": w.severity, **extra}, burn_l)
    return rows


def _event_alert_rows(
    ev_frame: Any, event_alerts: Sequence[EventAlert], grid: Any, step_s: float, base_url: str
) -> list[dict[str, Any]]:
    """Firing intervals of the event alerts (more than ``threshold`` events in the window)."""
    import numpy as np

    rows: list[dict[str, Any]] = []
    for ea in event_alerts:
        sel = ev_frame[ev_frame["event"] == ea.event]
        if not len(sel):
            continue
        times = np.sort(sel["time_s"].to_numpy(dtype=float))
        n, _ = _window_counts(times, np.zeros(len(times), dtype=int), grid, ea.window_s)
        extra = {
            "severity": ea.severity,
            "slo": None,
            "runbook": ea.runbook,
            "runbook_url": runbook_url(ea.runbook, base_url),
        }
        rows += _intervals(ea.name, n > ea.threshold, grid, step_s, extra, n.astype(float))
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

    Evaluates every ``step`` exactly what :func:`~agentops.slo.alert_rules` asks Prometheus to
    evaluate: a burn-rate alert fires while the bad ratio exceeds ``factor × (1 - target)`` over both
    its long and short window; an event alert while more than ``threshold`` events fall in its window.
    Returns one row per firing interval: ``alert, severity, slo, fired_at_s, resolved_at_s, peak,
    runbook, runbook_url`` (``peak`` is the highest long-window burn rate, or event count).
    ``resolved_at_s`` is ``None`` if still firing at ``end``.
    """
    import pandas as pd

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
        if len(events):
            rows += _burn_alert_rows(slo, events, windows, grid, step_s, runbook_base_url)
    if ev_frame is not None and len(ev_frame):
        rows += _event_alert_rows(ev_frame, event_alerts, grid, step_s, runbook_base_url)
    frame = pd.DataFrame(rows, columns=cols)
    return frame.sort_values(["fired_at_s", "alert"], kind="stable").reset_index(drop=True)
