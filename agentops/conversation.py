"""Stateful conversations (an explicit state machine) and a conversation planner with success criteria.

**State machine.** A :class:`ConversationSpec` is data: states with entry instructions and the slots they
require, the allowed transitions, the initial state and a pydantic model whose fields are the slots. A
:class:`Conversation` drives one ``ag2.Agent`` through it using AG2's own seams, never by rewriting the
system message: the state and slots travel as AG2 *variables* (``ask(..., variables=...)``) and a prompt
callable turns them into the current state's instructions each turn; the agent changes state and fills
slots through two tools (``go_to``, ``set_slot``) that enforce the machine. An illegal transition, a
state whose required slots are missing or a slot value that fails validation is **refused** — the tool
answers ``REFUSED: ...`` (AG2 passes a raised error to the model as a traceback, so we answer instead),
the refusal is kept in :attr:`Conversation.log`, logged at INFO and sent to listeners as
``handoff.refused`` — and the state does not change. :meth:`Conversation.to_json` /
:meth:`Conversation.restore` persist state, slots, log and transcript, so a conversation survives a
restart (the restored agent starts a fresh AG2 stream; the slots carry what it needs to know).

**Planner.** A :class:`Plan` is data too: steps with a goal, success criteria (chapter 03's assertion
models from :mod:`agentops.evals.assertions`, and/or a natural-language ``criterion`` checked by a judge
— chapter 03's :class:`agentops.evals.Judge` or any callable), a fallback goal and a maximum of
attempts. :func:`run_plan` records every attempt and which
criteria passed, tries the fallback when the attempts are spent, and can ask for a new plan for the
remaining work up to ``max_replans`` times. :func:`propose_plan` asks a model for a plan and validates it
(structure, unique step names, known assertion types) before anything runs.

Why hand-written: ``ag2.network``'s transition graphs route *between agents*; here one agent's prompt
follows a state machine, with slots, refusals and persistence, which AG2 does not provide.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ag2
from ag2 import Context
from pydantic import BaseModel, Field, ValidationError, model_validator

from agentops import _identity  # noqa: F401
from agentops.config import Spec, check_unique, format_validation
from agentops.errors import ConfigError, EmptyOutputError, MalformedOutputError, RefusalError
from agentops.evals.assertions import Assertion, Observed
from agentops.jsonparse import parse_json_object
from agentops.listeners import HANDOFF_REFUSED, Listener, notify

__all__ = [
    "Conversation",
    "ConversationSpec",
    "Plan",
    "PlanRun",
    "PlanStep",
    "StateSpec",
    "TransitionRefused",
    "propose_plan",
    "run_plan",
]

log = logging.getLogger("agentops.conversation")

STATE_VAR, SLOTS_VAR, SPEC_VAR = "conversation_state", "conversation_slots", "conversation_spec"


class TransitionRefused(RefusalError):
    """A transition or slot value the state machine does not allow."""


class StateSpec(Spec):
    """One state: its entry instructions and the slots that must be filled before entering it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    instructions: str
    requires: tuple[str, ...] = ()
    terminal: bool = False


