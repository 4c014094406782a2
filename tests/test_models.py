from __future__ import annotations

import json
import socket

import ag2
import pytest
from ag2.middleware import RetryMiddleware

from agentops.errors import ConfigError, MissingCredentialsError, MissingDependencyError
from agentops.models import (
    BACKENDS,
    Faults,
    OfflineModel,
    ProviderTimeout,
    RateLimitError,
    Reply,
    ServerError,
    ToolCall,
    count_tokens,
    json_rule,
    model_config,
    rule,
    tool_rule,
)
from agentops.pricing import cost


def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def weather_model(**kw) -> OfflineModel:
    m = OfflineModel(**kw)
    m.add_rule(tool_rule("get_weather", keywords=["weather"], arguments=lambda p: {"city": p.user.split()[-1]}))
    return m


async def transcript(model: OfflineModel, questions: list[str]) -> list[str]:
    agent = ag2.Agent("w", "You are a weather bot.", config=model, tools=[get_weather])
    reply = await agent.ask(questions[0])
    out = [reply.body]
    for q in questions[1:]:
        reply = await reply.ask(q)
        out.append(reply.body)
    return out


def test_count_tokens_counts_words_and_punctuation():
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0


async def test_same_seed_and_conversation_give_identical_replies_and_usage():
    qs = ["weather in Oslo", "and tomorrow?", "thanks"]
    a, b = weather_model(seed=3), weather_model(seed=3)
    assert await transcript(a, qs) == await transcript(b, qs)
    assert a.usage == b.usage and a.usage.total_tokens > 0
    assert list(a.calls_frame()["conversation"]) == list(b.calls_frame()["conversation"])


async def test_tool_call_runs_real_tool_with_stable_id():
    m = weather_model()
    agent = ag2.Agent("w", "You are a weather bot.", config=m, tools=[get_weather])
    reply = await agent.ask("weather in Paris")
    assert reply.body == "get_weather returned: sunny in Paris."
    events = await reply.history.get_events()
    ids = [c.id for e in events if isinstance(e, ag2.events.ModelResponse) for c in e.tool_calls.calls]
    again = await ag2.Agent("w", "You are a weather bot.", config=weather_model(), tools=[get_weather]).ask(
        "weather in Paris"
    )
    ids2 = [
        c.id
        for e in await again.history.get_events()
        if isinstance(e, ag2.events.ModelResponse)
        for c in e.tool_calls.calls
    ]
    assert ids == ids2 and ids[0].startswith("call_")


async def test_usage_reaches_ag2_usage_report_and_prices():
    m = OfflineModel()
    reply = await ag2.Agent("a", "Be brief.", config=m).ask("hello there")
    report = await reply.usage()
    # system prompt + the message with its role label ("user:" = 2 tokens)
    assert report.total.prompt_tokens == count_tokens("Be brief.") + count_tokens("hello there") + 2
    assert report.total.completion_tokens == count_tokens(reply.body)
    assert list(report.by_model) == ["offline-1"]
    assert cost(report.total, "offline-1") == pytest.approx(
        (report.total.prompt_tokens * 0.0005 + report.total.completion_tokens * 0.0015) / 1000
    )


async def test_rules_first_match_wins_and_json_rule_answers_json():
    m = OfflineModel()
    m.add_rule(json_rule("router", lambda p: {"route": "billing"}, system_contains="you are a router"))
    m.add_rule(rule("greeter", "hi!", user_contains="hello"))
    assert json.loads((await ag2.Agent("r", "You are a router.", config=m).ask("hello")).body) == {"route": "billing"}
    assert (await ag2.Agent("g", "Be nice.", config=m).ask("well hello")).body == "hi!"
    assert list(m.rules_frame()["rule"]) == ["router", "greeter", "summarise tool results", "fallback"]
    with pytest.raises(ConfigError, match="already registered"):
        m.add_rule(rule("greeter", "again"))


