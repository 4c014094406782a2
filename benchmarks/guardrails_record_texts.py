"""A pytest plugin that records every text the test suite passes to ``scan`` and ``rule_score``.

The red-team and property tests build their inputs in code; this collects them for
``benchmarks/guardrails_outputs.py --texts``::

    PYTHONPATH=.:benchmarks RECORD_TEXTS=/tmp/texts.jsonl python -m pytest -p guardrails_record_texts \\
        tests/test_guardrails*.py
"""

from __future__ import annotations

import json
import os
import sys

_SEEN: set[str] = set()


def _record(text: object) -> None:
    if isinstance(text, str) and len(text) <= 200_000:
        _SEEN.add(text)


def _patch() -> None:
    from agentops.guardrails import injection, scanners

    real_scan, real_rules = scanners.scan, injection.rule_score

    def scan(text, entities=None):
        _record(text)
        return real_scan(text, entities)

    def rule_score(text):
        _record(text)
        return real_rules(text)

    for module in list(sys.modules.values()):
        if not (getattr(module, "__name__", "") or "").startswith(("agentops", "test_", "tests.")):
            continue
        for name, new, old in (("scan", scan, real_scan), ("rule_score", rule_score, real_rules)):
            if getattr(module, name, None) is old:
                setattr(module, name, new)


def pytest_configure(config: object) -> None:
    _patch()


def pytest_collection_finish(session: object) -> None:
    _patch()  # test modules imported the functions while being collected


def pytest_unconfigure(config: object) -> None:
    path = os.environ.get("RECORD_TEXTS", "guardrail_texts.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for text in sorted(_SEEN):
            f.write(json.dumps({"text": text}) + "\n")
