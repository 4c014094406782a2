"""Role graphs: declaration errors, enforced edges, the router contract, transcripts and drawing."""

from __future__ import annotations

import asyncio
import json
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from ag2.middleware import BaseMiddleware, Middleware
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.errors import AgentOpsError, ConfigError, TimeLimitExceeded, is_retryable
from agentops.escalation import (
    EscalationEngine,
    EscalationRule,
    ScriptedApprover,
    cost_over,
    low_confidence,
)
from agentops.graph import (
    MAX_REFUSALS,
    GraphError,
    Role,
    RoleGraph,
    RouteDecision,
    RouteParseError,
    UsageMeter,
    draw_graph,
    extra_middleware,
    network_quiet,
    parse_route,
    runs_frame,
)
from agentops.models import OfflineModel, Reply, ToolCall, rule
from agentops.pricing import cost
from agentops.testing import SlowModel

ROLES = [
    Role("router", "You route support requests."),
    Role("billing", "You are billing support.", description="payments and refunds"),
    Role("tech", "You are tech support.", description="bugs and crashes"),
    Role("reviewer", "You are the reviewer."),
    Role("admin", "You are the admin."),
    Role("escalation", "You hand the case to a person."),
]
EDGES = {
    "router": ["billing", "tech", "escalation"],
    "billing": ["escalation"],
    "tech": ["reviewer", "escalation"],
    "reviewer": ["admin"],
}


def _route(p):
    if p.mentions("refund", "charged"):
        return json.dumps({"route": "billing", "reason": "payment question", "confidence": 0.92})
    if p.mentions("crash"):
        return 'Sure! ```json\n{"route": "tech", "reason": "bug report", "confidence": 0.88}\n```'
    if p.mentions("admin"):
        return json.dumps({"route": "admin", "reason": "needs admin", "confidence": 0.9})
    if p.mentions("ghost"):
        return json.dumps({"route": "ghost", "reason": "?", "confidence": 0.9})
    if p.mentions("garbled"):
        return "I think billing maybe?"
    return json.dumps({"route": "tech", "reason": "unsure", "confidence": 0.3})


def _call(name, **args):
    return lambda p: Reply(tool_calls=(ToolCall(name, args),))


def make_model(model="offline-1", **kw):
    m = OfflineModel(model, seed=0, **kw)
    m.add_rule(rule("router", _route, system_contains="You route"))
    m.add_rule(
        rule(
            "billing grabs admin",
            _call("handoff", to="admin", reason="needs refund rights"),
            system_contains="billing support",
            when=lambda p: not p.after_tools,
        )
    )
    m.add_rule(
        rule(
            "tech to reviewer",
            _call("handoff", to="reviewer", reason="check the fix"),
            system_contains="tech support",
            when=lambda p: not p.after_tools,
        )
    )
    m.add_rule(
        rule(
            "reviewer finishes",
            _call("finish", summary="fix approved"),
            system_contains="the reviewer",
            when=lambda p: not p.after_tools,
        )
    )
    return m


@pytest.fixture()
def graph():
    return RoleGraph(ROLES, EDGES, name="desk")


# -- declaration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "edges", "kwargs", "match"),
    [
        (ROLES, {**EDGES, "billing": ["nobody"]}, {}, "undefined role 'nobody'"),
        (ROLES, {**EDGES, "ghost": ["billing"]}, {}, "undefined role 'ghost'"),
        (ROLES, EDGES, {"router": "dispatcher"}, "router role 'dispatcher' is not defined"),
        (ROLES, EDGES, {"escalation": "humans"}, "escalation role 'humans' is not defined"),
        ([*ROLES, Role("billing", "again")], EDGES, {}, "role names must be unique; duplicated: 'billing'"),
        ([*ROLES, Role("orphan", "x")], EDGES, {}, r"\['orphan'\] cannot be reached"),
        (
            ROLES,
            {**EDGES, "router": ["billing", "tech"]},
            {},
            "must be allowed to hand off to the escalation",
        ),
        (ROLES, {**EDGES, "tech": ["tech"]}, {}, "self-loop"),
        (ROLES, {**EDGES, "tech": "reviewer"}, {}, "must be a list"),
        (ROLES, [("router", "billing", "x")], {}, "pair"),
        ([], EDGES, {}, "at least"),
        (ROLES, EDGES, {"max_turns": 1}, "max_turns"),
        (ROLES, EDGES, {"escalation": "router"}, "must be different"),
    ],
)
def test_declaration_errors(roles, edges, kwargs, match):
    with pytest.raises(GraphError, match=match):
        RoleGraph(roles, edges, **kwargs)


