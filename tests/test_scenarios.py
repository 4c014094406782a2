"""Per-chapter offline scenarios: loading, idempotence, real configs untouched, seeded choices."""

from __future__ import annotations

import ag2
import pytest

from agentops.errors import ConfigError
from agentops.models import OfflineModel
from agentops.scenarios import Scenario, load_scenario, scenario_names
from agentops.scenarios.quickstart import ADDRESS_ANSWERS


def lookup_order(order_id: str) -> dict:
    """Look up an order's status by its id (format AA-1234)."""
    return {"order_id": order_id.upper(), "status": "shipped", "carrier": "DHL", "eta": "2026-11-25"}


def test_every_registered_scenario_loads_and_prints():
    for name in scenario_names():
        cfg = OfflineModel()
        s = load_scenario(name, cfg)
        assert isinstance(s, Scenario) and s.name == name and s.applied == 1
        assert str(s).startswith(f"scenario {name!r}: ")
        assert list(s.frame().columns) == ["rule", "when → what"]
        assert [r.name for r in cfg.rules] == [r.name for r in s.rules]


def test_unknown_scenario_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown scenario 'nope'; choose one of: .*quickstart"):
        load_scenario("nope")


def test_loading_twice_adds_each_rule_once():
    cfg = OfflineModel()
    load_scenario("desk", cfg)
    load_scenario("desk", cfg)
    names = [r.name for r in cfg.rules]
    assert len(names) == len(set(names)) == 5


def test_a_real_providers_config_is_left_alone():
    class RealConfig:  # stands in for OpenAIConfig: anything that is not an OfflineModel
        def __init__(self) -> None:
            self.rules: list = []

    real = RealConfig()
    s = load_scenario("quickstart", real)
    assert s.applied == 0 and real.rules == []
    assert "not applied (real provider)" in str(s)


def test_latency_and_faults_are_applied():
    cfg = OfflineModel()
    s = load_scenario("code_review", cfg)
    assert cfg.latency_s == s.latency_s == (0.02, 0.05)
    assert cfg.faults.server_error == pytest.approx(0.12) and cfg.faults.timeout == pytest.approx(0.08)
    assert "faults: server_error 12%, timeout 8%" in str(s)


async def _address(seed: int) -> str:
    cfg = OfflineModel(seed=seed, sleep=False)
    load_scenario("quickstart", cfg)
    agent = ag2.Agent("support", "Use tools for order questions.", config=cfg, tools=[lookup_order])
    order = await agent.ask("Where is my order AB-1234?")
    assert order.body == "Order AB-1234 is shipped with DHL, expected on 2026-11-25."  # never depends on the seed
    return (await agent.ask("Can I change the delivery address?")).body


async def test_the_seed_picks_among_equivalent_answers_and_is_repeatable():
    answers = {seed: await _address(seed) for seed in range(6)}
    assert set(answers.values()) <= set(ADDRESS_ANSWERS)
    assert len(set(answers.values())) > 1  # different seeds, different phrasings
    assert answers[2] == await _address(2)  # same seed, same answer
