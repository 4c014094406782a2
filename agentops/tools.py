"""Tool authorization for AG2 agents: scopes, default deny, sliding-window rate limits, cost per call,
human approval, and file tools confined to a root directory.

A :class:`ToolRegistry` holds every tool with what it requires (scopes), how often it may run
(a ``limits`` rate such as ``"5/minute"``, enforced with a *moving* window that really expires),
what a call costs, and whether a person must approve it. Agents get scopes with :meth:`ToolRegistry.grant`;
anything not granted is denied. Two seams keep it honest:

* :meth:`ToolRegistry.tools_for` builds the agent's tool list, so unauthorized tools are never
  offered to the model at all. Tools that need approval carry AG2's ``approval_required()`` tool
  middleware; tools trusted with personal data carry :func:`agentops.guardrails.restore_placeholders`.
* :meth:`ToolRegistry.authorizer` is AG2 middleware (``on_tool_execution``) that re-checks every call
  — scopes can be revoked mid-conversation, or a tool can reach the agent another way — and answers a
  refused call with a ``DENIED: ...`` tool result. It never raises: an exception inside a tool hook
  becomes a traceback, with file paths, in the model's context.

:class:`Approver` is a programmatic ``hitl_hook`` that answers AG2 approval requests by rule, so
approval flows run unattended in notebooks and tests. :class:`SafeFiles` ships read/write/list tools
that refuse absolute paths, ``..`` traversal and symlinks leading out of their root.

Example::

    registry = ToolRegistry()
    registry.register(get_weather, scopes=["weather:read"], rate_limit="10/minute")
    registry.register(wire_money, scopes=["payments:write"], approval=True, cost_usd=0.25)
    registry.grant("assistant", "weather:read")
    agent = ag2.Agent("assistant", config=cfg, tools=registry.tools_for("assistant"),
                      middleware=[registry.authorizer("assistant")],
                      hitl_hook=Approver({"wire_money": False}))

Thread and asyncio safety: grants, the call log and counters are guarded by a lock; rate limits live in
a ``limits`` storage (``memory://`` by default, ``redis://...`` to share limits across processes).
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ag2 import Context
from ag2 import tool as ag2_tool
from ag2.events import (
    BaseEvent,
    HumanInputRequest,
    ToolApprovalRequest,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
)
from ag2.middleware import BaseMiddleware
from ag2.middleware.builtin.tools import approval_required
from ag2.middleware.describe import MiddlewareDescription
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops._ag2 import approval_call, call_arguments
from agentops.errors import ConfigError, ToolDenied
from agentops.listeners import TOOL_DENIED, Listener, notify
from agentops.safefiles import PathOutsideRoot, SafeFiles

__all__ = [
    "APPROVAL_DENIED",
    "Approver",
    "Decision",
    "PathOutsideRoot",
    "SafeFiles",
    "ToolAuthorizer",
    "ToolDenied",
    "ToolRegistry",
    "ToolSpec",
]

log = logging.getLogger(__name__)

APPROVAL_DENIED = "DENIED: a human approver declined this call"
_APPROVAL_MESSAGE = "Agent wants to call `{tool_name}` with {tool_arguments}. Approve? (y/n)"
_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]+$")


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool and what it takes to call it."""

    name: str
    func: Callable[..., Any]
    scopes: frozenset[str]
    rate_limit: str | None = None
    cost_usd: float = 0.0
    approval: bool = False
    receives_pii: bool = False
    description: str = ""
    limit: RateLimitItem | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Decision:
    """Whether an agent may call a tool, and if not, why (``reason`` is a short code)."""

    allowed: bool
    reason: str = "ok"
    message: str = ""


