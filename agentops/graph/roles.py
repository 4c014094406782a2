"""Declaring a role graph: :class:`Role` and :class:`RoleGraph`, validated when declared.

A declaration mistake (an edge to an undefined role, a role nobody can reach, a router without a way
to the escalation role) fails at once with the role or edge named and the fix; nothing has run yet.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from agentops import _identity  # noqa: F401
from agentops.config import Spec, check_unique
from agentops.errors import ConfigError
from agentops.graph.run import run_graph

__all__ = ["GraphError", "Role", "RoleGraph"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_RESERVED = frozenset({"user"})


class GraphError(ConfigError):
    """The role graph declaration is invalid; the message names the role or edge and the fix."""


class Role(Spec):
    """One role: a stable name, its instructions, its tools and (optionally) its own model.

    Args:
        name: lowercase identifier (``billing``, ``tech_support``); becomes the AG2 agent's name.
        instructions: the role's system prompt.
        description: one line the router and the ``handoff`` tool show for this role.
        tools: extra AG2 tools (plain callables or ``@ag2.tool`` objects).
        model: an AG2 ``ModelConfig`` for this role; roles without one use the run's model.

    Raises:
        ConfigError: a bad name (``Role("Billing")``) or an unknown field, naming the fix.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    instructions: str
    description: str = ""
    tools: tuple[Any, ...] = ()
    model: Any = None

    def __init__(self, name: str, instructions: str = "", **data: Any) -> None:
        super().__init__(name=name, instructions=instructions, **data)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME.match(v or ""):
            raise ValueError(f"role name {v!r} must be lowercase letters, digits and _ (start with a letter)")
        if v in _RESERVED:
            raise ValueError(f"role name {v!r} is reserved for the requester; pick another")
        return v


def _edge_pairs(edges: Mapping[str, Sequence[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if isinstance(edges, Mapping):
        for src, dsts in edges.items():
            if isinstance(dsts, str):
                raise GraphError(f"edges[{src!r}] must be a list of role names, got the string {dsts!r}")
            pairs.extend((src, d) for d in dsts)
        return pairs
    for item in edges:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise GraphError(f"an edge must be a (from, to) pair, got {item!r}")
        pairs.append((item[0], item[1]))
    return pairs


def _check_roles(roles: Sequence[Any], router: str, escalation: str) -> list[str]:
    if not roles:
        raise GraphError("a role graph needs at least a router and an escalation role")
    for r in roles:
        if not isinstance(r, Role):
            raise GraphError(f"roles must be Role objects, got {type(r).__name__}")
    names = [r.name for r in roles]
    try:
        check_unique(names, "role names")
    except ConfigError as exc:
        raise GraphError(str(exc)) from None
    for label, value in (("router", router), ("escalation", escalation)):
        if value not in names:
            raise GraphError(f"{label} role {value!r} is not defined; defined roles: {', '.join(names)}")
    if router == escalation:
        raise GraphError("the router and the escalation role must be different roles")
    return names


def _build_edges(names: list[str], pairs: list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {n: () for n in names}
    for src, dst in pairs:
        for end in (src, dst):
            if end not in out:
                raise GraphError(
                    f"edge {src!r} → {dst!r} names undefined role {end!r}; defined roles: {', '.join(names)}"
                )
        if src == dst:
            raise GraphError(f"edge {src!r} → {dst!r} is a self-loop; a role cannot hand off to itself")
        if dst not in out[src]:
            out[src] = (*out[src], dst)
    return out


class RoleGraph:
    """Roles plus the handoffs allowed between them, validated when declared.

    Args:
        roles: the roles (unique names).
        edges: allowed handoffs, ``{"router": ["billing", "escalation"], ...}`` or ``(from, to)`` pairs.
        router: name of the role that classifies each request (it answers with a
            :class:`~agentops.graph.RouteDecision`; it has no tools).
        escalation: name of the role that takes what the graph cannot handle; the router must be
            allowed to reach it.
        name: used in run ids.
        max_turns: cap on turns per run (AG2 closes the channel at the cap).

    Raises:
        GraphError: duplicate or unknown role names, edges to undefined roles, self-edges, a router
            without an edge to the escalation role, a router with tools, or unreachable roles.
    """

    def __init__(
        self,
        roles: Sequence[Role],
        edges: Mapping[str, Sequence[str]] | Iterable[tuple[str, str]],
        *,
        router: str = "router",
        escalation: str = "escalation",
        name: str = "graph",
        max_turns: int = 12,
    ) -> None:
        roles = list(roles)
        names = _check_roles(roles, router, escalation)
        if not isinstance(max_turns, int) or max_turns < 2:
            raise GraphError(f"max_turns must be an int ≥ 2, got {max_turns!r}")
        self._edges = _build_edges(names, _edge_pairs(edges))
        self.roles: dict[str, Role] = {r.name: r for r in roles}
        self.router, self.escalation, self.name, self.max_turns = router, escalation, name, max_turns
        if escalation not in self._edges[router]:
            raise GraphError(
                f"the router {router!r} must be allowed to hand off to the escalation role {escalation!r}; "
                f"add it to edges[{router!r}]"
            )
        if self.roles[router].tools:
            raise GraphError(f"the router {router!r} answers with a route and takes no tools; move them to a role")
        unreachable = [n for n in names if n not in self._reachable(router)]
        if unreachable:
            raise GraphError(
                f"role(s) {unreachable} cannot be reached from {router!r}; add an edge to them or remove them"
            )
        self._counter = itertools.count(1)

    # -- introspection -------------------------------------------------------------------------
    def _reachable(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in self._edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    @property
    def role_names(self) -> tuple[str, ...]:
        """Role names in declaration order."""
        return tuple(self.roles)

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """Allowed handoffs as ``(from, to)`` pairs."""
        return tuple((s, d) for s, ds in self._edges.items() for d in ds)

    def allowed(self, role: str) -> tuple[str, ...]:
        """Roles ``role`` may hand off to (raises :class:`GraphError` for an unknown role)."""
        if role not in self._edges:
            raise GraphError(f"unknown role {role!r}; defined roles: {', '.join(self.roles)}")
        return self._edges[role]

    def is_allowed(self, src: str, dst: str) -> bool:
        """True if ``src`` may hand off to ``dst``."""
        return src in self._edges and dst in self._edges[src]

    def kind(self, name: str) -> str:
        """``router``, ``escalation`` or ``role``."""
        return "router" if name == self.router else "escalation" if name == self.escalation else "role"

    def frame(self) -> Any:
        """Roles with their allowed handoffs as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {
                "role": n,
                "kind": self.kind(n),
                "may hand off to": ", ".join(self._edges[n]) or "—",
                "description": r.description,
            }
            for n, r in self.roles.items()
        ]
        return pd.DataFrame(rows).set_index("role")

    @property
    def route_schema(self) -> type[BaseModel]:
        """A pydantic model like :class:`~agentops.graph.RouteDecision` whose ``route`` is limited to
        the router's edges (passed to the router agent as AG2 ``response_schema``)."""
        routes = self._edges[self.router]
        return create_model(  # type: ignore[call-overload, no-any-return]
            "RouteDecision",
            route=(Literal[routes], Field(description="the role that should handle the request")),
            reason=(str, Field(description="one short sentence")),
            confidence=(float, Field(ge=0.0, le=1.0, description="how sure you are, 0..1")),
        )

    def router_prompt(self) -> str:
        """The router's instructions plus the list of routes and the answer format."""
        lines = [self.roles[self.router].instructions.strip(), "", "Routes:"]
        for dst in self._edges[self.router]:
            desc = self.roles[dst].description or self.roles[dst].instructions.split(".")[0]
            lines.append(f"- {dst}: {desc}")
        lines += [
            "",
            'Answer only with JSON: {"route": "<one of the routes>", "reason": "<short>", "confidence": <0..1>}.',
        ]
        return "\n".join(lines).strip()

    # -- running -------------------------------------------------------------------------------
    #: ``await graph.run(request, model=..., ...)``: the runner itself (one signature, one docstring).
    run = run_graph

    def next_run_id(self) -> str:
        """The next deterministic run id, ``<graph name>-<n>``."""
        return f"{self.name}-{next(self._counter)}"

    def __repr__(self) -> str:
        return f"RoleGraph(name={self.name!r}, roles={list(self.roles)}, edges={len(self.edges)})"
