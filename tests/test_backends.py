"""model_config for real providers, against a fake OpenAI-compatible server (agentops.testing.chat_server)."""

import ag2
import pytest
from pydantic import BaseModel

from agentops.backends import DEFAULT_MAX_TOKENS, provider_name
from agentops.compat import ModelRequestsForbidden
from agentops.errors import ConfigError
from agentops.models import OfflineModel, model_config
from agentops.testing import chat_completion, chat_server

URL = "http://fake.invalid/v1"


class City(BaseModel):
    name: str
    country: str


def test_provider_names_are_plain_strings():
    from ag2.config import ModelProvider

    cfg = model_config("compatible", "fake-1", base_url=URL, transport=chat_server([]))
    assert cfg.provider == "compatible" and type(cfg.provider) is str and f"{cfg.provider}" == "compatible"
    assert type(cfg).__name__ == "ProviderConfig"
    assert provider_name(ModelProvider.OPENAI) == "openai" and provider_name(None) == ""


async def test_max_tokens_is_sent_on_every_call():
    server = chat_server([chat_completion("one"), chat_completion("two")])
    cfg = model_config("compatible", "fake-1", base_url=URL, max_tokens=40, transport=server)
    reply = await ag2.Agent("a", "Be brief.", config=cfg).ask("hi")
    await reply.ask("again")
    assert [r["max_tokens"] for r in server.requests] == [40, 40]
    default = chat_server([chat_completion("x")])
    await ag2.Agent("a", config=model_config("vllm", "m", transport=default)).ask("hi")
    assert default.requests[0]["max_tokens"] == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "10"])
def test_bad_max_tokens_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="max_tokens must be a positive int"):
        model_config("offline", max_tokens=bad)


async def test_offline_model_honours_max_tokens_with_finish_reason_length():
    cfg = model_config("offline", max_tokens=3)
    assert isinstance(cfg, OfflineModel)
    reply = await ag2.Agent("a", config=cfg).ask("tell me about the weather in Oslo today")
    assert reply.body == "Offline answer to"
    assert reply.response.finish_reason == "length" and reply.response.usage.completion_tokens == 3
    full = await ag2.Agent("a", config=model_config("offline")).ask("hi")
    assert full.response.finish_reason == "stop"


async def test_structured_output_falls_back_from_json_schema_to_json_object():
    answer = chat_completion('Sure, here it is: {"name": "Paris", "country": "FR"} – anything else?')
    server = chat_server([answer], reject=["json_schema"])
    cfg = model_config("compatible", "fake-1", base_url=URL, transport=server)
    reply = await ag2.Agent("geo", "Extract the city.", config=cfg).ask("Paris, France", response_schema=City)
    assert await reply.content() == City(name="Paris", country="FR")
    assert [r.get("response_format", {}).get("type") for r in server.requests] == ["json_schema", "json_object"]
    assert "matches this JSON schema" in server.requests[1]["messages"][0]["content"]
    assert cfg.http_client._transport.notes == ["HTTP 500 on response_format json_schema: falling back to json_object"]


async def test_prompt_only_mode_extracts_the_object_from_prose():
    answer = chat_completion('```json\n{"name": "Oslo", "country": "NO"}\n```')
    server = chat_server([answer])
    cfg = model_config("compatible", "fake-1", base_url=URL, transport=server, structured="prompt")
    reply = await ag2.Agent("geo", config=cfg).ask("Oslo", response_schema=City)
    assert await reply.content() == City(name="Oslo", country="NO")
    assert "response_format" not in server.requests[0]


async def test_null_assistant_content_is_sent_as_empty_once_rejected():
    def get_weather(city: str) -> str:
        """Weather."""
        return "sunny"

    server = chat_server(
        [chat_completion(None, tool_calls=[("get_weather", '{"city": "Paris"}')]), chat_completion("It is sunny.")],
        reject=["null_content"],
    )
    cfg = model_config("compatible", "fake-1", base_url=URL, transport=server)
    reply = await ag2.Agent("w", config=cfg, tools=[get_weather]).ask("weather?")
    assert reply.body == "It is sunny."
    assistant = [m for m in server.requests[-1]["messages"] if m["role"] == "assistant"]
    assert assistant[0]["content"] == "" and len(server.requests) == 3


def test_real_backends_are_refused_when_model_requests_are_forbidden(monkeypatch):
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")
    with pytest.raises(ModelRequestsForbidden, match="AGENTOPS_ALLOW_MODEL_REQUESTS=0"):
        model_config("compatible", "m", base_url=URL)
    assert model_config("offline") is not None  # the offline model is always allowed


async def test_the_switch_is_also_checked_per_request(monkeypatch, allow_model_requests):
    cfg = model_config("compatible", "m", base_url="http://127.0.0.1:9/v1", max_retries=0)
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")
    with pytest.raises(ModelRequestsForbidden):
        await ag2.Agent("a", config=cfg).ask("hi")


def test_replay_needs_a_cassette(monkeypatch):
    monkeypatch.delenv("AGENTOPS_CASSETTE", raising=False)
    with pytest.raises(ConfigError, match="backend 'replay' needs a cassette"):
        model_config("replay")
    with pytest.raises(ConfigError, match="does not exist; record it first"):
        model_config("replay", cassette="/nonexistent/x.yaml")


def test_the_config_repr_never_shows_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-SECRETSECRETSECRET123456")
    cfg = model_config("openai", "gpt-4o-mini", transport=chat_server([]))
    assert repr(cfg) == "ProviderConfig(backend='openai', model='gpt-4o-mini', base_url=None, max_tokens=512)"
    assert "SECRET" not in repr(cfg) and cfg.api_key.endswith("123456")


def test_structured_fallback_steps_once_per_refusal_and_only_down():
    from agentops.compat import StructuredFallback, structured_fallback

    chain = StructuredFallback()
    assert chain.step_down("HTTP 500") and chain.mode == "json_object" and chain.structured
    assert chain.step_down("HTTP 500", seen="json_schema") and chain.mode == "json_object"  # already stepped
    assert chain.step_down("HTTP 400") and chain.mode == "prompt" and not chain.structured
    assert not chain.step_down("HTTP 400")
    assert chain.notes == [
        "HTTP 500 on response_format json_schema: falling back to json_object",
        "HTTP 400 on response_format json_object: falling back to prompt",
    ]
    with pytest.raises(ConfigError, match="not a mode"):
        StructuredFallback("json_object", modes=("json_schema", "prompt"))
    with pytest.raises(ConfigError, match="each must be one of"):
        StructuredFallback(modes=("xml",))
    assert structured_fallback(model_config("offline")) is None
    cfg = model_config("compatible", "fake-1", base_url=URL, transport=chat_server([]), structured="json_object")
    assert structured_fallback(cfg).mode == "json_object" and cfg.http_client._transport.structured == "json_object"
