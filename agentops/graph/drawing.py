"""Drawing a role graph: roles, allowed handoffs and, for a run, the path taken and refused attempts."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from agentops import _identity  # noqa: F401

if TYPE_CHECKING:
    from agentops.graph.roles import RoleGraph
    from agentops.graph.run import GraphRun

__all__ = ["draw_graph"]

_NODE_SIZE = 1900
_ROUTER, _ESCALATION, _ROLE, _VISITED = "#9ecae1", "#fdae6b", "#d9d9d9", "#e6550d"


def _layers(graph: RoleGraph) -> dict[str, int]:
    depth = {graph.router: 0}
    frontier = [graph.router]
    while frontier:
        nxt = []
        for src in frontier:
            for dst in graph.allowed(src):
                if dst not in depth:
                    depth[dst] = depth[src] + 1
                    nxt.append(dst)
        frontier = nxt
    return depth


def _positions(graph: RoleGraph) -> tuple[dict[str, tuple[int, float]], list[int]]:
    """Roles laid out by handoff depth from the router (x) and spread within a layer (y)."""
    depth = _layers(graph)
    by_layer: dict[int, list[str]] = {}
    for n in graph.role_names:
        by_layer.setdefault(depth.get(n, 0), []).append(n)
    pos = {n: (layer, (len(members) - 1) / 2 - i) for layer, members in by_layer.items() for i, n in enumerate(members)}
    return pos, sorted(by_layer)


def _node_colors(graph: RoleGraph, visited: set[str]) -> list[str]:
    colors = []
    for n in graph.role_names:
        base = _ROUTER if n == graph.router else _ESCALATION if n == graph.escalation else _ROLE
        special = n in (graph.router, graph.escalation)
        colors.append(_VISITED if n in visited and not special else base)
    return colors


def _draw_run(nx: Any, g: Any, pos: dict[str, Any], run: GraphRun, ax: Any) -> None:
    taken = [(a, b) for a, b in itertools.pairwise(run.path) if g.has_edge(a, b)]
    style = {"arrows": True, "node_size": _NODE_SIZE, "ax": ax}
    nx.draw_networkx_edges(
        g, pos, edgelist=taken, edge_color="#d62728", width=3, arrowsize=18, connectionstyle="arc3,rad=0.08", **style
    )
    refused = [(r["from"], r["to"]) for r in run.refusals if r["to"] in pos]
    if refused:
        h = nx.DiGraph()
        h.add_edges_from(refused)
        nx.draw_networkx_edges(
            h,
            pos,
            edgelist=refused,
            edge_color="#d62728",
            style="dashed",
            width=1.5,
            arrowsize=12,
            connectionstyle="arc3,rad=-0.25",
            **style,
        )


def draw_graph(graph: RoleGraph, run: GraphRun | None = None, ax: Any = None, title: str | None = None) -> Any:
    """Draw roles (nodes), allowed handoffs (grey arrows) and, for a run, the path taken (red) and any
    refused handoff attempts (dashed). Returns the matplotlib ``Axes``."""
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.role_names)
    g.add_edges_from(graph.edges)
    pos, layers = _positions(graph)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    colors = _node_colors(graph, set(run.path) if run else set())
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=_NODE_SIZE, edgecolors="#444444")
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=9)
    nx.draw_networkx_edges(
        g,
        pos,
        ax=ax,
        edge_color="#bbbbbb",
        arrows=True,
        arrowsize=14,
        node_size=_NODE_SIZE,
        connectionstyle="arc3,rad=0.08",
    )
    if run is not None:
        _draw_run(nx, g, pos, run, ax)
    ax.set_title(title or (f"{graph.name}: path {' → '.join(run.path)}" if run else f"{graph.name}: allowed handoffs"))
    ax.set_xlabel("handoff depth from the router")
    ax.set_xticks(layers)
    ax.tick_params(left=False, labelleft=False, bottom=True, labelbottom=True)
    ax.margins(0.15)
    return ax
