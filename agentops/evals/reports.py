"""Reports a person reads: markdown (for a pull request), standalone HTML, and the judge-score histogram.

Every function here copes with what a real provider can produce: cases whose cost is unknown (an
unpriced model, shown as ``unpriced``), and runs where the judge produced no score at all (every
verdict a judge error) — the histogram then says so on the figure instead of failing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentops.evals.assertions import _short
from agentops.evals.cases import RUBRIC

if TYPE_CHECKING:
    from agentops.evals.results import EvalRun

__all__ = ["score_histogram", "to_html", "to_markdown"]


def _money(value: float | None, tokens: int | None, digits: int) -> str:
    if value is None:
        return "unpriced" if tokens else ""
    return f"{value:.{digits}f}"


def _cost_line(t: Mapping[str, Any]) -> str:
    unpriced = f" ({t['unpriced']} case(s) unpriced)" if t.get("unpriced") else ""
    return f"cost ${t['cost_usd']:.4f}{unpriced}"


def to_markdown(run: EvalRun, *, max_output: int = 60) -> str:
    """A markdown report: totals, pass rate by tag, and one row per case with its failures."""
    t = run.totals()
    title = f"# Eval report: {run.suite_name}" + (f" ({run.label})" if run.label else "")
    lines = [
        title,
        "",
        f"**{t['passed']}/{t['cases']} passed ({t['pass_rate']:.1%})** · tokens {t['tokens']} · "
        f"{_cost_line(t)} · errors {t['errors']} · judge errors {t['judge_errors']} · "
        f"critical failures {t['critical_failures']}",
        "",
        "## Pass rate by tag",
        "",
        "| tag | cases | passed | pass rate |",
        "|---|---:|---:|---:|",
    ]
    for tag, row in run.pass_rate_by_tag().iterrows():
        lines.append(f"| {tag} | {int(row['cases'])} | {int(row['passed'])} | {row['pass_rate']:.0%} |")
    lines += [
        "",
        "## Cases",
        "",
        "| case | status | critical | judge | tokens | cost ($) | output | failures |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for c in run.cases:
        overall = c.judge.scores.get("overall") if c.judge else None
        cells = [
            c.case_id,
            c.status,
            "yes" if c.critical else "",
            "" if overall is None else f"{overall:.1f}",
            "" if c.total_tokens is None else str(c.total_tokens),
            _money(c.cost_usd, c.total_tokens, 6),
            _short(c.output, max_output),
            "; ".join(c.failures),
        ]
        lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def to_html(run: EvalRun) -> str:
    """A standalone HTML report with the same content as :func:`to_markdown`."""
    t = run.totals()
    frame = run.frame().drop(columns=["latency_s"])
    style = (
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.fail{background:#fde2e2}</style>"
    )
    rows = []
    for cid, r in frame.iterrows():
        cls = "" if r["passed"] else ' class="fail"'
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in [cid, *r.tolist()])
        rows.append(f"<tr{cls}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["case", *frame.columns])
    name = html.escape(run.suite_name)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Eval report: {name}</title>{style}"
        f"</head><body><h1>Eval report: {name}</h1>"
        f"<p><b>{t['passed']}/{t['cases']} passed ({t['pass_rate']:.1%})</b> · {html.escape(_cost_line(t))}</p>"
        f"<h2>Pass rate by tag</h2>{run.pass_rate_by_tag().to_html()}"
        f"<h2>Cases</h2><table><tr>{head}</tr>{''.join(rows)}</table></body></html>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def score_histogram(runs: Mapping[str, EvalRun], ax: Any, *, dimension: str = "overall") -> Any:
    """Draw the judge's ``dimension`` scores (0–10) of each run as a histogram on ``ax``.

    Cases without a score (judge errors) are left out and counted in the legend; when no run has a
    single score the axes say so instead of raising. Returns ``ax``.
    """
    if dimension not in RUBRIC:
        from agentops.evals.errors import UnknownKeyError

        raise UnknownKeyError(f"unknown rubric dimension {dimension!r}; valid: {', '.join(RUBRIC)}")
    series, labels = [], []
    for name, run in runs.items():
        scores = run.judge_frame()[dimension]
        kept = scores.dropna()
        series.append(kept.tolist())
        missing = len(scores) - len(kept)
        labels.append(f"{name} ({missing} unscored)" if missing else name)
    ax.set(title=f"Judge {dimension} score (graded cases)", xlabel="score (0-10)", ylabel="cases", xlim=(0, 11))
    if not any(series):
        ax.text(
            0.5,
            0.5,
            "no judge scores\n(every verdict was a judge error)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return ax
    from matplotlib.ticker import MaxNLocator

    ax.hist(series, bins=range(0, 12), label=labels)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of cases
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax
