"""Role graphs: AG2 agents organised by role, run as an ``ag2.network`` workflow with enforced edges.

Declare roles (name, instructions, tools, model) and the handoffs allowed between them; a
:class:`RoleGraph` checks the declaration (unknown roles, edges to undefined roles, roles nobody can
reach are errors) and runs each request as a real ``ag2.network`` workflow — an in-process ``Hub``, a
``TransitionGraph`` and one ``ag2.Agent`` per role — so nothing about the orchestration is simulated.

What the helper adds on top of AG2:

* **Enforced edges.** ``ag2.network`` does not check a tool's ``Handoff`` against the transition
  graph, so every role gets a ``handoff(to, reason)`` tool that does: an illegal target gets a clear
  refusal string the model reads (never an exception, which would put a traceback into the model's
  context), the refusal is recorded in the transcript and sent to listeners as ``handoff.refused``,
  and the target never speaks. Roles are registered with ``attach_plugin=False`` so AG2's generic
  ``delegate`` tool cannot route around the graph.
* **A router with a validated answer.** The router role answers with JSON matching
  :class:`RouteDecision` (``route``, ``reason``, ``confidence``; also passed to AG2 as
  ``response_schema`` so real providers use structured output). :func:`parse_route` finds the JSON
  inside prose or code fences and validates it with pydantic. Malformed output, an unknown or
  disallowed route, or an escalation verdict (low confidence by default) sends the request to the
  escalation role. The router never crashes the run.
* **Escalation as it runs.** Before the router's choice is followed and before every other role
  speaks, the run is checked by an :class:`~agentops.escalation.EscalationEngine` (cost so far,
  confidence, sensitive data, error rate...). ``stop`` sends the request to the escalation role (or
  ends the run if it is already past routing), ``abort`` ends it.
* **A transcript** (:attr:`GraphRun.transcript`, a pandas DataFrame with step, role, action, target,
  tokens, cost) in stable role names, never AG2's random agent ids, and :func:`draw_graph` to draw
  roles, allowed edges and the path a run took.

Example::

    graph = RoleGraph(
        [Role("router", "You are a router."), Role("billing", "You handle billing."),
         Role("escalation", "You hand over to a person.")],
        edges={"router": ["billing", "escalation"], "billing": ["escalation"]},
    )
    run = await graph.run("I was charged twice", model=model_config("offline"))
    run.transcript

The network's own log lines (turn failures, rejected posts) are captured into
:attr:`GraphRun.network_log` instead of going to stderr.

Modules: :mod:`~agentops.graph.roles` (declaration), :mod:`~agentops.graph.routing` (the router's
contract), :mod:`~agentops.graph.run` (running and results), :mod:`~agentops.graph.drawing`.
"""

from __future__ import annotations

from agentops.graph._turns import MAX_REFUSALS
from agentops.graph.drawing import draw_graph
from agentops.graph.roles import GraphError, Role, RoleGraph
from agentops.graph.routing import RouteDecision, RouteParseError, parse_route
from agentops.graph.run import GraphRun, runs_frame

__all__ = [
    "MAX_REFUSALS",
    "GraphError",
    "GraphRun",
    "Role",
    "RoleGraph",
    "RouteDecision",
    "RouteParseError",
    "draw_graph",
    "parse_route",
    "runs_frame",
]

# Kept importable from here for code written against the single-module layout (not part of the face):
from agentops._ag2 import network_log_capture as network_quiet  # noqa: F401
from agentops.stack import MiddlewareSpec as MiddlewareSpec
from agentops.stack import extra_middleware as extra_middleware
from agentops.usage import UsageMeter as UsageMeter
