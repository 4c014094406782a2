"""Rules: what the offline model says, and what a rule sees.

A chapter registers rules on an :class:`agentops.models.OfflineModel` ("a router answers with a JSON
route", "an order question calls ``lookup_order``"); the first rule whose condition holds answers. Rules
are plain data a reader can print (``model.rules_frame()``), kept next to the app they stand in for.

Example::

    model.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Paris"}))
    model.add_rule(json_rule("route", lambda p: {"route": "billing"}, system_contains="you are a router"))
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_RULES", "Prompt", "Reply", "Rule", "ToolCall", "ToolOutput", "json_rule", "rule", "tool_rule"]


@dataclass(frozen=True)
class ToolCall:
    """A tool call a rule asks for; the model gives it a stable id."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What a rule answers: text, tool calls, or both."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolOutput:
    """One tool result the model is reading on this call."""

    name: str
    content: str
    call_id: str


@dataclass(frozen=True)
class Prompt:
    """Everything a rule may look at for one model call."""

    model: str
    system: str
    user: str
    transcript: tuple[str, ...]
    tools: tuple[str, ...]
    tool_results: tuple[ToolOutput, ...]
    schema: Mapping[str, Any] | None
    call_index: int
    rng: random.Random = field(compare=False, repr=False)

    def mentions(self, *words: str, where: str = "user") -> bool:
        """True if any word appears (case-insensitive, on word boundaries) in the user text or system."""
        text = self.user if where == "user" else self.system
        return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE) for w in words)

    def has_tool(self, name: str) -> bool:
        """True if the agent offered a tool with this name on this call."""
        return name in self.tools

    @property
    def after_tools(self) -> bool:
        """True when this call is reading tool results (the second half of a tool round)."""
        return bool(self.tool_results)


Responder = Callable[[Prompt], "Reply | str"]
Predicate = Callable[[Prompt], bool]


@dataclass(frozen=True)
class Rule:
    """``when(prompt)`` selects the rule; ``respond(prompt)`` builds the reply. First match wins."""

    name: str
    when: Predicate
    respond: Responder
    description: str = ""


def rule(
    name: str,
    respond: Responder | str,
    *,
    system_contains: str | Sequence[str] = (),
    user_contains: str | Sequence[str] = (),
    when: Predicate | None = None,
    description: str = "",
) -> Rule:
    """Build a rule from keyword conditions (all given conditions must hold) and a responder.

    ``system_contains`` matches the system prompt (e.g. ``"you are a router"``), ``user_contains``
    matches any of its words in the latest user message; ``when`` adds an arbitrary predicate.
    ``respond`` is a function of the :class:`Prompt` or a fixed string.
    """
    if isinstance(respond, str):
        text = respond

        def respond(p: Prompt) -> str:
            return text

    sys_words = (system_contains,) if isinstance(system_contains, str) else tuple(system_contains)
    user_words = (user_contains,) if isinstance(user_contains, str) else tuple(user_contains)

    def matches(p: Prompt) -> bool:
        if sys_words and not all(w.lower() in p.system.lower() for w in sys_words):
            return False
        if user_words and not p.mentions(*user_words):
            return False
        return when(p) if when is not None else True

    parts = []
    if sys_words:
        parts.append(f"system prompt contains {' and '.join(repr(w) for w in sys_words)}")
    if user_words:
        parts.append(f"user mentions {' or '.join(repr(w) for w in user_words)}")
    if when is not None:
        parts.append(getattr(when, "__doc__", None) or "custom condition")
    return Rule(name, matches, respond, description or "; ".join(parts) or "always")


def tool_rule(
    tool: str,
    *,
    keywords: Sequence[str],
    arguments: Mapping[str, Any] | Callable[[Prompt], Mapping[str, Any]] | None = None,
    name: str | None = None,
) -> Rule:
    """When the tool is offered and the user mentions a keyword, call it (once per user turn)."""

    def when(p: Prompt) -> bool:
        return p.has_tool(tool) and not p.after_tools and p.mentions(*keywords)

    def respond(p: Prompt) -> Reply:
        args = arguments(p) if callable(arguments) else dict(arguments or {})
        return Reply(tool_calls=(ToolCall(tool, args),))

    return Rule(
        name or f"call {tool}",
        when,
        respond,
        f"tool {tool!r} offered and user mentions {' or '.join(repr(k) for k in keywords)} → call it",
    )


def json_rule(
    name: str,
    build: Callable[[Prompt], Mapping[str, Any]],
    *,
    system_contains: str | Sequence[str] = (),
    when: Predicate | None = None,
    description: str = "",
) -> Rule:
    """A rule that answers with a JSON object (routers, judges, planners)."""
    return rule(
        name,
        lambda p: json.dumps(build(p), sort_keys=True),
        system_contains=system_contains,
        when=when,
        description=description,
    )


def _summarise_tool_results(p: Prompt) -> str:
    return " ".join(f"{r.name} returned: {r.content}." for r in p.tool_results)


def _fallback(p: Prompt) -> str:
    topic = " ".join(p.user.split())
    if len(topic) > 80:
        topic = topic[:77].rstrip() + "..."
    return f"Offline answer to: {topic}" if topic else "Offline answer: (empty request)"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "summarise tool results",
        lambda p: p.after_tools,
        _summarise_tool_results,
        "after a tool round → report each tool's result",
    ),
    Rule("fallback", lambda p: True, _fallback, "nothing else matched → a short deterministic answer"),
)