class ToolRegistry:
    """Registered tools, per-agent scopes and rate limits; default deny.

    Args:
        storage_uri: a ``limits`` storage for rate limits, ``"memory://"`` (one process) or
            ``"redis://host:port/db"`` (shared by several processes).
        listeners: callables receiving ``("tool.denied", {"agent", "tool", "reason"})``; one that
            raises is logged and ignored.
    """

    def __init__(self, *, storage_uri: str = "memory://", listeners: Sequence[Listener] = ()) -> None:
        try:
            self._storage = storage_from_string(storage_uri)
        except Exception as exc:
            raise ConfigError(
                f"invalid rate-limit storage {storage_uri!r} ({exc}); use 'memory://' or 'redis://host:6379/0'"
            ) from None
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._specs: dict[str, ToolSpec] = {}
        self._grants: dict[str, set[str]] = {}
        self._log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.listeners = tuple(listeners)

    # -- registration and grants ----------------------------------------------------------------
    def register(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        rate_limit: str | None = None,
        cost_usd: float = 0.0,
        approval: bool = False,
        receives_pii: bool = False,
        description: str | None = None,
    ) -> Any:
        """Register a tool (usable as ``@registry.register(scopes=[...])`` or a plain call).

        Args:
            func: the tool function (sync or async), as for ``ag2.tool``.
            name: tool name shown to the model (default: the function's name).
            scopes: every scope an agent needs to call it (all required).
            rate_limit: a ``limits`` rate per agent, e.g. ``"5/minute"`` or ``"100/hour"``.
            cost_usd: cost charged per successful call (reported by :meth:`calls_frame`).
            approval: ask a human (AG2's ``approval_required``) before each call.
            receives_pii: the tool gets real values behind guardrail placeholders.
            description: tool description for the model (default: the docstring).

        Raises:
            ConfigError: bad name, scope, rate or cost, or a duplicate name.
        """
        if func is None:
            return lambda f: self.register(
                f,
                name=name,
                scopes=scopes,
                rate_limit=rate_limit,
                cost_usd=cost_usd,
                approval=approval,
                receives_pii=receives_pii,
                description=description,
            )
        tool_name = name or getattr(func, "__name__", "")
        if not tool_name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", tool_name):
            raise ConfigError(f"invalid tool name {tool_name!r}: use letters, digits, '_' or '-' (max 64)")
        scope_set = frozenset(scopes)
        bad = [s for s in scope_set if not isinstance(s, str) or not _SCOPE.match(s)]
        if bad:
            raise ConfigError(f"invalid scope(s) {bad} for tool {tool_name!r}; use names like 'files:read'")
        limit = None
        if rate_limit is not None:
            try:
                limit = parse(rate_limit)
            except ValueError:
                raise ConfigError(
                    f"invalid rate_limit {rate_limit!r} for tool {tool_name!r}; use e.g. '5/minute' or '100/hour'"
                ) from None
        if not isinstance(cost_usd, (int, float)) or cost_usd < 0:
            raise ConfigError(f"cost_usd for tool {tool_name!r} must be a number ≥ 0, got {cost_usd!r}")
        spec = ToolSpec(
            tool_name,
            func,
            scope_set,
            rate_limit,
            float(cost_usd),
            approval,
            receives_pii,
            description or (func.__doc__ or "").strip(),
            limit,
        )
        with self._lock:
            if tool_name in self._specs:
                raise ConfigError(f"a tool named {tool_name!r} is already registered; pass name='...' to rename")
            self._specs[tool_name] = spec
        return func

    def grant(self, agent: str, *scopes: str) -> None:
        """Give an agent scopes (additive)."""
        bad = [s for s in scopes if not isinstance(s, str) or not _SCOPE.match(s)]
        if bad:
            raise ConfigError(f"invalid scope(s) {bad}; use names like 'files:read'")
        with self._lock:
            self._grants.setdefault(agent, set()).update(scopes)

    def revoke(self, agent: str, *scopes: str) -> None:
        """Take scopes away (all of them when none are named)."""
        with self._lock:
            held = self._grants.get(agent, set())
            if scopes:
                held.difference_update(scopes)
            else:
                held.clear()

    def scopes_of(self, agent: str) -> frozenset[str]:
        """The scopes an agent holds."""
        with self._lock:
            return frozenset(self._grants.get(agent, ()))

    @property
    def specs(self) -> dict[str, ToolSpec]:
        """Registered tools by name."""
        with self._lock:
            return dict(self._specs)

    # -- decisions ------------------------------------------------------------------------------
    def check(self, agent: str, tool_name: str) -> Decision:
        """Scope check only (does not consume rate limit); default deny."""
        spec = self.specs.get(tool_name)
        if spec is None:
            return Decision(False, "unregistered", f"DENIED: tool {tool_name!r} is not registered")
        held = self.scopes_of(agent)
        missing = sorted(s for s in spec.scopes if s not in held and "*" not in held)
        if missing:
            return Decision(False, "scope", f"DENIED: agent {agent!r} lacks scope(s) {missing} for tool {tool_name!r}")
        return Decision(True)

    def allowed_tools(self, agent: str) -> list[str]:
        """Names of the tools this agent may call."""
        return [name for name in self.specs if self.check(agent, name).allowed]

    def _take_rate(self, agent: str, spec: ToolSpec) -> Decision:
        if spec.limit is None:
            return Decision(True)
        if self._limiter.hit(spec.limit, agent, spec.name):
            return Decision(True)
        return Decision(
            False,
            "rate_limit",
            f"DENIED: rate limit {spec.rate_limit} for tool {spec.name!r} reached; retry once the "
            f"{spec.limit.get_expiry()} s window has moved on",
        )

    def retry_after(self, agent: str, tool_name: str) -> float:
        """Seconds until ``agent`` may call ``tool_name`` again (0 when it may call now)."""
        spec = self.specs.get(tool_name)
        if spec is None or spec.limit is None:
            return 0.0
        stats = self._limiter.get_window_stats(spec.limit, agent, spec.name)
        return 0.0 if stats.remaining > 0 else max(0.0, stats.reset_time - time.time())

    def reset_limits(self) -> None:
        """Clear every rate-limit window (e.g. between notebook sections)."""
        self._storage.reset()

    def authorize_call(self, agent: str, tool_name: str) -> Decision:
        """Full check for one call: scopes, then the rate limit (consumed only if scopes pass)."""
        decision = self.check(agent, tool_name)
        if decision.allowed:
            decision = self._take_rate(agent, self.specs[tool_name])
        return decision

    # -- AG2 seams ------------------------------------------------------------------------------
    def tools_for(self, agent: str, *, approval_timeout: float | None = None) -> list[Any]:
        """AG2 tools this agent may call (unauthorized ones are left out entirely).

        Approval tools carry ``approval_required()``; tools with ``receives_pii`` also carry
        :func:`agentops.guardrails.restore_placeholders`, innermost, so only the tool sees real values.
        """
        tools = []
        for name in self.allowed_tools(agent):
            spec = self.specs[name]
            hooks: list[Any] = []
            if spec.approval:
                hooks.append(
                    approval_required(_APPROVAL_MESSAGE, APPROVAL_DENIED, timeout=approval_timeout, allow_always=False)
                )
            if spec.receives_pii:
                from agentops.guardrails import restore_placeholders

                hooks.append(restore_placeholders)
            tools.append(ag2_tool(spec.func, name=spec.name, description=spec.description or None, middleware=hooks))
        return tools

    def authorizer(self, agent: str) -> ToolAuthorizer:
        """AG2 middleware factory that enforces this registry for ``agent`` on every tool call."""
        return ToolAuthorizer(self, agent)

    # -- records --------------------------------------------------------------------------------
    def _record(self, agent: str, tool_name: str, outcome: str, reason: str, cost: float) -> None:
        with self._lock:
            self._log.append(
                {"agent": agent, "tool": tool_name, "outcome": outcome, "reason": reason, "cost_usd": cost}
            )
        if outcome == "denied":
            notify(self.listeners, TOOL_DENIED, {"agent": agent, "tool": tool_name, "reason": reason})

    def calls_frame(self) -> Any:
        """Every authorized or denied call as a DataFrame: agent, tool, outcome, reason, cost_usd."""
        import pandas as pd

        with self._lock:
            rows = list(self._log)
        return pd.DataFrame(rows, columns=["agent", "tool", "outcome", "reason", "cost_usd"])

    def spend(self, agent: str | None = None) -> float:
        """Total tool cost in USD (for one agent or all)."""
        with self._lock:
            return round(sum(r["cost_usd"] for r in self._log if agent is None or r["agent"] == agent), 10)