class ConversationSpec(Spec):
    """States, allowed transitions (``(from, to)`` pairs), the initial state and the slots model."""

    name: str
    states: tuple[StateSpec, ...] = Field(min_length=1)
    transitions: tuple[tuple[str, str], ...]
    initial: str
    slots: type[BaseModel]

    @model_validator(mode="after")
    def _consistent(self) -> ConversationSpec:
        names = [s.name for s in self.states]
        check_unique(names, "state names")
        unknown = sorted({n for edge in self.transitions for n in edge} - set(names))
        if unknown:
            raise ValueError(f"transitions name unknown states {unknown}; known: {names}")
        if self.initial not in names:
            raise ValueError(f"initial state {self.initial!r} is not one of {names}")
        slot_names = set(self.slots.model_fields)
        for s in self.states:
            if set(s.requires) - slot_names:
                raise ValueError(f"state {s.name!r} requires unknown slots {sorted(set(s.requires) - slot_names)}")
        return self

    def state(self, name: str) -> StateSpec:
        """The state called ``name``."""
        return next(s for s in self.states if s.name == name)

    def allowed(self, source: str) -> list[str]:
        """States reachable from ``source`` in one transition."""
        return [b for a, b in self.transitions if a == source]

    def diagram(self) -> str:
        """A Mermaid ``stateDiagram-v2`` of the machine."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        lines += [f"    {a} --> {b}" for a, b in self.transitions]
        lines += [f"    {s.name} --> [*]" for s in self.states if s.terminal]
        return "\n".join(lines)


def _state_prompt(ctx: Context) -> str:
    """AG2 prompt callable: the current state's entry instructions, from the turn's variables."""
    spec: ConversationSpec = ctx.variables[SPEC_VAR]
    state = spec.state(ctx.variables[STATE_VAR])
    slots = ctx.variables.get(SLOTS_VAR) or {}
    filled = ", ".join(f"{k}={v}" for k, v in slots.items() if v is not None) or "none"
    missing = [k for k in spec.slots.model_fields if slots.get(k) is None]
    return (
        f"STATE: {state.name}\n{state.instructions}\nSlots filled: {filled}. Missing: {', '.join(missing) or 'none'}.\n"
        f"You may move to: {', '.join(spec.allowed(state.name)) or 'nowhere (final state)'} (tool go_to); "
        "record what the user tells you with set_slots."
    )


@dataclass
class Conversation:
    """One conversation driven through a :class:`ConversationSpec` (see the module docstring).

    Args:
        spec: the machine.
        config: the agent's AG2 ``ModelConfig``.
        prompt: the agent's base instructions (the state's instructions are added per turn).
        listeners: receive ``("handoff.refused", {"from", "to", "reason"})``.
    """

    spec: ConversationSpec
    config: Any
    prompt: str = "You are a helpful assistant that follows the conversation state."
    listeners: Sequence[Listener] = ()
    state: str = ""
    slots: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ConversationSpec):
            raise ConfigError("spec must be a ConversationSpec(...)")
        self.state = self.state or self.spec.initial
        try:
            self.slots = self.spec.slots.model_validate(self.slots or {}).model_dump()
        except ValidationError as exc:
            raise ConfigError(format_validation(exc, "initial slots")) from None
        self.agent = ag2.Agent(
            self.spec.name,
            [self.prompt, _state_prompt],
            config=self.config,
            tools=[self._go_to_tool(), self._slot_tool()],
        )
        self.stream = ag2.MemoryStream()

    # -- the machine ---------------------------------------------------------------------------------
    def _refuse(self, kind: str, target: str, reason: str) -> TransitionRefused:
        entry = {"event": "refused", "kind": kind, "from": self.state, "to": target, "reason": reason}
        self.log.append(entry)
        log.info("conversation %s refused %s %s -> %s: %s", self.spec.name, kind, self.state, target, reason)
        notify(self.listeners, HANDOFF_REFUSED, {"from": self.state, "to": target, "reason": reason})
        return TransitionRefused(f"{kind} {self.state} -> {target} refused: {reason}")

    def go_to(self, target: str) -> None:
        """Move to ``target`` or raise :class:`TransitionRefused` (logged; the state is unchanged)."""
        names = [s.name for s in self.spec.states]
        if target not in names:
            raise self._refuse("transition", target, f"unknown state; states are {names}")
        if target not in self.spec.allowed(self.state):
            allowed = self.spec.allowed(self.state)
            raise self._refuse("transition", target, f"not allowed from {self.state}; allowed: {allowed or 'none'}")
        missing = [s for s in self.spec.state(target).requires if self.slots.get(s) is None]
        if missing:
            raise self._refuse("transition", target, f"fill {missing} first")
        self.log.append({"event": "transition", "kind": "transition", "from": self.state, "to": target, "reason": ""})
        self.state = target

    def fill(self, name: str, value: Any) -> Any:
        """Validate and store one slot value (the slots model decides); refused values raise."""
        if name not in self.spec.slots.model_fields:
            raise self._refuse("slot", name, f"unknown slot; slots are {list(self.spec.slots.model_fields)}")
        try:
            checked = self.spec.slots.model_validate({**self.slots, name: value})
        except ValidationError as exc:
            problem = format_validation(exc, "slot value").removeprefix("invalid slot value: ")
            raise self._refuse("slot", name, f"{value!r} rejected: {problem}") from None
        self.slots[name] = getattr(checked, name)
        self.log.append({"event": "slot", "kind": "slot", "from": self.state, "to": name, "reason": repr(value)})
        return self.slots[name]

    def _go_to_tool(self) -> Any:
        conv = self

        def go_to(state: str) -> str:
            """Move the conversation to another state."""
            try:
                conv.go_to(state)
            except TransitionRefused as exc:
                return f"REFUSED: {exc}"
            return f"OK: now in {state}"

        return go_to

    def _slot_tool(self) -> Any:
        conv = self

        def set_slots(values: dict[str, str]) -> str:
            """Record the values the user gave, e.g. {"party_size": "4"} (each one validated)."""
            done, refused = [], []
            for name in sorted(values):
                try:
                    done.append(f"{name}={conv.fill(name, values[name])}")
                except TransitionRefused as exc:
                    refused.append(str(exc))
            parts = ([f"OK: {', '.join(done)}"] if done else []) + [f"REFUSED: {r}" for r in refused]
            return "; ".join(parts) or "nothing to record"

        return set_slots

    # -- talking ----------------------------------------------------------------------------------------
    async def say(self, text: str) -> str:
        """One user turn: the agent answers in the current state (and may move or fill slots)."""
        if self.spec.state(self.state).terminal:
            raise self._refuse("turn", self.state, "the conversation has ended (terminal state)")
        variables = {STATE_VAR: self.state, SLOTS_VAR: self._plain_slots(), SPEC_VAR: self.spec}
        reply = await self.agent.ask(text, stream=self.stream, variables=variables)
        self.transcript += [("user", text), ("assistant", reply.body or "")]
        return reply.body or ""

    def _plain_slots(self) -> dict[str, Any]:
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.slots.items()}

    def to_json(self) -> str:
        """State, slots, log and transcript as JSON (restore with :meth:`restore`)."""
        data = {
            "spec": self.spec.name,
            "state": self.state,
            "slots": self._plain_slots(),
            "log": self.log,
            "transcript": self.transcript,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def restore(cls, spec: ConversationSpec, config: Any, text: str, **kwargs: Any) -> Conversation:
        """Rebuild a conversation from :meth:`to_json` output (slots re-validated; state checked)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"saved conversation is not JSON ({exc}); pass what to_json() returned") from None
        if data.get("spec") != spec.name:
            raise ConfigError(f"saved conversation is for spec {data.get('spec')!r}, not {spec.name!r}")
        if data.get("state") not in [s.name for s in spec.states]:
            raise ConfigError(f"saved state {data.get('state')!r} is not a state of {spec.name!r}")
        try:
            slots = spec.slots.model_validate(data.get("slots") or {}).model_dump()
        except ValidationError as exc:
            raise ConfigError(format_validation(exc, "saved slots")) from None
        transcript = [tuple(t) for t in data.get("transcript", [])]
        return cls(
            spec,
            config,
            state=data["state"],
            slots=slots,
            log=list(data.get("log", [])),
            transcript=transcript,
            **kwargs,
        )

    def log_frame(self) -> Any:
        """The transition/slot/refusal log as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.log, columns=["event", "kind", "from", "to", "reason"])


# --------------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------------


class PlanStep(Spec):
    """One step: a goal, how success is judged, a fallback goal and an attempt budget."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    goal: str = Field(min_length=1)
    success: list[Assertion] = Field(default_factory=list)
    criterion: str | None = None
    fallback: str | None = None
    max_attempts: int = Field(2, ge=1, le=5)

    @model_validator(mode="after")
    def _has_criteria(self) -> PlanStep:
        if not self.success and not self.criterion:
            raise ValueError(f"step {self.name!r} has no success criteria: add assertions or a judge criterion")
        return self


