"""The router's contract: a validated :class:`RouteDecision`, and the network target that follows it.

The router role answers with JSON (``route``, ``reason``, ``confidence``). :func:`parse_route` finds
it inside prose or code fences and validates it; the role middleware then writes the validated
choice as the first line of the router's packet (``[route → billing]``) and :class:`RouterTarget`,
an ``ag2.network`` transition target, reads that line to pick the next speaker. A transition target
must be pure (no I/O) and cannot see a tool's validated output, hence the first-line convention.

>>> parse_route('Sure: {"route": "Billing", "reason": "refund", "confidence": 0.9}').route
'billing'
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ag2.network import TransitionDecision, register_target
from pydantic import ConfigDict, Field, field_validator

from agentops import _identity  # noqa: F401
from agentops._ag2 import packet_body
from agentops.config import Spec
from agentops.errors import ConfigError, MalformedOutputError
from agentops.jsonparse import CUT_OFF_HINT, cut_off, find_json_objects

__all__ = ["STOP_ROUTE", "RouteDecision", "RouteParseError", "RouterTarget", "parse_route", "route_body"]

STOP_ROUTE = "__stop__"
"""Route written by the runner when an escalation aborts the run at the router."""


class RouteParseError(MalformedOutputError):
    """The router's answer holds no valid :class:`RouteDecision` (malformed model output: asking again
    may help, see :func:`agentops.errors.is_retryable`)."""


class RouteDecision(Spec):
    """The router's answer: where to send the request, why, and how sure it is.

    Keys the model adds beyond these are ignored; a bad value raises :class:`~agentops.errors.ConfigError`.
    """

    model_config = ConfigDict(extra="ignore")

    route: str = Field(min_length=1)
    reason: str = ""
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("route")
    @classmethod
    def _normalise(cls, v: str) -> str:
        return v.strip().lower()


def parse_route(text: str | None, routes: Iterable[str] | None = None) -> RouteDecision:
    """Extract and validate a :class:`RouteDecision` from a model's answer.

    Objects are found by :func:`agentops.jsonparse.find_json_objects` (the extractor judges and
    planners share: prose around the JSON, code fences, single quotes); the first one that validates
    is taken. With ``routes``, the route must be one of them.

    Raises:
        RouteParseError: no JSON object, no object that validates, or a route outside ``routes``.
    """
    if not text or not text.strip():
        raise RouteParseError("the router returned no text")
    allowed = None if routes is None else {r.lower() for r in routes}
    problems: list[str] = []
    for obj in find_json_objects(text):
        try:
            decision = RouteDecision.model_validate(obj)
        except ConfigError as exc:
            problems.append(str(exc).removeprefix("invalid RouteDecision: "))
            continue
        if allowed is not None and decision.route not in allowed:
            problems.append(f"route {decision.route!r} is not one of {sorted(allowed)}")
            continue
        return decision
    if problems:
        raise RouteParseError(f"router answer did not validate ({problems[0]})")
    snippet = " ".join(text.split())[:60]
    if cut_off(text):
        raise RouteParseError(f"the router's JSON is {CUT_OFF_HINT}: {snippet!r}")
    raise RouteParseError(f"no JSON object in the router answer {snippet!r}")


_ROUTE_LINE = re.compile(r"^\[route → ([a-z][a-z0-9_]*|__stop__)\]")


def route_body(route: str, reason: str, request: str) -> str:
    """The router packet's text: the validated route on the first line, then the request."""
    return f"[route → {route}] {reason}\n\nRequest: {request}"


@dataclass(slots=True)
class RouterTarget:
    """``ag2.network`` transition target: the role named on the router packet's first line.

    Anything else (no route line, a route outside ``table``) goes to ``fallback``; the stop route
    closes the channel with reason ``aborted``.
    """

    table: dict[str, str]
    fallback: str
    name: ClassVar[str] = "agentops_router"

    def resolve(self, state: Any, envelope: Any) -> TransitionDecision:
        match = _ROUTE_LINE.match(packet_body(envelope))
        route = match.group(1) if match else None
        if route == STOP_ROUTE:
            return TransitionDecision(next_speaker=None, close_reason="aborted")
        return TransitionDecision(next_speaker=self.table.get(route or "", self.fallback))


_registered = False
_register_lock = threading.Lock()


def ensure_router_target() -> None:
    """Register :class:`RouterTarget` with AG2's default transition registry, once, on first use
    (a workflow channel rebuilds its graph from the registry by name)."""
    global _registered
    with _register_lock:
        if not _registered:
            register_target(RouterTarget)
            _registered = True
