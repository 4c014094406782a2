"""What a workflow run returns: one :class:`StageRecord` per stage and the :class:`WorkflowRun`.

Times are seconds since the run started. A stage that never ran (skipped after a failure, a
rejection or a stop) has ``start_s``/``end_s``/``duration_s`` of ``None``, and every timing helper
here accepts that: a real model can stop a run anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, RefusalError
from agentops.workflows.template import WorkflowError

__all__ = ["STATUSES", "GroupTiming", "StageFailed", "StageRecord", "WorkflowRejected", "WorkflowRun"]

STATUSES = ("completed", "failed", "rejected", "stopped", "aborted", "skipped")


class StageFailed(AgentOpsError):
    """A stage kept failing after its retries; names the stage, the attempts and the last cause."""


class WorkflowRejected(RefusalError):
    """The workflow stopped at an approval gate or an escalation (a refusal: never retried)."""


@dataclass
class StageRecord:
    """What happened to one stage in one run (times are seconds since the run started).

    ``cost_usd`` is ``None`` when a call of the stage used a model without a known price (its tokens
    are still counted; see :mod:`agentops.usage`).
    """

    stage: str
    group: int | None
    status: str = "skipped"
    attempts: int = 0
    start_s: float | None = None
    end_s: float | None = None
    tokens: int = 0
    cost_usd: float | None = 0.0
    model: str = ""
    approval: str = ""
    output: str = ""
    error: str = ""

    @property
    def duration_s(self) -> float | None:
        """End minus start (``None`` if the stage never ran)."""
        if self.start_s is None or self.end_s is None:
            return None
        return self.end_s - self.start_s


@dataclass(frozen=True)
class GroupTiming:
    """How a set of stages shared the clock (see :meth:`WorkflowRun.group_timing`).

    Attributes:
        durations: stage → seconds, ``None`` for a stage that never ran.
        wall_s: first start to last end over the stages that ran (``None`` if none ran).
        sum_s: the durations added up (what running them one at a time would take).
        overlapped: every stage that ran started before any of them ended (needs two or more).
    """

    durations: dict[str, float | None]
    wall_s: float | None
    sum_s: float
    overlapped: bool

    def __str__(self) -> str:
        if self.wall_s is None:
            return "no stage of the group ran"
        ran = sum(d is not None for d in self.durations.values())
        return (
            f"group wall time ⏱ {self.wall_s:.2f} s  vs  sum of stages ⏱ {self.sum_s:.2f} s "
            f"({ran} of {len(self.durations)} ran; overlapping: {self.overlapped})"
        )


@dataclass
class WorkflowRun:
    """The outcome of :func:`~agentops.workflows.run_workflow`.

    Attributes:
        status: ``completed``, ``failed``, ``rejected`` (an approval said no or timed out),
            ``stopped`` (an escalation's review said no) or ``aborted``.
        reason: why it did not complete (names the stage and the cause).
        stages: one :class:`StageRecord` per stage, in template order.
        outputs: stage name → output text, for completed stages.
        tokens: over every model call, including failed attempts.
        cost_usd: USD over every model call, or ``None`` when a call used an unpriced model.
        escalations: this run's rows of the escalation log.
        unpriced_calls: model calls whose model has no known price.
    """

    run_id: str
    template: str
    request: str
    params: dict[str, str]
    status: str
    reason: str
    stages: list[StageRecord]
    outputs: dict[str, str]
    tokens: int
    cost_usd: float | None
    elapsed_s: float
    escalations: Any = None
    unpriced_calls: int = 0
    _failure: BaseException | None = field(default=None, repr=False)

    def frame(self, timings: bool = False) -> Any:
        """Stages as a DataFrame; ``timings=True`` adds start/end/duration (volatile: wall clock;
        empty for stages that never ran)."""
        import pandas as pd

        rows = []
        for r in self.stages:
            row = {
                "stage": r.stage,
                "group": "—" if r.group is None else r.group,
                "status": r.status,
                "attempts": r.attempts,
                "approval": r.approval or "—",
                "model": r.model,
                "tokens": r.tokens,
                "cost_usd": None if r.cost_usd is None else round(r.cost_usd, 6),
            }
            if timings:
                row.update(start_s=r.start_s, end_s=r.end_s, duration_s=r.duration_s)
            rows.append(row)
        return pd.DataFrame(rows).set_index("stage")

    def record(self, stage: str) -> StageRecord:
        """The record of one stage (raises :class:`WorkflowError` for an unknown name)."""
        for r in self.stages:
            if r.stage == stage:
                return r
        raise WorkflowError(f"no stage named {stage!r} in this run; stages: {[r.stage for r in self.stages]}")

    def group_timing(self, stages: Iterable[str]) -> GroupTiming:
        """Wall time vs summed time of some stages (e.g. a parallel group); stages that never ran are
        reported as ``None`` and left out of the totals."""
        records = [self.record(n) for n in stages]
        ran = [r for r in records if r.start_s is not None and r.end_s is not None]
        wall = max(r.end_s for r in ran) - min(r.start_s for r in ran) if ran else None  # type: ignore[operator,type-var]
        overlapped = len(ran) > 1 and max(r.start_s for r in ran) < min(r.end_s for r in ran)  # type: ignore[operator,type-var]
        return GroupTiming(
            durations={r.stage: r.duration_s for r in records},
            wall_s=wall,
            sum_s=sum(r.duration_s or 0.0 for r in ran),
            overlapped=overlapped,
        )

    def raise_for_status(self) -> WorkflowRun:
        """Raise :class:`StageFailed` / :class:`WorkflowRejected` unless the run completed; return self."""
        if self.status == "completed":
            return self
        if self.status == "failed":
            raise StageFailed(self.reason) from self._failure
        raise WorkflowRejected(f"workflow {self.template!r} {self.status}: {self.reason}")
