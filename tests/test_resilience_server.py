"""The fault server speaks OpenAI's chat-completions shape over real HTTP and breaks it on purpose."""

from __future__ import annotations

import json

import ag2
import httpx
import pytest

from agentops.errors import ConfigError
from agentops.models import OfflineModel, tool_rule
from agentops.resilience import FaultServer, HTTPFaults

BODY = {
    "model": "offline-1",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
}


def _post(server: FaultServer, body: dict | None = None, timeout: float = 5) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body or BODY, timeout=timeout)


def test_healthy_completion_has_openai_shape() -> None:
    with FaultServer() as server:
        r = _post(server)
        models = httpx.get(f"{server.base_url}/models", timeout=5).json()
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion" and data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["message"]["content"] == "Offline answer to: hi"
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    assert models["data"][0]["id"] == "offline-1"
    assert server.stats.requests == 1 and server.stats.statuses[200] == 1


def test_same_request_same_answer_and_id_changes_per_attempt() -> None:
    with FaultServer() as server:
        a, b = _post(server).json(), _post(server).json()
    assert a["choices"] == b["choices"] and a["id"] != b["id"]


def test_rate_limit_sends_retry_after() -> None:
    with FaultServer(faults=HTTPFaults(rate_limit=1.0, retry_after_s=2.5)) as server:
        r = _post(server)
    assert r.status_code == 429 and r.headers["retry-after"] == "2.5"
    assert r.json()["error"]["type"] == "rate_limit_exceeded"


def test_server_error_is_5xx() -> None:
    with FaultServer(faults=HTTPFaults(server_error=1.0)) as server:
        statuses = {_post(server).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503} and len(statuses) >= 2


def test_reset_breaks_the_connection() -> None:
    with FaultServer(faults=HTTPFaults(reset=1.0)) as server, pytest.raises(httpx.HTTPError):
        _post(server)


def test_malformed_body_is_not_json() -> None:
    with FaultServer(faults=HTTPFaults(malformed=1.0)) as server:
        r = _post(server)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_slow_first_byte_trips_a_client_timeout() -> None:
    with FaultServer(faults=HTTPFaults(slow=1.0, slow_s=0.5)) as server, pytest.raises(httpx.ReadTimeout):
        _post(server, timeout=0.1)


def test_truncated_plain_answer_has_finish_reason_length() -> None:
    model = OfflineModel(sleep=False)
    with FaultServer(model, faults=HTTPFaults(truncated=1.0)) as server:
        data = _post(server, {**BODY, "messages": [{"role": "user", "content": "tell me a long story please"}]}).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["choices"][0]["message"]["content"] == "Offline answer to: tell"  # 9 words, half kept


def test_truncated_stream_has_no_done_marker() -> None:
    with FaultServer(faults=HTTPFaults(truncated=1.0)) as server:
        text = _post(server, {**BODY, "stream": True}).text
        healthy = None
    with FaultServer() as server:
        healthy = _post(server, {**BODY, "stream": True}).text
    assert "[DONE]" not in text and '"finish_reason": "stop"' not in text
    assert healthy.rstrip().endswith("data: [DONE]") and '"finish_reason": "stop"' in healthy


def test_max_tokens_truncates_with_length() -> None:
    with FaultServer() as server:
        data = _post(server, {**BODY, "max_tokens": 2}).json()
    assert (
        data["choices"][0]["finish_reason"] == "length" and data["choices"][0]["message"]["content"] == "Offline answer"
    )


def test_bad_request_is_400() -> None:
    with FaultServer() as server:
        r = httpx.post(f"{server.base_url}/chat/completions", content=b"[1, 2]", timeout=5)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]


def test_loopback_only_and_base_url_needs_start() -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        FaultServer(host="0.0.0.0")
    with pytest.raises(ConfigError, match="not running"):
        _ = FaultServer().base_url


