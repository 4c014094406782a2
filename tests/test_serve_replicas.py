"""Replicas: forked from this process, built from the chapter's model config, sharing one Redis budget."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("a2a")
httpx = pytest.importorskip("httpx")

from agentops.errors import ConfigError  # noqa: E402
from agentops.scenarios.deployment import config_from_env, replica_env, support_agent  # noqa: E402
from agentops.serve import KeyStore, build_app  # noqa: E402
from agentops.serve.replicas import ForkedReplica  # noqa: E402

KEY = "replica-secret-key-01"
STORE = KeyStore({"ops": KEY})


def test_replica_env_round_trips_the_model_config(monkeypatch):
    assert replica_env() == {"AGENTOPS_SERVE_BACKEND": "offline"}
    assert config_from_env({}) is None and config_from_env(replica_env()) is None
    env = replica_env("compatible", "smollm2-135m-instruct", "http://127.0.0.1:9/v1", 48)
    assert env == {
        "AGENTOPS_SERVE_BACKEND": "compatible",
        "AGENTOPS_SERVE_MODEL": "smollm2-135m-instruct",
        "AGENTOPS_SERVE_BASE_URL": "http://127.0.0.1:9/v1",
        "AGENTOPS_SERVE_COMPLETION": "48",
    }
    monkeypatch.setenv("OPENAI_API_KEY", "local-model")
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "1")
    config = config_from_env(env)
    assert config.model == "smollm2-135m-instruct"
    assert "OPENAI_API_KEY" not in env and "local-model" not in str(env)


def test_support_agent_takes_the_model_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "local-model")
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "1")
    for name, value in replica_env("compatible", "smollm2-135m-instruct", "http://127.0.0.1:9/v1").items():
        monkeypatch.setenv(name, value)
    agent = support_agent()
    assert agent.config.model == "smollm2-135m-instruct"
    monkeypatch.setenv("AGENTOPS_SERVE_BACKEND", "offline")
    assert type(support_agent().config).__name__ == "OfflineModel"


def test_forked_replicas_share_one_budget_through_redis(redis_client, redis_url):
    prefix = f"test-fork-{uuid.uuid4().hex}"

    def make(url):
        return build_app(support_agent(redis_url, max_tokens=150, prefix=prefix), keys=STORE, url=url)

    replicas = [ForkedReplica(make).start() for _ in range(2)]
    try:
        assert replicas[0].pid != replicas[1].pid and replicas[0].url != replicas[1].url
        with httpx.Client(timeout=30, headers={"X-API-Key": KEY}) as client:
            bodies = [client.post(r.url + "/v1/ask", json={"prompt": "refund?"}).json() for r in replicas * 3]
    finally:
        codes = [r.stop() for r in replicas]
    assert codes == [0, 0]  # SIGTERM drained and exited cleanly
    assert [b.get("kind", "answered") for b in bodies] == ["answered"] * 2 + ["BudgetExceeded"] * 4
    assert replicas[0].stop() == 0  # stopping twice is harmless


def test_a_replica_that_fails_to_build_exits_non_zero():
    def broken(url):
        raise ConfigError("bad app")

    replica = ForkedReplica(broken, stop_timeout_s=5).start()
    assert replica.stop() in (1, -15)  # exited with 1 (or was still exiting when terminated)


def test_shop_tools_without_llamaindex_never_imports_it():
    import subprocess
    import sys

    code = (
        "import sys; from agentops.scenarios.deployment import shop_tools; "
        "lc, li, rules = shop_tools(llamaindex=False); "
        "print(lc.name, li, [r.name for r in rules], 'llama_index' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[:3] == ["stock_level", "None", "['call"]
    assert out.stdout.strip().endswith("False")


def test_canary_helpers_size_the_suite_and_meter_the_agents():
    import asyncio

    from agentops.scenarios.deployment import canary_pair, canary_suite
    from agentops.usage import UsageMeter

    assert [c.id for c in canary_suite().cases] == ["refund", "hours", "other"]
    assert [c.id for c in canary_suite(1).cases] == ["refund"]
    meter = UsageMeter()
    (_, stable), (_, candidate) = canary_pair(meter=meter)
    for agent in (stable, candidate):
        asyncio.run(agent.ask("refund?"))
    assert meter.calls == 2 and meter.tokens > 0