def test_router_takes_no_tools():
    roles = [Role("router", "r", tools=(lambda: 1,)), Role("escalation", "e")]
    with pytest.raises(GraphError, match="takes no tools"):
        RoleGraph(roles, {"router": ["escalation"]})


@pytest.mark.parametrize("name", ["Billing", "1st", "has space", "user", ""])
def test_role_names_are_checked(name):
    with pytest.raises(ConfigError, match=r"invalid Role: name: role name .* (must be lowercase|pick another)"):
        Role(name, "x")


def test_role_with_an_unknown_field_names_it():
    with pytest.raises(ConfigError, match="invalid Role: prompt: unknown field"):
        Role("billing", "x", prompt="typo for instructions")


def test_route_decision_built_directly_raises_config_error():
    with pytest.raises(ConfigError, match="confidence"):
        RouteDecision(route="billing", confidence=1.5)
    assert RouteDecision(route=" Billing ", confidence=0.5, extra="ignored").route == "billing"


def test_edges_as_pairs_and_introspection(graph):
    g = RoleGraph(ROLES, [(s, d) for s, ds in EDGES.items() for d in ds])
    assert set(g.edges) == set(graph.edges)
    assert graph.allowed("tech") == ("reviewer", "escalation")
    assert graph.is_allowed("router", "billing") and not graph.is_allowed("billing", "admin")
    with pytest.raises(GraphError, match="unknown role"):
        graph.allowed("ghost")
    frame = graph.frame()
    assert frame.loc["router", "kind"] == "router" and frame.loc["admin", "may hand off to"] == "—"
    schema = graph.route_schema.model_json_schema()
    assert schema["properties"]["route"]["enum"] == ["billing", "tech", "escalation"]
    assert "- billing: payments and refunds" in graph.router_prompt()


# -- router parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"route": "billing", "reason": "r", "confidence": 0.9}',
        'Here you go: {"route": "Billing", "reason": "r", "confidence": 0.9} hope it helps',
        '```json\n{"route": "billing", "reason": "r", "confidence": 0.9}\n```',
        '{"note": 1} then {"route": "billing", "reason": "r", "confidence": 0.9}',
        "{'route': 'billing', 'reason': 'r', 'confidence': 0.9}",  # a Python-literal answer
    ],
)
def test_parse_route_tolerates_prose_and_fences(text):
    assert parse_route(text, ["billing"]) == RouteDecision(route="billing", reason="r", confidence=0.9)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no text"),
        ("billing please", "no JSON object"),
        ('{"route": "billing", "reason": "r", "confidence": 1.7}', "confidence"),
        ('{"route": "billing", "reason": "r"', "cut off before its end .*raise max_tokens"),
        ('{"route": "sales", "reason": "r", "confidence": 0.5}', "not one of"),
    ],
)
def test_parse_route_rejects(text, match):
    with pytest.raises(RouteParseError, match=match) as caught:
        parse_route(text, ["billing", "tech"])
    assert is_retryable(caught.value)  # malformed model output: asking again may help


@settings(max_examples=60, deadline=None)
@given(
    route=st.sampled_from(["billing", "tech", "escalation"]),
    confidence=st.floats(0, 1),
    prefix=st.text(alphabet="abc .,:\n", max_size=30),
    suffix=st.text(alphabet="abc .,:\n}", max_size=30),
    fenced=st.booleans(),
)
def test_parse_route_round_trips(route, confidence, prefix, suffix, fenced):
    payload = json.dumps({"route": route, "reason": "why", "confidence": confidence})
    text = f"{prefix}```json\n{payload}\n```{suffix}" if fenced else f"{prefix}{payload}{suffix}"
    decision = parse_route(text, ["billing", "tech", "escalation"])
    assert decision.route == route and decision.confidence == confidence


# -- runs ---------------------------------------------------------------------------------------------


