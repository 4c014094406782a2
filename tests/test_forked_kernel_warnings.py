"""A forked kernel attributes package warnings like a normal one (no ``<string>:1:`` from the zygote's frame)."""

from __future__ import annotations

import json
from pathlib import Path

from kernel_support import probe_book

from agentops.cookbook import run
from agentops.cookbook._forkserver import OPT_OUT_ENV

# An unpriced model's warning raised from a callback the event loop runs: no user line is on the stack,
# so the warning is shown at <agentops.usage> — in a forked kernel as in a normal one.
PROBE = """import asyncio, types, warnings
from agentops.usage import cost_usd
warnings.simplefilter("always")
asyncio.get_running_loop().call_soon(cost_usd, types.SimpleNamespace(prompt_tokens=1, completion_tokens=1), "probe-m")
await asyncio.sleep(0.05)"""


def _book(tmp_path: Path) -> Path:
    return probe_book(tmp_path, [PROBE])


def _stderr(out: Path) -> str:
    cell = json.loads((out / "00_probe.ipynb").read_text())["cells"][-1]
    return "".join("".join(o.get("text", "")) for o in cell["outputs"] if o.get("name") == "stderr")


def test_an_unpriced_model_warning_reads_the_same_in_a_forked_and_a_normal_kernel(tmp_path, monkeypatch):
    book = _book(tmp_path)
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    run([], {}, tmp_path / "fork", notebooks_dir=book, progress=False, render=False).raise_for_failures()
    monkeypatch.setenv(OPT_OUT_ENV, "0")
    run([], {}, tmp_path / "normal", notebooks_dir=book, progress=False, render=False).raise_for_failures()
    forked, normal = _stderr(tmp_path / "fork"), _stderr(tmp_path / "normal")
    assert forked.startswith("<agentops.usage>:0: UnpricedModelWarning: no price known for model 'probe-m'")
    assert forked == normal
