from __future__ import annotations

import ag2
import pytest
from ag2.events import Usage

from agentops.errors import ConfigError, UnknownModelPrice
from agentops.models import OfflineModel, model_config
from agentops.pricing import OFFLINE_PRICES, Price, cost, price, price_table, register_price, usage_frame


def test_offline_prices_are_per_1k_tokens():
    assert cost(Usage(prompt_tokens=1000, completion_tokens=500), "offline-1") == pytest.approx(0.0005 + 0.00075)
    assert OFFLINE_PRICES["offline-mini"].input_per_1k < OFFLINE_PRICES["offline-large"].input_per_1k


def test_real_model_priced_from_genai_prices():
    p = price("gpt-4o-mini", "openai")
    assert p.input_per_1k == pytest.approx(0.00015)
    assert p.output_per_1k == pytest.approx(0.0006)
    assert p.source.startswith("genai-prices")


def test_cache_read_tokens_billed_at_cache_rate():
    p = Price("m", input_per_1k=1.0, output_per_1k=2.0, cache_read_per_1k=0.1)
    assert p.cost(1000, 0, cache_read_tokens=400) == pytest.approx(0.6 + 0.04)
    assert p.cost(100, 0, cache_read_tokens=400) == pytest.approx(0.01)  # capped at prompt tokens


def test_unknown_model_is_an_error_naming_the_fix():
    with pytest.raises(UnknownModelPrice, match="register_price"):
        cost(Usage(prompt_tokens=1), "my-private-model-xyz")


def test_register_price_overrides_and_validates():
    register_price("local-llama", input_per_1k=0.0, output_per_1k=0.0)
    assert cost(Usage(prompt_tokens=10_000, completion_tokens=10_000), "local-llama") == 0.0
    register_price("local-llama", input_per_1k=1.0, output_per_1k=0.0)
    assert cost(Usage(prompt_tokens=1000), "local-llama") == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="≥ 0"):
        register_price("bad", input_per_1k=-1, output_per_1k=0)
    with pytest.raises(ConfigError):
        price("")


def test_price_table_is_dated():
    t = price_table()
    assert {"offline-1", "gpt-4o-mini"} <= set(t.index)
    assert t.loc["offline-1", "as of"] == "2026-11-01"


async def test_usage_frame_prices_each_record():
    reply = await ag2.Agent("a", "Be brief.", config=OfflineModel("offline-large")).ask("hello")
    df = usage_frame(await reply.usage())
    assert len(df) == 1 and df.loc[0, "model"] == "offline-large"
    row = df.loc[0]
    assert row.cost_usd == pytest.approx((row.input_tokens * 0.0025 + row.output_tokens * 0.01) / 1000)


async def test_usage_frame_shows_an_unpriced_model_with_cost_none_and_a_warning():
    from agentops.testing import chat_completion, chat_server
    from agentops.usage import UnpricedModelWarning

    server = chat_server([chat_completion("hi", model="my-local-model-x1", usage=(7, 3))])
    cfg = model_config("compatible", "my-local-model-x1", base_url="http://fake.invalid/v1", transport=server)
    reply = await ag2.Agent("a", config=cfg).ask("hello")
    with pytest.warns(UnpricedModelWarning, match=r"register_price\('my-local-model-x1'"):
        df = usage_frame(await reply.usage())
    row = df.loc[0]
    assert (row.model, row.provider, row.input_tokens, row.output_tokens) == ("my-local-model-x1", "openai", 7, 3)
    assert row.cost_usd is None or row.cost_usd != row.cost_usd  # None (or NaN once pandas sums it)


def test_a_backend_name_as_provider_falls_back_to_the_model_price():
    from ag2.config import ModelProvider

    assert price("gpt-4o-mini", "compatible") == price("gpt-4o-mini", "openai")
    assert price("gpt-4o-mini", ModelProvider.OPENAI) == price("gpt-4o-mini", "openai")
