"""The shipped Grafana dashboard and the PromQL helpers that check it against the live exporter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["dashboard_queries", "grafana_dashboard", "promql_metric_names"]


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
        ['x_bucket', 'y_total']
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
