"""Helpers shared by the tests/test_evals_*.py files (a plain module, not a test file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ag2.events import Usage

from agentops.evals import EvalSuite, run_suite
from agentops.evals.cases import suite_from_dict
from agentops.evals.results import CaseResult
from agentops.evals.targets import TargetResponse

DATA = Path(__file__).parent / "data" / "evals"
ROOT = Path(__file__).resolve().parents[1]
USAGE = {"offline-1": Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)}


def suite_of(*cases: dict, **extra) -> EvalSuite:
    """A suite named ``t`` from case mappings (validated like a suite file)."""
    return suite_from_dict({"name": "t", "cases": list(cases), **extra})


def case(assertion: dict | None = None, **kw) -> dict:
    """One case mapping with a single assertion (id ``c1`` and a neutral prompt unless given)."""
    base = {"id": kw.pop("id", "c1"), "prompt": kw.pop("prompt", "question?")}
    if assertion is not None:
        base["assert"] = [assertion]
    return {**base, **kw}


def respond(text: str = "", *, usage: dict | None = None, calls=(), delay: float = 0.0):
    """A target answering ``text`` with the given usage and tool calls."""

    async def target(prompt: str):
        if delay:
            await asyncio.sleep(delay)
        return TargetResponse(text, usage=usage if usage is not None else {}, tool_calls=calls)

    return target


async def one(assertion: dict, target) -> CaseResult:
    """Run one case with ``assertion`` against ``target``; its result."""
    run = await run_suite(suite_of(case(assertion)), target, progress=False)
    return run.cases[0]
