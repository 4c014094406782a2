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
