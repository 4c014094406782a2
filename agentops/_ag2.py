"""Every coupling to AG2 beyond its documented public API, one section per concern.

Each name here relies on something AG2 1.x does but does not promise, and has a contract test in
``tests/test_ag2_contract.py`` against the pinned AG2 version, so an AG2 upgrade that breaks one fails
one file with a named test instead of a chapter. Each section says why no public alternative exists.
"""

from __future__ import annotations

from typing import Any

# ==================================================================================================
# Evals (agentops.evals)
# ==================================================================================================


async def grade_traces_in_memory(source: Any, **options: Any) -> Any:
    """``ag2.eval.evaluate_traces`` without writing the run JSON to disk.

    ``evaluate_traces`` documents ``store_dir`` as the directory it always writes ``<run_id>.json``
    to; its grading core skips the write when ``store_dir`` is falsy (``if store_dir:`` in
    ``ag2/eval/runtime/evaluate.py``), which is how ``run_agent(store_dir=None)`` runs in memory.
    The public alternative — a scratch directory — serialises every case's events and feedback on
    each run: about half the runner's CPU time on a 1,000-case suite. The caller saves the run
    itself (``RunResult.save(path)``) when it wants a file.
    """
    from ag2.eval import evaluate_traces

    return await evaluate_traces(source, store_dir="", **options)