async def test_rule_reply_with_text_and_tool_calls():
    m = OfflineModel(
        rules=[
            rule(
                "both",
                lambda p: Reply("checking", (ToolCall("get_weather", {"city": "Rome"}),)),
                when=lambda p: not p.after_tools,
            )
        ]
    )
    reply = await ag2.Agent("w", "x", config=m, tools=[get_weather]).ask("go")
    assert reply.body == "get_weather returned: sunny in Rome."


@pytest.mark.parametrize(
    ("fault", "exc", "status"),
    [("rate_limit", RateLimitError, 429), ("server_error", ServerError, 503), ("timeout", ProviderTimeout, None)],
)
async def test_faults_raise_provider_shaped_errors(fault, exc, status):
    m = OfflineModel(faults={fault: 1.0, "retry_after_s": 2.5})
    with pytest.raises(exc) as info:
        await ag2.Agent("a", "x", config=m).ask("hi")
    err = info.value
    assert err.status_code == status
    assert err.body["error"]["type"] == exc.error_type
    assert err.request_id.startswith("req_")
    if fault == "rate_limit":
        assert err.retry_after == 2.5 and err.headers["retry-after"] == "2.5"
    if fault == "timeout":
        assert isinstance(err, TimeoutError)
    assert m.calls_frame()["fault"].tolist() == [fault]
    assert m.usage.total_tokens is None  # a failed call records no usage


async def test_malformed_and_empty_outputs():
    j = json_rule("j", lambda p: {"route": "billing", "reason": "invoice"})
    m = OfflineModel(rules=[j], faults={"malformed": 1})
    body = (await ag2.Agent("a", "x", config=m).ask("hi")).body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    e = OfflineModel(faults={"empty": 1})
    assert (await ag2.Agent("a", "x", config=e).ask("hi")).body is None


async def test_fault_rate_is_seeded_and_retries_recover():
    m = OfflineModel(seed=11, faults=Faults(rate_limit=0.5))
    agent = ag2.Agent("a", "x", config=m, middleware=[RetryMiddleware(max_retries=10, retry_on=(RateLimitError,))])
    bodies = [(await agent.ask(f"question {i}")).body for i in range(30)]
    assert bodies == [f"Offline answer to: question {i}" for i in range(30)]
    faults = m.calls_frame()["fault"].eq("rate_limit").sum()
    assert 10 <= faults <= 50  # about one failure per success at rate 0.5
    again = OfflineModel(seed=11, faults=Faults(rate_limit=0.5))
    agent2 = ag2.Agent("a", "x", config=again, middleware=[RetryMiddleware(max_retries=10, retry_on=(RateLimitError,))])
    for i in range(30):
        await agent2.ask(f"question {i}")
    assert again.calls_frame()["fault"].eq("rate_limit").sum() == faults


def test_fault_rates_validated():
    with pytest.raises(ValueError, match="sum to"):
        Faults(rate_limit=0.7, timeout=0.5)
    with pytest.raises(ValueError):
        Faults(nope=0.1)


async def test_latency_is_simulated_and_recorded():
    m = OfflineModel(seed=1, latency_s=(0.01, 0.03))
    await ag2.Agent("a", "x", config=m).ask("hi")
    lat = m.calls_frame()["latency_s"].iloc[0]
    assert 0.01 <= lat <= 0.03
    with pytest.raises(ConfigError):
        OfflineModel(latency_s=-1)


def test_copy_shares_state_without_overrides():
    m = OfflineModel(seed=1)
    assert m.copy() is m
    c = m.copy(seed=2)
    assert c is not m and c.seed == 2 and c.model == m.model
    with pytest.raises(ConfigError, match="unknown OfflineModel option"):
        m.copy(colour="red")


def test_model_config_offline_and_unknown_backend():
    cfg = model_config("offline", seed=5)
    assert isinstance(cfg, OfflineModel) and cfg.seed == 5 and cfg.provider == "offline"
    with pytest.raises(ConfigError, match="unknown llm backend 'nosuch'; choose one of: offline, openai"):
        model_config("nosuch")
    with pytest.raises(ConfigError, match="invalid offline model option"):
        model_config("offline", temperature=0)


