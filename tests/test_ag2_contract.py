"""Contract tests: one per AG2 detail that ``agentops._ag2`` relies on beyond AG2's documented API.

When an AG2 upgrade breaks one of these, fix the matching helper in ``agentops/_ag2.py``; nothing else
in the package should need to change.
"""

from __future__ import annotations

import os

from ag2.eval import InMemoryTraceSource, RunResult, Suite, Task, Trace, TraceRef, load_run, scorer
from ag2.events import ModelMessage, ModelResponse

from agentops import _ag2

# -- evals (agentops.evals) ----------------------------------------------------------------------------


async def test_evaluate_traces_with_an_empty_store_dir_grades_in_memory_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @scorer
    def answered(outputs) -> bool:
        return bool(outputs)

    trace = Trace(events=(ModelResponse(ModelMessage("hi")),), exception=None, duration_ms=1)
    source = InMemoryTraceSource([(TraceRef(trace_id="t-a", task_id="a"), trace)])
    result = await _ag2.grade_traces_in_memory(
        source, scorers=[answered], suite=Suite([Task(inputs={"input": "x"}, task_id="a")]), run_id="r1"
    )
    assert isinstance(result, RunResult) and result.pass_rate("answered") == 1.0
    assert os.listdir(tmp_path) == []  # nothing written, not even under the working directory
    saved = result.save(tmp_path / "run.json")  # an explicit path still saves
    assert load_run(saved).pass_rate("answered") == 1.0
