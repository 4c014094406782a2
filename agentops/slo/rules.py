"""Prometheus rules for the SLOs (recording rules, multi-window burn-rate alerts, event alerts) and
``promtool`` checks of the generated files."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentops.config import check_unique
from agentops.errors import AgentOpsError, ConfigError, MissingDependencyError
from agentops.slo.objectives import (
    DEFAULT_BURN_WINDOWS,
    DEFAULT_EVENT_ALERTS,
    DEFAULT_RUNBOOK_BASE_URL,
    DEFAULT_SLOS,
    SLO,
    BurnWindow,
    EventAlert,
    alert_name,
    parse_duration,
    runbook_url,
)

__all__ = ["PromtoolError", "alert_rules", "promtool_check", "promtool_test", "rules_yaml", "write_rules"]


class PromtoolError(AgentOpsError):
    """``promtool`` rejected a rule or test file; the message carries its output."""


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


def _burn_alert(s: SLO, w: BurnWindow, base_url: str) -> dict[str, Any]:
    """The burn-rate alert of SLO ``s`` over window pair ``w``."""
    limit = _fmt(round(w.factor * s.error_budget, 12))
    return {
        "alert": alert_name(s, w),
        "expr": (
            f'{_record_name(w.long)}{{slo="{s.name}"}} > {limit} '
            f'and {_record_name(w.short)}{{slo="{s.name}"}} > {limit}'
        ),
        "labels": {"severity": w.severity, "slo": s.name, "long_window": w.long, "short_window": w.short},
        "annotations": {
            "summary": f"SLO {s.name}: error budget burning {w.factor:g}x too fast over {w.long}",
            "description": (
                f"{s.objective()}. Bad-event ratio over {w.long} is "
                "{{ $value | humanizePercentage }} (limit " + f"{w.factor:g} x {s.error_budget:.4g})."
            ),
            "runbook_url": runbook_url(s.runbook, base_url),  # type: ignore[arg-type]
        },
    }


def _event_alert(ea: EventAlert, base_url: str) -> dict[str, Any]:
    """The threshold alert of one observability-hook event."""
    return {
        "alert": ea.name,
        "expr": f"sum(increase({ea.metric}[{ea.window}])) > {_fmt(ea.threshold)}",
        "labels": {"severity": ea.severity},
        "annotations": {
            "summary": ea.summary,
            "description": f"{{{{ $value }}}} {ea.event} events in the last {ea.window}.",
            "runbook_url": runbook_url(ea.runbook, base_url),
        },
    }


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
    check_unique([s.name for s in slos], "SLO names")
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
    alerts = [_burn_alert(s, w, runbook_base_url) for s in slos for w in windows]
    alerts += [_event_alert(ea, runbook_base_url) for ea in event_alerts]
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
            "promtool is not installed: `sudo apt-get install prometheus` (Debian/Ubuntu) or `make system-deps`"
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
