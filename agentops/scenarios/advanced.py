"""Chapter 06's offline behaviour: what the simulator answers for each role of the advanced patterns.

Scenarios (``load_scenario(name, cfg)``; a real provider's config is left alone):

* ``delegation`` — the planner (splits from :data:`PLAN_TABLE`; one entry repeats its own task, which
  the cycle guard refuses), the solver (canned answers; a task mentioning "legal" gets an empty answer:
  a failed leaf), the synthesiser (counts results and names the missing ones), a director that calls
  every specialist tool in one turn, and the researcher and writer specialists.
* ``conversations`` — the booking assistant that drives the state machine through its tools, the plan
  worker (the French translation needs the glossary fallback) and the planner that proposes
  :data:`RELEASE_PLAN` (or, asked for a "broken" plan, one without success criteria).
* ``advanced`` — both, in that order (the chapter loads this one).

The chapter's visible code is what a reader writes for a real provider.
"""

from __future__ import annotations

import re
from typing import Any

from agentops.models import Prompt, Reply, Rule, ToolCall, json_rule, rule
from agentops.scenarios._base import Scenario

__all__ = [
    "LAUNCH_TASK",
    "PLAN_TABLE",
    "RELEASE_PLAN",
    "advanced",
    "booking_spec",
    "conversations",
    "delegation",
]

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


def _delegation_rules() -> list[Rule]:
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
        rule("writer", lambda p: f"Draft copy for: {p.user.splitlines()[0]}", system_contains="you write copy"),
    ]


def delegation() -> Scenario:
    """Planner, solver and synthesiser (recursive decomposition), a director and its specialists."""
    return Scenario("delegation", "planner, solver, synthesiser, director and specialists", tuple(_delegation_rules()))


def conversations() -> Scenario:
    """The booking assistant, the plan worker and the planner."""
    return Scenario(
        "conversations",
        "booking assistant (state machine tools), plan worker and planner",
        tuple(_conversation_rules()),
    )


def advanced() -> Scenario:
    """Every chapter 06 role: :func:`delegation` then :func:`conversations`."""
    return Scenario(
        "advanced",
        "every chapter 06 role: delegation tree, director and specialists, booking, plans",
        tuple(_delegation_rules() + _conversation_rules()),
    )


# --------------------------------------------------------------------------------------------------
# Stateful conversation (a table booking) and the conversation planner (publishing release notes)
# --------------------------------------------------------------------------------------------------

_PEOPLE = re.compile(r"(\d+)\s+(?:people|guests)", re.IGNORECASE)
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_NAME = re.compile(r"\bunder\s+([A-Z][\w-]*)")


def _booking(p: Prompt) -> Reply | str:
    state = (re.search(r"STATE: (\w+)", p.system) or [None, "?"])[1]
    if p.after_tools:
        return f"[{state}] " + " ".join(r.content for r in p.tool_results)
    calls: list[ToolCall] = []
    text = p.user.casefold()
    values = {
        k: m.group(1)
        for k, m in (
            ("party_size", _PEOPLE.search(p.user)),
            ("date", _DATE.search(p.user)),
            ("name", _NAME.search(p.user)),
        )
        if m
    }
    if values:
        calls.append(ToolCall("set_slots", {"values": values}))
    elif state == "greeting":
        calls.append(ToolCall("go_to", {"state": "collecting"}))
    elif "book it" in text:
        calls.append(ToolCall("go_to", {"state": "booked"}))
    elif "confirm" in text:
        calls.append(ToolCall("go_to", {"state": "confirming"}))
    elif "change" in text:
        calls.append(ToolCall("go_to", {"state": "collecting"}))
    return Reply(tool_calls=tuple(calls)) if calls else f"[{state}] How can I help with your booking?"


_STEP_ANSWERS = (
    ("glossary", "Notes de version 2.1 : synchronisation plus rapide et mode hors ligne."),
    ("step translate", "Release notes 2.1 (French translation pending)."),
    ("step draft", "Release notes for version 2.1: faster sync and an offline mode."),
    ("step announce", "Version 2.1 is available now."),
)

RELEASE_PLAN: dict = {
    "goal": "Publish the release notes for version 2.1 in French",
    "steps": [
        {
            "name": "draft",
            "goal": "Draft the release notes for version 2.1",
            "success": [{"type": "contains_all", "values": ["2.1", "offline"]}],
        },
        {
            "name": "translate",
            "goal": "Translate the notes to French",
            "success": [{"type": "contains_any", "values": ["Notes de version"]}],
            "fallback": "Translate the notes to French using the glossary: release notes = Notes de version",
            "max_attempts": 2,
        },
        {
            "name": "announce",
            "goal": "Write a one-line announcement",
            "success": [
                {"type": "contains_any", "values": ["available"]},
                {"type": "not_contains", "values": ["pending"]},
            ],
        },
    ],
}


def _step(p: Prompt) -> str:
    head = p.user.casefold()
    return next((answer for key, answer in _STEP_ANSWERS if key in head), f"Done: {p.user.splitlines()[0]}")


def _propose(p: Prompt) -> dict:
    if "broken" in p.user.casefold():
        return {"goal": "broken", "steps": [{"name": "only", "goal": "do it"}]}  # no success criteria
    return RELEASE_PLAN


def _conversation_rules() -> list[Rule]:
    """The booking assistant (state machine tools) and the plan worker and planner."""
    return [
        rule(
            "booking: follow the state",
            _booking,
            system_contains="STATE:",
            description="set_slots for numbers/dates/names; go_to for greet/'book it'/'confirm'/'change'",
        ),
        rule(
            "plan worker: one step",
            _step,
            system_contains="you carry out one plan step",
            description="canned step outputs; the French translation needs the glossary (fallback)",
        ),
        json_rule(
            "planner: propose a plan",
            _propose,
            system_contains="you write plans",
            description="RELEASE_PLAN as JSON; 'broken' → a plan without success criteria",
        ),
    ]


def booking_spec() -> Any:
    """The chapter's table-booking state machine (the notebook builds the same one in a cell)."""
    import datetime as dt

    from pydantic import BaseModel, Field

    from agentops.conversation import ConversationSpec, StateSpec

    class Booking(BaseModel):
        party_size: int | None = Field(None, ge=1, le=12)
        date: dt.date | None = None
        name: str | None = Field(None, min_length=1, max_length=40)

    every = ("party_size", "date", "name")
    return ConversationSpec(
        name="booking",
        states=[
            StateSpec(name="greeting", instructions="Greet the guest and offer to book a table."),
            StateSpec(name="collecting", instructions="Ask for the party size, the date and a name."),
            StateSpec(name="confirming", instructions="Read the booking back and ask for a yes.", requires=every),
            StateSpec(
                name="booked", instructions="Thank the guest; the table is booked.", requires=every, terminal=True
            ),
        ],
        transitions=[
            ("greeting", "collecting"),
            ("collecting", "confirming"),
            ("confirming", "booked"),
            ("confirming", "collecting"),
        ],
        initial="greeting",
        slots=Booking,
    )