class Plan(Spec):
    """A goal and its ordered steps (unique names)."""

    goal: str = Field(min_length=1)
    steps: list[PlanStep] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _unique(self) -> Plan:
        check_unique([s.name for s in self.steps], "plan step names")
        return self


JudgeFn = Callable[[str, str], "bool | Awaitable[bool]"]


async def _judge(judge: Any, step: PlanStep, text: str) -> bool:
    """A step's criterion through chapter 03's :class:`agentops.evals.Judge` (the rubric judge, its
    thresholds and majority vote: the criterion is the case's reference) or a plain callable."""
    from agentops.evals import Judge

    if isinstance(judge, Judge):
        from agentops.evals.cases import EvalCase

        case = EvalCase(id=f"plan-step-{step.name}", prompt=step.goal, reference=step.criterion, graded=True)
        return (await judge.grade(case, text)).passed
    verdict = judge(step.criterion, text)
    return bool(await verdict if inspect.isawaitable(verdict) else verdict)


@dataclass
class PlanRun:
    """Every attempt of every step: which goal variant ran, its output and which criteria passed."""

    goal: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    replans: int = 0

    def frame(self) -> Any:
        """One row per attempt: step, attempt, variant, passed, criteria (label: ✓/✗), output."""
        import pandas as pd

        return pd.DataFrame(self.attempts, columns=["step", "attempt", "variant", "passed", "criteria", "output"])

    @property
    def outputs(self) -> dict[str, str]:
        """The passing output of each step that passed."""
        return {a["step"]: a["output"] for a in self.attempts if a["passed"]}


