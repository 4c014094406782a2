"""Helpers shared by the tests/test_telemetry_*.py files (a plain module, not a test file)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agentops.models import OfflineModel, tool_rule
from agentops.telemetry import Telemetry

CANARY = "sk-canaryLEAK0123456789abcdefXYZ"

# One event of each kind the observability hook carries, with its payload.
EVENTS = [
    ("guardrail.finding", {"agent": "writer", "entity_type": "EMAIL", "where": "input", "action": "redact"}),
    ("tool.denied", {"agent": "writer", "tool": "delete_file", "reason": "scope files:write missing"}),
    ("budget.refused", {"agent": "writer", "budget": "conversation", "scope": "shared"}),
    (
        "escalation",
        {"rule": "refund_over_500", "severity": "high", "handler": "human", "outcome": "approved"},
    ),
    ("handoff.refused", {"from": "planner", "to": "reviewer", "reason": "edge not allowed"}),
    ("llm.malformed", {"agent": "writer", "model": "offline-1"}),
]


def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def weather_model(seed: int = 1, **kw) -> OfflineModel:
    cfg = OfflineModel("offline-1", seed=seed, **kw)
    cfg.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Paris"}))
    return cfg


def logged_telemetry() -> Iterator[Telemetry]:
    """A fixture body: a memory Telemetry of its own logger, DEBUG lines kept in ``.buf``; shut down after."""
    t = Telemetry(logger=logging.getLogger(f"agentops.telemetry.test{id(object())}"))
    buf = io.StringIO()
    t.log_to(buf, level=logging.DEBUG)
    t.buf = buf
    yield t
    t.shutdown()


def log_lines(t: Telemetry) -> list[dict]:
    return [json.loads(line) for line in t.buf.getvalue().splitlines()]


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    from prometheus_client import generate_latest

    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