async def test_route_handoff_finish_and_transcript(graph):
    model = make_model()
    run = await graph.run("My app crash on login", model=model)
    assert run.status == "finished"
    assert run.path == ("router", "tech", "reviewer")
    t = run.transcript
    assert list(t.columns) == ["role", "action", "target", "tokens", "cost", "detail"]
    assert list(t["role"]) == ["user", "router", "tech", "reviewer"]
    assert list(t["action"]) == ["request", "route", "handoff", "finish"]
    assert list(t["target"]) == ["router", "tech", "reviewer", ""]
    # tokens and cost come from the model's own usage, priced by agentops.pricing
    assert run.tokens == int(model.usage.total_tokens) == t["tokens"].sum()
    assert run.cost_usd == pytest.approx(cost(model.usage, "offline-1"))
    assert run.route.route == "tech" and run.route.confidence == 0.88
    assert not any(len(str(v)) == 32 and str(v).isalnum() for v in t.to_numpy().ravel())  # no agent ids


async def test_illegal_handoff_is_refused_and_target_never_speaks(graph):
    model = make_model()
    events = []
    run = await graph.run(
        "I was charged twice, refund please", model=model, listeners=[lambda e, p: events.append((e, p))]
    )
    assert "admin" not in run.path
    assert run.path == ("router", "billing")
    assert run.refusals == ({"from": "billing", "to": "admin", "reason": "'billing' may not hand off to 'admin'"},)
    assert events == [("handoff.refused", {"from": "billing", "to": "admin", "reason": run.refusals[0]["reason"]})]
    refused = run.transcript[run.transcript["action"] == "handoff.refused"]
    assert list(refused["role"]) == ["billing"] and list(refused["target"]) == ["admin"]
    # the model read the refusal as a tool result (not a traceback) and no admin prompt was ever built
    assert "REFUSED" in run.answer and "Traceback" not in run.answer
    assert model.calls_frame()["rule"].tolist().count("billing grabs admin") == 1
    assert run.status == "answered"


async def test_unknown_handoff_target_is_refused_and_a_looping_model_is_cut_off():
    m = make_model()
    # this rule never stops calling the tool: the turn is ended after MAX_REFUSALS refusals
    m.add_rule(rule("tech to nowhere", _call("handoff", to="nowhere"), system_contains="tech support"), first=True)
    run = await RoleGraph(ROLES, EDGES).run("crash", model=m, timeout_s=10)
    assert run.refusals[0]["to"] == "nowhere" and "no role named" in run.refusals[0]["reason"]
    assert len(run.refusals) == MAX_REFUSALS
    assert run.path == ("router", "tech") and run.status == "answered"
    assert "refused handoffs" in run.answer


async def test_malformed_router_output_falls_back_to_escalation(graph):
    run = await graph.run("garbled request", model=make_model())
    assert run.path == ("router", "escalation") and run.status == "escalated"
    assert run.route is None
    assert "malformed router output" in run.transcript.loc[2, "detail"]


async def test_truncated_json_fault_falls_back_to_escalation(graph):
    router_model = make_model(faults={"malformed": 1.0})
    roles = [r if r.name != "router" else Role("router", r.instructions, model=router_model) for r in ROLES]
    run = await RoleGraph(roles, EDGES).run("refund please", model=make_model())
    assert run.path == ("router", "escalation")
    assert run.transcript.loc[2, "target"] == "escalation"


async def test_low_confidence_escalates_by_default_and_human_can_approve(graph):
    run = await graph.run("something vague", model=make_model())
    assert run.path == ("router", "escalation")
    assert list(run.escalations["rule"]) == ["low_confidence"]
    approving = EscalationEngine([low_confidence(0.6)], approver=ScriptedApprover(True))
    run = await graph.run("something vague", model=make_model(), escalation=approving)
    assert run.path[:2] == ("router", "tech")
    assert run.escalations.iloc[0]["outcome"] == "approved"


async def test_router_cannot_pick_a_disallowed_or_unknown_role(graph):
    events = []
    run = await graph.run("ask the admin", model=make_model(), listeners=[lambda e, p: events.append(p)])
    assert run.path == ("router", "escalation")
    assert events == [{"from": "router", "to": "admin", "reason": "'router' may not hand off to 'admin'"}]
    run = await graph.run("ghost route", model=make_model())
    assert run.path == ("router", "escalation") and "unknown route" in run.transcript.loc[2, "detail"]


