"""Escalation contexts tell failed calls from unusable answers: ``errors`` and ``malformed`` both reach the rules."""

from __future__ import annotations

from agentops.escalation import EscalationEngine, EscalationRule, RunContext
from agentops.graph import Role, RoleGraph
from agentops.graph._turns import RunState
from agentops.usage import UsageMeter
from agentops.workflows.runner import _totals


def _meter(calls: int, errors: int, malformed: int) -> UsageMeter:
    meter = UsageMeter("offline")
    meter.calls, meter.errors, meter.malformed_calls = calls, errors, malformed
    return meter


def test_run_context_defaults_to_no_malformed_answers() -> None:
    assert RunContext().malformed == 0


async def test_a_graph_gate_passes_booked_and_pending_malformed_answers_to_the_rules() -> None:
    seen: list[RunContext] = []
    engine = EscalationEngine(rules=[EscalationRule("spy", lambda ctx: bool(seen.append(ctx)))])
    roles = [Role("router", "You route."), Role("billing", "You bill."), Role("escalation", "You hand over.")]
    graph = RoleGraph(roles, {"router": ["billing", "escalation"]})
    state = RunState(graph, "r1", "refund please", engine, [], {})
    state.end(state.begin("router"), _meter(calls=3, errors=1, malformed=2))
    await state.gate("billing", "text", pending=_meter(calls=1, errors=0, malformed=1))
    assert (seen[-1].calls, seen[-1].errors, seen[-1].malformed) == (4, 1, 3)


def test_workflow_totals_add_up_malformed_answers_apart_from_errors() -> None:
    totals = _totals([_meter(2, 1, 0), _meter(3, 0, 2)])
    assert (totals.calls, totals.errors, totals.malformed) == (5, 1, 2)
