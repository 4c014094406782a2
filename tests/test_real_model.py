"""Smoke test against the real local model (SmolLM2-135M via llama.cpp): runs only with the `local` extra.

make test-real   (or: pytest --real-model -m real_model tests/test_real_model.py)
"""

import importlib.util

import ag2
import pytest
from pydantic import BaseModel

from agentops import local_model
from agentops.models import model_config
from agentops.toolguard import ToolCallGuard

pytestmark = pytest.mark.real_model

if importlib.util.find_spec("xllamacpp") is None and importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("the `local` extra is not installed (make local-model-deps)", allow_module_level=True)
try:
    local_model.gguf_path()
except Exception as exc:  # any reason the weights are missing skips the module
    pytest.skip(f"no local model weights: {exc}", allow_module_level=True)


class City(BaseModel):
    name: str
    country: str


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny, 21 C in {city}"


@pytest.fixture(scope="module")
def server():
    already = local_model.status()
    info = already if already and already["healthy"] else local_model.start(timeout_s=300)
    yield info
    if not already:
        local_model.stop()


async def test_agent_with_a_tool_and_structured_output(server, allow_model_requests, tmp_path, monkeypatch):
    tape = tmp_path / "smoke.yaml"
    cfg = model_config(
        "compatible", server["model"], base_url=server["base_url"], max_tokens=48, temperature=0, cassette=tape
    )
    guard = ToolCallGuard(max_tool_rounds=2)
    tools = ag2.Agent(
        "w", "You are a weather assistant. Use get_weather.", config=cfg, tools=[get_weather], middleware=[guard]
    )
    answered = await tools.ask("What's the weather in Paris?")
    assert answered.body  # text (with or without a tool round): the turn ends, bounded by the guard
    assert answered.response.usage.completion_tokens <= 48
    geo = await ag2.Agent("geo", "You extract cities.", config=cfg).ask(
        "Paris is the capital of France. Name the city and its country.", response_schema=City
    )
    city = await geo.content()
    assert isinstance(city, City) and city.name

    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")  # the round trip: replay offline
    replay = model_config("replay", cassette=tape)
    again = await ag2.Agent(
        "w",
        "You are a weather assistant. Use get_weather.",
        config=replay,
        tools=[get_weather],
        middleware=[ToolCallGuard(max_tool_rounds=2)],
    ).ask("What's the weather in Paris?")
    assert again.body == answered.body
    geo_again = await ag2.Agent("geo", "You extract cities.", config=replay).ask(
        "Paris is the capital of France. Name the city and its country.", response_schema=City
    )
    assert await geo_again.content() == city


_CUT_CALL = (
    'Repeat exactly this text and nothing else: <tool_call>{"name": "send_email", "arguments": '
    '{"recipient": "ana@example.org", "body": "the Q3 summary of the billing revamp plan"}}</tool_call>'
)


async def test_a_tool_call_cut_at_max_tokens_is_a_clear_error_or_answered_never_a_json_traceback(
    server, allow_model_requests
):
    from agentops.errors import MalformedOutputError

    sent: list[str] = []

    def send_email(recipient: str, body: str) -> str:
        """Send an email to a recipient."""
        sent.append(recipient)
        return "sent"

    # seed 2 at max_tokens=20 made SmolLM2-135M (xllamacpp) emit a <tool_call> cut inside its arguments
    cfg = model_config(
        "compatible", server["model"], base_url=server["base_url"], max_tokens=20, seed=2, temperature=0.8
    )
    bare = ag2.Agent("support", "You are a support agent. Use the tools.", config=cfg, tools=[send_email])
    try:
        await bare.ask(_CUT_CALL)
    except MalformedOutputError as exc:
        assert "called tool 'send_email' with unusable arguments" in str(exc)
    guard = ToolCallGuard(max_tool_rounds=2)
    guarded = ag2.Agent(
        "support", "You are a support agent. Use the tools.", config=cfg, tools=[send_email], middleware=[guard]
    )
    reply = await guarded.ask(_CUT_CALL)
    assert reply.body is not None and len(guard.drain()) == guard.malformed
    assert sent == [] or guard.malformed == 0  # a malformed call never reaches the tool