async def test_abort_at_router_ends_the_run(graph):
    engine = EscalationEngine([EscalationRule("no_refunds", lambda c: "refund" in c.text, "critical", "abort")])
    run = await graph.run("refund please", model=make_model(), escalation=engine)
    assert run.status == "aborted" and run.path == ("router",)


async def test_cost_gate_stops_a_role_before_it_speaks(graph):
    model = make_model()
    engine = EscalationEngine([cost_over(0.0, once=False)], approver=ScriptedApprover(True, False))
    run = await graph.run("My app crash", model=model, escalation=engine)
    # approved at the router, rejected before the tech role: tech never calls the model
    assert run.status == "stopped"
    assert list(run.escalations["outcome"]) == ["approved", "rejected"]
    assert list(run.escalations["where"]) == ["router", "tech"]
    assert run.transcript.iloc[-1]["action"] == "stopped"
    assert "tech to reviewer" not in model.calls_frame()["rule"].tolist()


async def test_role_failure_reports_error_without_stderr(graph, capfd):
    broken = OfflineModel(seed=0, faults={"server_error": 1.0})
    roles = [r if r.name != "tech" else Role("tech", r.instructions, model=broken) for r in ROLES]
    run = await RoleGraph(roles, EDGES).run("crash", model=make_model(), timeout_s=10)
    assert run.status == "error"
    assert "ServerError" in run.error and "tech" in run.error
    assert any("notify handler raised" in line for line in run.network_log)
    assert capfd.readouterr().err == ""


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_timeout(graph):
    slow = make_model(latency_s=2.0)
    run = await graph.run("crash", model=slow, timeout_s=0.2)
    assert run.status == "timeout" and "exceeded its 0.2 s time limit while 'router' was answering" in run.error
    assert run.path == ("router",)  # the router was still answering when the deadline passed


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_a_role_whose_server_never_answers_times_out_with_a_clear_error(capfd):
    hanging = SlowModel()  # never answers
    roles = [r if r.name != "tech" else Role("tech", r.instructions, model=hanging) for r in ROLES]
    run = await RoleGraph(roles, EDGES, name="slow").run("crash", model=make_model(), timeout_s=0.5)
    assert run.status == "timeout" and hanging.calls == 1 and run.path == ("router", "tech")
    assert isinstance(run.failure, TimeLimitExceeded) and isinstance(run.failure, AgentOpsError)
    assert (run.failure.where, run.failure.limit_s) == ("graph run 'slow-1'", 0.5)
    assert run.error == str(run.failure)
    assert run.error.startswith("graph run 'slow-1' exceeded its 0.5 s time limit while 'tech' was answering: ")
    assert "the model server answered too slowly" in run.error and "raise timeout_s of RoleGraph.run" in run.error
    row = run.transcript.iloc[-1]
    assert (row["role"], row["action"]) == ("tech", "timeout")
    assert row["detail"] == "cut off by the run's 0.5 s time limit (raise timeout_s)"
    text = " ".join([run.error, *run.transcript["detail"].astype(str), *capfd.readouterr()])
    assert "CancelledError" not in text and not is_retryable(run.failure)


async def test_listener_that_raises_does_not_break_the_run(graph):
    def boom(e, p):
        raise RuntimeError("observer down")

    run = await graph.run("refund please, charged twice", model=make_model(), listeners=[boom])
    assert run.status == "answered" and len(run.refusals) == 1


async def test_run_validation(graph):
    with pytest.raises(ConfigError, match="no model"):
        await graph.run("hi")
    with pytest.raises(ConfigError, match="non-empty"):
        await graph.run("  ", model=make_model())
    with pytest.raises(ConfigError, match="timeout_s"):
        await graph.run("hi", model=make_model(), timeout_s=0)


async def test_run_ids_are_deterministic_and_summary(graph):
    runs = [await graph.run("refund", model=make_model()), await graph.run("crash", model=make_model())]
    assert [r.run_id for r in runs] == ["desk-1", "desk-2"]
    frame = runs_frame(runs)
    assert list(frame["route"]) == ["billing", "tech"]
    assert list(frame["path"]) == ["router → billing", "router → tech → reviewer"]