def test_faults_validated() -> None:
    with pytest.raises(ConfigError, match="sum to"):
        HTTPFaults(rate_limit=0.6, reset=0.6)
    assert HTTPFaults.uniform(0.6).total == pytest.approx(0.6)


def test_fault_rates_are_seeded_and_reproducible() -> None:
    def run(seed: int) -> list[int]:
        with FaultServer(faults=HTTPFaults(rate_limit=0.5), seed=seed) as server:
            return [
                _post(server, {**BODY, "messages": [{"role": "user", "content": f"q{i}"}]}).status_code
                for i in range(20)
            ]

    first, again, other = run(1), run(1), run(2)
    assert first == again and first != other and 3 <= first.count(429) <= 17


async def test_ag2_agent_with_tools_over_http() -> None:
    model = OfflineModel(sleep=False)
    model.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Paris"}))

    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    with FaultServer(model) as server:
        for streaming in (False, True):
            config = server.config("offline-1", max_retries=0, timeout=5, streaming=streaming)
            reply = await ag2.Agent("w", "Be brief.", config=config, tools=[get_weather]).ask("weather?")
            assert reply.body == "get_weather returned: sunny in Paris."
            assert (await reply.usage()).total.total_tokens > 0
        assert server.stats.requests == 4


def test_faults_per_model_route_and_changed_while_serving(fault_servers) -> None:
    server = fault_servers(faults=HTTPFaults(), routes={"down-1": HTTPFaults(server_error=1.0)})
    assert _post(server, {**BODY, "model": "down-1"}).status_code >= 500
    assert _post(server, BODY).status_code == 200
    server.set_faults(HTTPFaults(rate_limit=1.0))
    assert _post(server, BODY).status_code == 429
    server.set_faults(HTTPFaults(), model="down-1")
    assert _post(server, {**BODY, "model": "down-1"}).status_code == 200
    assert server.stats.models == {"down-1": 2, "offline-1": 2}


def test_reset_replays_the_same_fault_draws(fault_servers) -> None:
    server = fault_servers(faults=HTTPFaults(rate_limit=0.5), seed=3)
    bodies = [{**BODY, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(10)]
    first = [_post(server, b).status_code for b in bodies]
    server.reset()
    assert [_post(server, b).status_code for b in bodies] == first and server.stats.requests == 10


def test_a_proxy_in_front_of_another_provider_passes_its_answers_and_errors(fault_servers) -> None:
    upstream = fault_servers(routes={"limited": HTTPFaults(rate_limit=1.0, retry_after_s=7)})
    proxy = fault_servers(upstream=upstream.config("ignored"), model=None)
    data = _post(proxy, BODY).json()
    assert data["choices"][0]["message"]["content"] == "Offline answer to: hi" and data["id"].startswith("chatcmpl-")
    limited = _post(proxy, {**BODY, "model": "limited"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    proxy.set_faults(HTTPFaults(server_error=1.0))
    assert _post(proxy, BODY).status_code >= 500 and upstream.stats.requests == 2  # injected: never forwarded


def test_port_is_validated_and_the_cli_is_registered() -> None:
    from agentops.__main__ import build_parser

    with pytest.raises(ConfigError, match="port"):
        FaultServer(port=70000)
    args = build_parser(["serve-model"]).parse_args(
        ["serve-model", "--fault-rate", "0.2", "--reset", "0", "--port", "0"]
    )
    assert args.fault_rate == 0.2 and args.reset == 0 and args.scenario == "plain" and callable(args.func)


def test_a_proxy_uses_the_upstream_configs_own_client(fault_servers, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.backends import model_config
    from agentops.testing import chat_completion, chat_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    upstream = model_config(
        "compatible",
        "fake-1",
        base_url="http://provider.invalid/v1",
        transport=chat_server([chat_completion("hi there")]),
    )
    proxy = fault_servers(upstream=upstream)
    data = _post(proxy, {**BODY, "model": "fake-1"}).json()
    assert data["choices"][0]["message"]["content"] == "hi there" and data["id"].startswith("chatcmpl-")