async def _check(step: PlanStep, text: str, judge: Any) -> tuple[bool, str]:
    marks = []
    for a in step.success:
        res = a.check(Observed(text))
        marks.append((res.label, res.passed))
    if step.criterion:
        marks.append((f"judge[{step.criterion}]", await _judge(judge, step, text)))
    return all(ok for _, ok in marks), "; ".join(f"{label} {'✓' if ok else '✗'}" for label, ok in marks)


async def _run_step(step: PlanStep, agent: ag2.Agent, done: dict[str, str], run: PlanRun, judge: Any) -> bool:
    context = "".join(f"\n\n[{k}] {v}" for k, v in done.items())
    variants = [("primary", step.goal)] + ([("fallback", step.fallback)] if step.fallback else [])
    for variant, goal in variants:
        for attempt in range(1, step.max_attempts + 1):
            reply = await agent.ask(f"Step {step.name}: {goal}" + (f"\n\nEarlier results:{context}" if context else ""))
            text = reply.body or ""
            passed, criteria = await _check(step, text, judge)
            run.attempts.append(
                {
                    "step": step.name,
                    "attempt": attempt,
                    "variant": variant,
                    "passed": passed,
                    "criteria": criteria,
                    "output": text,
                }
            )
            if passed:
                done[step.name] = text
                return True
    return False


async def run_plan(
    plan: Plan,
    agent: ag2.Agent,
    *,
    judge: Any = None,
    planner: ag2.Agent | None = None,
    max_replans: int = 1,
) -> PlanRun:
    """Run ``plan`` step by step with ``agent``; fall back, then replan (bounded) when a step fails.

    Args:
        plan: the validated plan.
        agent: the AG2 agent that carries out each step.
        judge: for steps with a ``criterion``: an :class:`agentops.evals.Judge` (chapter 03's rubric judge;
            the criterion becomes the case's reference, the judge's thresholds decide) or any
            ``judge(criterion, output) -> bool`` (sync or async).
        planner: an agent asked (via :func:`propose_plan`) for a new plan for the remaining work.
        max_replans: how many times a new plan may be asked for.
    """
    if not isinstance(plan, Plan):
        raise ConfigError("plan must be a Plan(...); validate a model's proposal with propose_plan()")
    if judge is None and any(s.criterion for s in plan.steps):
        raise ConfigError("a step has a judge criterion but no judge was given: pass judge=...")
    run, done, steps = PlanRun(plan.goal), {}, list(plan.steps)
    while steps:
        step = steps.pop(0)
        if await _run_step(step, agent, done, run, judge):
            continue
        if planner is None or run.replans >= max_replans:
            run.status = f"failed at {step.name}"
            return run
        run.replans += 1
        remaining = f"{plan.goal} (continue from step {step.name!r}; done so far: {', '.join(done) or 'nothing'})"
        try:
            steps = list((await propose_plan(planner, remaining)).steps)
        except ConfigError as exc:  # an invalid new plan ends the run; nothing of it runs
            run.status = f"failed at {step.name}; replan rejected: {str(exc)[:80]}"
            return run
    run.status = "succeeded"
    return run


async def propose_plan(planner: ag2.Agent, goal: str) -> Plan:
    """Ask ``planner`` for a plan as JSON and validate it before anything runs.

    Raises:
        ConfigError: the answer is not a valid :class:`Plan` (the message names the first problem).
    """
    reply = await planner.ask(f"Goal: {goal}\nAnswer with a JSON plan.")
    try:
        return parse_json_object(reply.body, Plan)
    except (MalformedOutputError, EmptyOutputError) as exc:
        raise ConfigError(f"the proposed plan was rejected before running: {exc}") from None
