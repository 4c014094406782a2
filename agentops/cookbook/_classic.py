"""The classic-API → AG2 v1 → ``agentops`` map shown in the README and the quickstart chapter.

Every dotted ``ag2.…`` and ``agentops.…`` name below is resolved by a test, so the map cannot point
at something that does not exist.
"""

from __future__ import annotations

from typing import Any

CLASSIC_TO_V1: tuple[tuple[str, str, str], ...] = (
    (
        "ConversableAgent / AssistantAgent + LLMConfig",
        "ag2.Agent(name, prompt, config=ag2.config.ModelConfig)",
        "agentops.models.model_config · ch. 00",
    ),
    ("initiate_chat(max_turns=...)", "await agent.ask(...) then reply.ask(...)", "ch. 00"),
    (
        "GroupChat + GroupChatManager",
        "ag2.network Hub + TransitionGraph (workflow)",
        "agentops.graph (enforced edges, router) · ch. 01",
    ),
    (
        "nested chats / register_nested_chats",
        "specialist.as_tool() subagent tools; ag2.TaskConfig → run_subtasks",
        "agentops.delegation.Team, agentops.delegation.Delegator (limits, budget pool, cost tree) · ch. 06",
    ),
    (
        "UserProxyAgent (human_input_mode)",
        "hitl_hook + ag2.middleware.approval_required() / ctx.input()",
        "agentops.workflows approvals · agentops.tools · ch. 01–02",
    ),
    (
        "register_reply / hooks",
        "middleware: on_turn, on_llm_call, on_tool_execution, on_human_input",
        "agentops.guardrails, agentops.budgets · ch. 02",
    ),
    (
        "runtime_logging",
        "ag2.middleware TelemetryMiddleware, MetricsMiddleware, LoggingMiddleware",
        "agentops.telemetry · ch. 04",
    ),
    (
        "Cache (disk / redis)",
        "none built in; ag2.testing.TestConfig scripts replies for tests",
        "agentops.cassettes (record/replay of a real model) · agentops.caching (response/semantic cache, ch. 05)"
        " · agentops.models offline model · ch. 00, 09",
    ),
    ("eval scripts", "ag2.eval (Suite, run_agent, RunResult.diff)", "agentops.evals · ch. 03"),
)


def classic_mapping() -> Any:
    """The classic-API → AG2 v1 → agentops map as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(list(CLASSIC_TO_V1), columns=["classic API", "AG2 v1", "agentops / chapter"])