class ToolAuthorizer:
    """AG2 middleware factory (one per agent) that checks every tool call against a registry."""

    def __init__(self, registry: ToolRegistry, agent: str) -> None:
        if not agent or not isinstance(agent, str):
            raise ConfigError("ToolAuthorizer needs the agent's name: registry.authorizer('assistant')")
        self.registry = registry
        self.agent = agent

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _AuthorizeTurn(event, context, self)

    def describe(self) -> MiddlewareDescription:
        """AG2-style introspection."""
        return MiddlewareDescription(
            kind=type(self).__qualname__,
            config={"agent": self.agent, "tools": tuple(self.registry.allowed_tools(self.agent))},
        )


class _AuthorizeTurn(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, auth: ToolAuthorizer) -> None:
        super().__init__(event, context)
        self.auth = auth

    async def on_tool_execution(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        registry, agent = self.auth.registry, self.auth.agent
        decision = registry.authorize_call(agent, event.name)
        if not decision.allowed:
            registry._record(agent, event.name, "denied", decision.reason, 0.0)
            return ToolResultEvent.from_call(event, result=decision.message)
        result = await call_next(event, context)
        if isinstance(result, ToolErrorEvent) and isinstance(result.error, ToolDenied):
            # A tool that refuses by raising: the model gets the refusal, never the traceback.
            result = ToolResultEvent.from_call(event, result=f"DENIED: {result.error}")
        text = _result_text(result)
        if text == APPROVAL_DENIED:
            registry._record(agent, event.name, "denied", "approval", 0.0)
        elif text is not None and text.startswith("DENIED:"):  # the tool (or a guardrail) refused it
            registry._record(agent, event.name, "denied", "refused", 0.0)
        elif isinstance(result, ToolResultEvent) and not isinstance(result, ToolErrorEvent):
            registry._record(agent, event.name, "ok", "ok", registry.specs[event.name].cost_usd)
        else:
            registry._record(agent, event.name, "error", "tool_error", 0.0)
        return result


def _result_text(result: Any) -> str | None:
    parts = getattr(getattr(result, "result", None), "parts", None) or []
    if len(parts) == 1 and isinstance(getattr(parts[0], "content", None), str):
        return parts[0].content
    return None


class Approver:
    """A programmatic AG2 ``hitl_hook`` that answers tool-approval requests by rule.

    The call being approved is read from the conversation by the request's ``tool_call_id`` (AG2's
    structured field), never parsed out of the question's prose, so a tool argument that looks like
    the question cannot steer the answer. Safe to share across threads and asyncio tasks.

    Args:
        rules: per tool name, ``True``/``False`` or a predicate on the call's arguments
            (``{"wire_money": lambda a: a["amount"] <= 100}``).
        default: the answer for tools without a rule.
        fallback: hook for other human-input requests (default: answer ``"no"``).

    Every decision is kept in :attr:`decisions` as ``(tool, approved)`` for the audit trail.

    >>> Approver({"wire_money": lambda a: a["amount"] <= 100}).decide("wire_money", {"amount": 5000})
    False
    """

    def __init__(
        self,
        rules: Mapping[str, bool | Callable[[dict[str, Any]], bool]] | None = None,
        *,
        default: bool = False,
        fallback: Callable[[HumanInputRequest], str] | None = None,
    ) -> None:
        self.rules = dict(rules or {})
        self.default = default
        self.fallback = fallback
        self.decisions: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    async def __call__(self, event: Any, context: Context) -> str:
        """Answer one ``HumanInputRequest`` (``"y"``/``"n"`` for tool approvals).

        ``context`` is injected by AG2 (the conversation the request belongs to).
        """
        if not isinstance(event, ToolApprovalRequest):
            if self.fallback is None:
                return "no"
            answer = self.fallback(event)
            return await answer if inspect.isawaitable(answer) else answer
        call = await approval_call(event, context)
        if call is None:  # nothing to judge the request by: a "no"
            log.warning("approval request %r names no call in this conversation; denying", event.tool_call_id)
            return "y" if self._record("?", False) else "n"
        return "y" if self.decide(call.name, call_arguments(call)) else "n"

    def decide(self, tool_name: str, args: Mapping[str, Any]) -> bool:
        """Apply the rule for ``tool_name`` to ``args`` and record the decision."""
        rule = self.rules.get(tool_name, self.default)
        try:
            approved = bool(rule(dict(args))) if callable(rule) else bool(rule)
        except Exception:  # a failing rule is a "no", never a crash in the middle of a turn
            log.warning("approval rule for %r raised; denying", tool_name, exc_info=True)
            approved = False
        return self._record(tool_name, approved)

    def _record(self, tool_name: str, approved: bool) -> bool:
        with self._lock:
            self.decisions.append((tool_name, approved))
        return approved


# AG2 builds a pydantic model from a hook's annotations, so they must be objects, not the strings that
# ``from __future__ import annotations`` leaves: ``context`` is injected by its type.
Approver.__call__.__annotations__ = {"event": Any, "context": Context, "return": str}
