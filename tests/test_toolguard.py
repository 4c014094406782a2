import ag2
import pytest
from ag2.events import ToolCallEvent
from ag2.testing import TestConfig

from agentops.errors import ConfigError
from agentops.toolguard import ToolCallGuard, check_arguments

ran: list[str] = []


def get_weather(city: str) -> str:
    """Weather for a city."""
    ran.append(city)
    return f"sunny in {city}"


def test_check_arguments_names_the_problem():
    assert check_arguments('{"city": "Paris"}') is None and check_arguments("") is None
    assert "not valid JSON" in check_arguments('{"city": "Par')
    assert "must be a JSON object, got list" in check_arguments("[1]")


async def test_malformed_arguments_are_answered_to_the_model_without_running_the_tool():
    ran.clear()
    guard = ToolCallGuard(max_tool_rounds=3)
    config = TestConfig(
        ToolCallEvent("get_weather", id="c1", arguments='{"city": "Par'),
        ToolCallEvent("get_weather", id="c2", arguments='{"city": "Paris"}'),
        "It is sunny in Paris.",
    )
    agent = ag2.Agent("w", "Use tools.", config=config, tools=[get_weather], middleware=[guard])
    reply = await agent.ask("Weather in Paris?")
    assert reply.body == "It is sunny in Paris." and ran == ["Paris"]
    assert guard.malformed == 1 and guard.capped == 0
    events = await reply.history.get_events()
    first_result = next(e for e in events if type(e).__name__ == "ToolResultEvent")
    assert "not run because the arguments are not valid JSON" in first_result.result.parts[0].content
    first_call = next(e for e in events if isinstance(e, ToolCallEvent))
    assert first_call.arguments == "{}"  # the history stays valid for every provider


async def test_tool_rounds_are_capped_per_turn():
    ran.clear()
    guard = ToolCallGuard(max_tool_rounds=2)
    calls = [ToolCallEvent("get_weather", id=f"c{i}", arguments='{"city": "Oslo"}') for i in range(4)]
    agent = ag2.Agent("w", "Use tools.", config=TestConfig(*calls), tools=[get_weather], middleware=[guard])
    reply = await agent.ask("Weather?")
    assert ran == ["Oslo", "Oslo"] and guard.capped == 1
    assert reply.body == "(stopped: the model asked for more tools after 2 tool rounds)"
    assert reply.response.finish_reason == "tool_rounds"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_max_tool_rounds_must_be_positive(bad):
    with pytest.raises(ConfigError, match="max_tool_rounds must be a positive int"):
        ToolCallGuard(bad)
