"""The one usage/cost seam and its unpriced-model policy."""

from __future__ import annotations

import asyncio
import math
import warnings

import ag2
import pytest
from ag2.events import Usage

from agentops import usage as usage_mod
from agentops.errors import ConfigError, UnknownModelPrice
from agentops.models import OfflineModel
from agentops.pricing import register_price, usage_frame
from agentops.usage import UnpricedModelWarning, UsageMeter, cost_usd, require_price


def test_priced_model_costs() -> None:
    assert math.isclose(cost_usd(Usage(prompt_tokens=1000, completion_tokens=500), "offline-1"), 0.00125)
    assert cost_usd(Usage(), "offline-1") == 0.0


def test_unpriced_model_warns_once_and_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_warned", set())
    with pytest.warns(UnpricedModelWarning, match=r"register_price\('my-local-gguf'"):
        assert cost_usd(Usage(prompt_tokens=5, completion_tokens=5), "my-local-gguf") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cost_usd(Usage(prompt_tokens=5, completion_tokens=5), "my-local-gguf") is None


def test_negative_or_infinite_tokens_refused() -> None:
    with pytest.raises(ConfigError, match="finite and ≥ 0"):
        cost_usd(Usage(prompt_tokens=-5, completion_tokens=0), "offline-1")
    with pytest.raises(ConfigError):
        cost_usd(Usage(prompt_tokens=float("inf"), completion_tokens=0), "offline-1")


def test_require_price_names_the_fix() -> None:
    assert require_price("offline-1").model == "offline-1"
    with pytest.raises(UnknownModelPrice, match=r"a USD cap needs a price.*register_price\('nope-model'"):
        require_price("nope-model")


def test_registered_price_is_used() -> None:
    register_price("usage-test-model", input_per_1k=1.0, output_per_1k=2.0)
    assert cost_usd(Usage(prompt_tokens=1000, completion_tokens=1000), "usage-test-model") == 3.0


def test_meter_counts_priced_and_unpriced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_warned", {("ghost-model", None)})
    meter = UsageMeter()
    meter.add(Usage(prompt_tokens=1000, completion_tokens=500), "offline-1", None)
    assert meter.add(Usage(prompt_tokens=7, completion_tokens=3), "ghost-model", None) is None
    meter.fail()
    assert (meter.calls, meter.errors, meter.tokens) == (3, 1, 1510)
    assert math.isclose(meter.cost_usd, 0.00125)
    assert meter.unpriced_calls == 1 and meter.unpriced_models == {"ghost-model"} and not meter.priced


def test_meter_is_thread_safe() -> None:
    from concurrent.futures import ThreadPoolExecutor

    meter = UsageMeter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: meter.add(Usage(prompt_tokens=1, completion_tokens=1), "offline-1", None), range(800)))
    assert meter.calls == 800 and meter.tokens == 1600


async def test_meter_middleware_records_agent_calls() -> None:
    meter = UsageMeter()
    agent = ag2.Agent("a", "Be brief.", config=OfflineModel(), middleware=[meter.middleware()])
    await asyncio.gather(*(agent.ask(f"hello {i}") for i in range(3)))
    assert meter.calls == 3 and meter.errors == 0 and meter.tokens > 0 and meter.cost_usd > 0


def test_usage_frame_shows_unpriced_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_warned", {("ghost-model", None)})

    class Rec:
        def __init__(self, model: str) -> None:
            self.kind, self.model, self.provider = "model_call", model, None
            self.usage = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)

    class Report:
        records = (Rec("offline-1"), Rec("ghost-model"))

    frame = usage_frame(Report())
    assert frame["total_tokens"].tolist() == [15, 15]
    assert frame["cost_usd"].iloc[0] > 0 and frame["cost_usd"].isna().tolist() == [False, True]


def test_a_model_name_that_is_a_secret_never_reaches_the_warning_or_the_error():
    leaked = "sk-canaryLEAK0123456789abcdefXYZ"
    usage = Usage(prompt_tokens=10, completion_tokens=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cost_usd(usage, leaked) is None
    text = " ".join(str(w.message) for w in caught)
    assert "[REDACTED]" in text and "register_price(<model name>" in text and leaked not in text
    with pytest.raises(UnknownModelPrice) as err:
        require_price(leaked)
    assert leaked not in str(err.value) and "[REDACTED]" in str(err.value)
    with pytest.raises(UnknownModelPrice, match="'plain-unpriced-model-z'"):
        require_price("plain-unpriced-model-z")


def test_unpriced_warning_points_at_the_callers_line_not_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_warned", set())
    with pytest.warns(UnpricedModelWarning) as seen:
        UsageMeter().add(Usage(prompt_tokens=5, completion_tokens=5), "warn-site-model", None)  # via the meter
    assert seen[0].filename == __file__


async def test_unpriced_warning_inside_an_agent_turn_shows_no_package_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_warned", set())
    meter = UsageMeter()
    agent = ag2.Agent("a", "Be brief.", config=OfflineModel("warn-agent-model"), middleware=[meter.middleware()])
    with pytest.warns(UnpricedModelWarning) as seen:
        await agent.ask("hello")  # AG2 runs the turn in its own task: this line is not on the stack
    assert (seen[0].filename, seen[0].lineno) == ("<agentops.usage>", 0)
    shown = warnings.formatwarning(seen[0].message, seen[0].category, seen[0].filename, seen[0].lineno)
    assert shown.startswith("<agentops.usage>:0: UnpricedModelWarning: no price known for model 'warn-agent-model'")
    assert "usage.py" not in shown and "cost_usd(" not in shown


def test_unpriced_warning_from_a_script_points_at_its_asyncio_run(tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "user_script.py"
    script.write_text(
        "import asyncio, ag2\n"
        "from agentops.models import OfflineModel\n"
        "from agentops.usage import UsageMeter\n"
        "m = UsageMeter()\n"
        "a = ag2.Agent('a', 'b', config=OfflineModel('script-model'), middleware=[m.middleware()])\n"
        "asyncio.run(a.ask('hi'))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert f"{script}:6: UnpricedModelWarning" in out.stderr and "usage.py" not in out.stderr
