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


# --------------------------------------------------------------------------------------------------
# Malformed arguments from a provider: a clear, retryable MalformedOutputError before any tool runs
# --------------------------------------------------------------------------------------------------

URL = "http://fake/v1"
CUT = '{"city": "Par'  # arguments cut at max_tokens


def _registry():
    from agentops import tools

    registry = tools.ToolRegistry()
    registry.register(get_weather, scopes=["weather:read"], cost_usd=0.001)
    registry.grant("ops", "weather:read")
    return registry


def _budget(model):
    from agentops import budgets

    ledger = budgets.InProcessLedger()
    caps = [budgets.Budget("conversation", scope="conversation", max_tokens=10_000)]
    return ledger, budgets.BudgetMiddleware(ledger, agent="ops", model=model, max_completion_tokens=64, budgets=caps)


def _config(*replies):
    from agentops.models import model_config
    from agentops.testing import chat_server

    return model_config("compatible", "fake-1", base_url=URL, transport=chat_server(list(replies)), max_tokens=64)


def test_check_tool_calls_names_model_tool_problem_and_fix():
    from ag2.events import ModelResponse, ToolCallsEvent

    from agentops.errors import MalformedOutputError, is_retryable
    from agentops.toolguard import check_tool_calls

    calls = ToolCallsEvent([ToolCallEvent("get_weather", id="c1", arguments=CUT)])
    cut = ModelResponse(tool_calls=calls, model="smol", finish_reason="length")
    with pytest.raises(MalformedOutputError) as info:
        check_tool_calls(cut)
    text = str(info.value)
    assert text.startswith("the model 'smol' called tool 'get_weather' with unusable arguments: the arguments are not")
    assert "raise max_tokens" in text and "The tool was not run" in text and "ToolCallGuard" in text
    assert is_retryable(info.value) and info.value.response is cut and list(info.value.problems) == ["c1"]
    listed = ModelResponse(tool_calls=ToolCallsEvent([ToolCallEvent("get_weather", id="c2", arguments="[1]")]))
    with pytest.raises(MalformedOutputError, match="must be a JSON object, got list"):
        check_tool_calls(listed)
    good = ModelResponse(
        tool_calls=ToolCallsEvent([ToolCallEvent("get_weather", id="c3", arguments='{"city": "Oslo"}')])
    )
    assert check_tool_calls(good) is good


async def test_provider_config_raises_before_the_tool_runs_and_books_only_what_was_served(allow_model_requests):
    from agentops.errors import MalformedOutputError
    from agentops.testing import chat_completion
    from agentops.usage import UsageMeter

    ran.clear()
    registry, meter = _registry(), UsageMeter()
    cfg = _config(chat_completion(None, tool_calls=[("get_weather", CUT)], finish_reason="length", usage=(20, 64)))
    ledger, budget = _budget(cfg)
    agent = ag2.Agent(
        "ops", config=cfg, tools=registry.tools_for("ops"),
        middleware=[meter.middleware(), budget, registry.authorizer("ops")],
    )  # fmt: skip
    with pytest.raises(MalformedOutputError, match=r"called tool .get_weather. with unusable arguments.*max_tokens"):
        await agent.ask("Weather in Paris?")
    assert ran == [] and registry.calls_frame().empty and registry.spend() == 0.0  # not run, not audited, not billed
    # the model call was served: booked once, counted malformed, not an error
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens) == (1, 0, 1, 84)
    account = ledger.accounts()[0]
    assert account["spent_tokens"] == 84 and ledger.in_flight() == 0


async def test_guard_answers_the_model_which_corrects_itself(allow_model_requests):
    from agentops.testing import chat_completion
    from agentops.usage import UsageMeter

    ran.clear()
    registry, meter, guard = _registry(), UsageMeter(), ToolCallGuard(max_tool_rounds=3)
    cfg = _config(
        chat_completion(None, tool_calls=[("get_weather", CUT)], finish_reason="length", usage=(20, 64)),
        chat_completion(None, tool_calls=[("get_weather", '{"city": "Paris"}')], usage=(40, 10)),
        chat_completion("It is sunny in Paris.", usage=(60, 6)),
    )
    ledger, budget = _budget(cfg)
    agent = ag2.Agent(
        "ops", config=cfg, tools=registry.tools_for("ops"),
        middleware=[guard, meter.middleware(), budget, registry.authorizer("ops")],
    )  # fmt: skip
    reply = await agent.ask("Weather in Paris?")
    assert reply.body == "It is sunny in Paris." and ran == ["Paris"] and (guard.calls, guard.malformed) == (2, 1)
    notes = guard.drain()
    assert len(notes) == 1 and notes[0].startswith("get_weather: the arguments are not valid JSON")
    assert guard.drain() == []
    assert registry.calls_frame().outcome.tolist() == ["ok"]  # only the call that ran is audited and billed
    assert registry.spend() == 0.001
    assert meter.tokens == 84 + 50 + 66 and ledger.accounts()[0]["spent_tokens"] == 200
    sent = cfg.http_client._transport.inner.requests if hasattr(cfg.http_client._transport, "inner") else None
    told = [m for m in (sent or [{}])[-1].get("messages", []) if m.get("role") == "tool"] if sent else []
    assert not sent or "not run because the arguments are not valid JSON" in told[0]["content"]


async def test_retry_policy_asks_again_and_the_valid_call_runs(allow_model_requests):
    from agentops.resilience import RetryPolicy
    from agentops.testing import chat_completion
    from agentops.usage import UsageMeter

    async def no_wait(_s: float) -> None:
        return None

    ran.clear()
    registry, meter = _registry(), UsageMeter()
    policy = RetryPolicy(max_attempts=2, sleep=no_wait, seed=0)
    cfg = _config(
        chat_completion(None, tool_calls=[("get_weather", CUT)], finish_reason="length", usage=(20, 64)),
        chat_completion(None, tool_calls=[("get_weather", '{"city": "Paris"}')], usage=(20, 10)),
        chat_completion("It is sunny in Paris.", usage=(40, 6)),
    )
    agent = ag2.Agent(
        "ops", config=cfg, tools=registry.tools_for("ops"),
        middleware=[policy, meter.middleware(), registry.authorizer("ops")],
    )  # fmt: skip
    reply = await agent.ask("Weather in Paris?")
    assert reply.body == "It is sunny in Paris." and ran == ["Paris"]
    assert policy.retries["MalformedOutputError"] == 1 and registry.calls_frame().outcome.tolist() == ["ok"]
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens) == (3, 0, 1, 84 + 30 + 46)


async def test_offline_model_cut_at_max_tokens_is_retried_then_refused_clearly():
    from agentops.errors import MalformedOutputError
    from agentops.models import model_config
    from agentops.resilience import RetryPolicy
    from agentops.rules import tool_rule

    async def no_wait(_s: float) -> None:
        return None

    ran.clear()
    cfg = model_config("offline", max_tokens=6)
    cfg.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Lisbon, Portugal, Europe"}))
    policy = RetryPolicy(max_attempts=2, sleep=no_wait, seed=0)
    agent = ag2.Agent("ops", config=cfg, tools=[get_weather], middleware=[policy])
    with pytest.raises(MalformedOutputError, match=r"'get_weather' with unusable arguments.*raise max_tokens"):
        await agent.ask("What's the weather?")
    assert ran == [] and policy.retries["MalformedOutputError"] == 1 and policy.gave_up == 1
