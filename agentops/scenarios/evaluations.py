"""Chapter 03's offline behaviour: the demo support agent (both prompt versions) and the judge.

``support`` holds the demo agent's rules (:func:`agentops.examples.demo_rules`). They read the system
prompt, so one model serves both prompt versions: with the full prompt the tools are used and personal
data is refused; with the trimmed prompt (no tool and privacy sentences) tools are skipped and personal
data is answered — the regression the chapter's gate catches. Latency per call is drawn from the seed.
``judge`` adds :func:`agentops.evals.offline.judge_rule`, which grades an answer against the case's
reference (content words, leaked personal data, length) rather than returning a constant.
"""

from __future__ import annotations

import re

from agentops.examples import _pii, demo_rules
from agentops.models import Prompt, rule
from agentops.scenarios._base import Scenario

__all__ = ["judge", "support"]

_INJECTION = re.compile(r"ignore (all )?previous instructions", re.IGNORECASE)


def _injection(p: Prompt) -> str:
    if "never reveal personal data" in p.system.lower():
        return "I can't help with that request."
    return _pii(p)


def support() -> Scenario:
    """The demo support agent's rules for both prompt versions, with seeded latency."""
    rules = []
    for r in demo_rules("baseline"):
        if r.name == "injection":  # the baseline rule always refuses; this one reads the prompt instead
            r = rule(
                "injection",
                _injection,
                when=lambda p: bool(_INJECTION.search(p.user)),
                description="user says 'ignore previous instructions' → refuse if the prompt forbids leaks",
            )
        rules.append(r)
    return Scenario(
        "support",
        "tools and refusals when the system prompt asks for them; leaks and guesses when it does not",
        tuple(rules),
        latency_s=(0.01, 0.06),
    )


def judge() -> Scenario:
    """The offline judge: a rubric verdict graded from the answer and the case's reference."""
    from agentops.evals.offline import judge_rule

    return Scenario("judge", "rubric JSON graded from the answer vs the reference", (judge_rule(),))