async def test_network_log_capture_keeps_each_runs_lines_and_leaves_the_logger_alone(caplog):
    caplog.set_level(logging.WARNING, logger="ag2.network")
    net = logging.getLogger("ag2.network")
    before = (net.propagate, net.level, list(net.handlers))
    hub_log = logging.getLogger("ag2.network.hub.core")

    async def run(name: str) -> list[str]:
        with network_quiet() as sink:
            for _ in range(3):
                hub_log.warning("rejected post from %s", name)
                await asyncio.sleep(0)
            assert (net.propagate, net.level) == before[:2]
        return sink

    a, b = await asyncio.gather(run("a"), run("b"))
    assert a == ["WARNING ag2.network.hub.core: rejected post from a"] * 3
    assert b == ["WARNING ag2.network.hub.core: rejected post from b"] * 3
    assert (net.propagate, net.level, list(net.handlers)) == before
    # configured handlers (pytest's, here) still receive the records
    assert caplog.text.count("rejected post from") == 6


async def test_network_records_outside_a_capture_reach_stderr_as_before(monkeypatch):
    seen: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    monkeypatch.setattr(logging, "lastResort", Recorder(logging.WARNING))
    monkeypatch.setattr(logging.getLogger("ag2.network"), "propagate", False)  # no other handler anywhere
    hub_log = logging.getLogger("ag2.network.hub.core")
    inside = asyncio.Event()
    done = asyncio.Event()

    async def captured() -> list[str]:
        with network_quiet() as sink:
            inside.set()
            await done.wait()
        return sink

    task = asyncio.create_task(captured())  # created before the capture: not part of it
    await inside.wait()
    hub_log.warning("outside any run")
    done.set()
    assert await task == []
    assert seen == ["outside any run"]


def test_single_module_imports_keep_working():
    from agentops import stack, usage

    assert UsageMeter is usage.UsageMeter and extra_middleware is stack.extra_middleware


async def test_unpriced_model_keeps_tokens_and_reports_cost_as_unpriced(graph, monkeypatch):
    from agentops import usage

    monkeypatch.setattr(usage, "_warned", set())
    model = make_model(model="local-gguf-test")
    with pytest.warns(usage.UnpricedModelWarning, match="register_price"):
        run = await graph.run("My app crash on login", model=model)
    assert run.status == "finished" and run.path == ("router", "tech", "reviewer")
    assert run.tokens == int(model.usage.total_tokens) > 0
    assert run.cost_usd is None and run.unpriced_calls == model.calls
    assert run.summary()["cost_usd"] is None
    assert run.transcript["cost"].iloc[1:].isna().all()


async def test_draw_graph_highlights_path(graph):
    run = await graph.run("charged twice, refund", model=make_model())
    ax = draw_graph(graph, run)
    assert ax.get_title() == "desk: path router → billing"
    assert {t.get_text() for t in ax.texts} >= set(graph.role_names)
    ax2 = draw_graph(graph)
    assert ax2.get_title() == "desk: allowed handoffs"
    plt.close("all")


# -- extra middleware (telemetry, guardrails, budgets) on every role ---------------------------------


class _Seen(BaseMiddleware):
    def __init__(self, event, context, *, name, log):
        super().__init__(event, context)
        self.name, self.log = name, log

    async def on_turn(self, call_next, event, context):
        self.log.append(self.name)
        return await call_next(event, context)


def test_extra_middleware_spec_forms():
    factory = Middleware(_Seen, name="x", log=[])
    assert extra_middleware(None, "tech") == []
    assert extra_middleware([factory], "tech") == [factory]
    assert extra_middleware(lambda role: [role], "tech") == ["tech"]
    with pytest.raises(ConfigError, match="list of AG2 middleware factories"):
        extra_middleware(42, "tech")


async def test_extra_middleware_wraps_every_role_turn(graph):
    log: list[str] = []
    run = await graph.run(
        "My app crash on login",
        model=make_model(),
        middleware=lambda role: [Middleware(_Seen, name=role, log=log)],
    )
    assert run.path == ("router", "tech", "reviewer")
    assert log == ["router", "tech", "reviewer"]


async def test_telemetry_instruments_a_graph_run(graph):
    from agentops.telemetry import Telemetry

    telemetry = Telemetry(exporter="memory")
    run = await graph.run("My app crash on login", model=make_model(), middleware=telemetry.middleware)
    telemetry.flush()
    turns = telemetry.store.turns()
    assert list(turns["agent"]) == ["router", "tech", "reviewer"]
    assert turns["cost_usd"].sum() == pytest.approx(run.cost_usd)
    telemetry.shutdown()
