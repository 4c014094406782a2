"""Offline rules for chapter 06 (advanced patterns): what the simulator answers for each role.

Not part of the package's API. The chapter's visible code is what a reader writes for a real provider;
these rules only make the offline model play the planner, solver, synthesiser, director, specialists,
the stateful booking assistant and the conversation planner's roles deterministically. Print them with
``model.rules_frame()``.

>>> from agentops.models import OfflineModel
>>> model = OfflineModel(rules=advanced_rules())
>>> len(model.rules) > 5
True
"""

from __future__ import annotations

import re

from agentops.models import Prompt, Reply, Rule, ToolCall, json_rule, rule

__all__ = ["LAUNCH_TASK", "PLAN_TABLE", "advanced_rules", "delegation_rules"]

LAUNCH_TASK = "Plan the product launch"

#: The offline planner's decompositions (keys are lower-case tasks). One entry repeats its own task
#: (the cycle guard refuses it) and one leaf ("Check legal approval") gets an empty answer (a failed leaf).
PLAN_TABLE: dict[str, list[str]] = {
    "plan the product launch": [
        "Research the market",
        "Set the price",
        "Write the announcement",
        "Check legal approval",
    ],
    "research the market": ["Size the customer segment", "Survey competitors"],
    "write the announcement": ["Write the announcement", "Draft the headline", "Draft the body copy"],
}

_ANSWERS = {
    "size the customer segment": "About 40,000 small shops fit the profile.",
    "survey competitors": "Two competitors; both charge monthly and lack offline mode.",
    "set the price": "Price at $19 per month with a 14-day trial.",
    "draft the headline": "Headline: 'Your shop, even offline'.",
    "draft the body copy": "Body: three short paragraphs on offline mode, pricing and setup.",
}
_FAILING = ("legal",)  # the offline solver answers these with nothing (a failed leaf)
_CHECKS = re.compile(r"(\d+) independent checks", re.IGNORECASE)


def _task_line(p: Prompt) -> str:
    m = re.search(r"^Task:\s*(.+)$", p.user, re.MULTILINE)
    return (m.group(1) if m else p.user).strip()


def _plan(p: Prompt) -> dict[str, list[str]]:
    task = _task_line(p)
    checks = _CHECKS.search(task)
    if checks:
        return {"subtasks": [f"Check item {i + 1}" for i in range(int(checks.group(1)))]}
    return {"subtasks": PLAN_TABLE.get(" ".join(task.casefold().split()).rstrip("."), [])}


def _solve(p: Prompt) -> str:
    task = " ".join(p.user.split())
    if any(word in task.casefold() for word in _FAILING):
        return ""
    return _ANSWERS.get(task.casefold().rstrip("."), f"{task}: done.")


def _synthesise(p: Prompt) -> str:
    lines = [ln for ln in p.user.splitlines() if ln.startswith("- ")]
    missing = [ln[2:].split(":")[0] for ln in lines if "[missing:" in ln]
    note = f"; missing: {', '.join(missing)}" if missing else ""
    return f"{_task_line(p)}: combined {len(lines) - len(missing)} of {len(lines)} results{note}."


def _direct(p: Prompt) -> Reply | str:
    if p.after_tools:
        return "Director summary: " + " ".join(r.content for r in p.tool_results)
    calls = tuple(ToolCall(t, {"objective": p.user}) for t in p.tools if t.startswith("task_"))
    return Reply(tool_calls=calls)


def delegation_rules() -> list[Rule]:
    """Planner, solver and synthesiser rules (recursive decomposition) and a director with specialists."""
    return [
        json_rule(
            "planner: split a task",
            _plan,
            system_contains="you decompose tasks",
            description="planner → subtasks from PLAN_TABLE ('N independent checks' → N items)",
        ),
        rule(
            "solver: answer a leaf",
            _solve,
            system_contains="you complete one small task",
            description="solver → a canned answer; tasks mentioning 'legal' get an empty answer",
        ),
        rule(
            "synthesiser: combine",
            _synthesise,
            system_contains="you synthesise subtask results",
            description="synthesiser → counts results and names the missing ones",
        ),
        rule(
            "director: delegate to every specialist",
            _direct,
            system_contains="you are a director",
            description="director → one task_* call per specialist (same turn), then summarises",
        ),
        rule("researcher", lambda p: f"Research notes on: {p.user.splitlines()[0]}", system_contains="you research"),
        rule("writer", lambda p: f"Draft copy for: {p.user.splitlines()[0]}", system_contains="you write"),
    ]


def advanced_rules() -> list[Rule]:
    """Every chapter 06 rule, in match order."""
    rules = delegation_rules()
    try:
        from agentops.conversation import offline_rules as conversation_rules
    except ImportError:  # pragma: no cover - conversation is part of the same chapter
        return rules
    return rules + conversation_rules()
