"""A Gantt chart of a workflow run: stages on a time axis, parallel stages overlapping."""

from __future__ import annotations

from typing import Any

from agentops import _identity  # noqa: F401
from agentops.workflows.results import WorkflowRun

__all__ = ["plot_gantt"]

_COLORS = {
    "completed": "#31a354",
    "failed": "#de2d26",
    "rejected": "#fd8d3c",
    "stopped": "#fd8d3c",
    "aborted": "#de2d26",
    "skipped": "#bdbdbd",
}


def plot_gantt(run: WorkflowRun, ax: Any = None, title: str | None = None) -> Any:
    """Stages as horizontal bars on a time axis (seconds since the run started); parallel stages
    overlap. A stage stopped at its gate is marked ✕ where the run ended; skipped stages have no bar.
    Returns the matplotlib ``Axes``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.5 * len(run.stages) + 1.2))
    labels = []
    last_end = max((r.end_s for r in run.stages if r.end_s is not None), default=0.0)
    for i, r in enumerate(run.stages):
        labels.append(r.stage + (f"  [group {r.group}]" if r.group is not None else ""))
        if r.start_s is not None and r.end_s is not None:
            ax.barh(
                i,
                max(r.end_s - r.start_s, 1e-3),
                left=r.start_s,
                color=_COLORS.get(r.status, "#6baed6"),
                edgecolor="#333333",
            )
        elif r.status != "skipped":
            ax.plot([last_end], [i], marker="x", markersize=10, color=_COLORS.get(r.status, "#333333"))
    ax.set_yticks(range(len(run.stages)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the workflow started")
    ax.set_title(title or f"{run.template} ({run.status})")
    present = sorted({r.status for r in run.stages})
    ax.legend(  # below the axes, so it never hides a bar
        handles=[Patch(color=_COLORS.get(s, "#6baed6"), label=s) for s in present],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.22),
        ncol=max(len(present), 1),
        fontsize=8,
        frameon=False,
    )
    ax.grid(axis="x", alpha=0.3)
    return ax