@pytest.mark.parametrize(("backend", "variable"), [("openai", "OPENAI_API_KEY"), ("azure", "AZURE_OPENAI_API_KEY")])
def test_real_backend_without_key_names_the_variable(monkeypatch, backend, variable):
    monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.invalid")
    with pytest.raises(MissingCredentialsError) as info:
        model_config(backend)
    assert variable in str(info.value) and info.value.variable == variable


def test_compatible_backend_needs_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="needs an endpoint"):
        model_config("compatible", model="m")


def test_real_backend_without_openai_extra_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openai(name, *args, **kwargs):
        if name == "openai" or name.startswith("openai."):
            raise ImportError("No module named 'openai'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openai)
    with pytest.raises(MissingDependencyError, match=r"\[openai\]"):
        model_config("ollama")


def test_backends_listed():
    assert {"offline", "openai", "azure", "ollama", "vllm", "compatible"} <= set(BACKENDS)


def test_test_session_refuses_real_network():
    from pytest_socket import SocketConnectBlockedError

    with pytest.warns(UserWarning), pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("203.0.113.1", 443), timeout=1)


def test_call_log_is_consistent_under_threads():
    import threading

    m = OfflineModel(seed=2)

    def worker(n):
        import asyncio

        async def go():
            agent = ag2.Agent("t", "x", config=m)
            for i in range(5):
                await agent.ask(f"thread {n} question {i}")

        asyncio.run(go())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frame = m.calls_frame()
    assert m.calls == 20 and sorted(frame["index"]) == list(range(20))
    assert m.usage.total_tokens == (frame["prompt_tokens"] + frame["completion_tokens"]).sum()


async def test_an_offline_client_makes_ag2_reuse_subscription_call_models():
    import ag2.stream

    from agentops import _ag2

    model = OfflineModel(seed=1)
    model.create()
    cache = _ag2.reuse_subscription_models()
    assert ag2.stream.build_model is cache
    agent = ag2.Agent("a", "Be brief.", config=model)
    await agent.ask("hello")
    hits = cache.hits
    second = await agent.ask("hello again")
    assert cache.hits > hits  # the second turn's subscribers reuse the first turn's call models
    assert second.body and model.calls == 2


# -- SlowModel (agentops.testing's time-limit double) ----------------------------------------------


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_slow_model_holds_back_the_first_calls_then_answers_like_its_inner_model():
    import asyncio

    from agentops.testing import SlowModel

    loop = asyncio.get_running_loop()
    slow = SlowModel(OfflineModel(seed=0), delay_s=30.0, first=1)
    agent = ag2.Agent("a", "Be brief.", config=slow)
    start = loop.time()
    first = await agent.ask("hello")
    held = loop.time() - start
    second = await agent.ask("hello")
    assert held == pytest.approx(30.0) and loop.time() - start == pytest.approx(30.0)  # the second is not held
    assert (
        first.body == second.body == (await ag2.Agent("a", "Be brief.", config=OfflineModel(seed=0)).ask("hello")).body
    )
    assert (slow.calls, slow.remaining) == (2, 0) and slow.provider == "offline"


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_slow_model_without_a_delay_never_answers():
    import asyncio

    from agentops.testing import SlowModel

    hanging = SlowModel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ag2.Agent("a", "x", config=hanging).ask("hi"), timeout=3600)
    assert hanging.calls == 1


@pytest.mark.parametrize("kwargs", [{"delay_s": -1.0}, {"delay_s": float("nan")}, {"first": -1}, {"first": True}])
def test_slow_model_refuses_a_negative_delay_or_count(kwargs):
    from agentops.testing import SlowModel

    with pytest.raises(ConfigError, match=r"delay_s|first"):
        SlowModel(**kwargs)
