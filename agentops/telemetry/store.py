"""The trace store: finished spans as pandas DataFrames (spans, turns, LLM calls, tool calls, events).

Built live over an in-memory exporter, or read back from a JSON-lines file written by
:class:`~agentops.telemetry.spans.JsonLinesSpanExporter`. A file a killed writer left with a torn line
still loads: the line is skipped, counted (:attr:`TraceStore.skipped_lines`) and reported with a
:class:`TraceFileWarning`.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentops.telemetry._base import TelemetryError
from agentops.telemetry.spans import span_record

__all__ = ["TraceFileWarning", "TraceStore"]


class TraceFileWarning(UserWarning):
    """A JSON-lines trace file held lines that are not span records (a writer was killed mid-line)."""


_SPAN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "operation",
    "agent",
    "workflow",
    "provider",
    "model",
    "tool",
    "status",
    "outcome",
    "error_type",
    "time_s",
    "latency_s",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "start_time_ns",
    "end_time_ns",
    "attributes",
]


def _row(rec: Mapping[str, Any]) -> dict[str, Any]:
    a = rec.get("attributes") or {}
    start, end = rec.get("start_time_ns") or 0, rec.get("end_time_ns") or 0
    duration = (end - start) / 1e9 if end and start else None
    status = rec.get("status", "UNSET")
    outcome = a.get("agentops.outcome") or ("error" if status == "ERROR" else "success")
    return {
        "trace_id": rec.get("trace_id"),
        "span_id": rec.get("span_id"),
        "parent_span_id": rec.get("parent_span_id"),
        "name": rec.get("name"),
        "operation": a.get("gen_ai.operation.name") or a.get("ag2.span.type") or "other",
        "agent": a.get("gen_ai.agent.name"),
        "workflow": a.get("agentops.workflow"),
        "provider": a.get("gen_ai.provider.name"),
        "model": a.get("gen_ai.response.model") or a.get("gen_ai.request.model"),
        "tool": a.get("gen_ai.tool.name"),
        "status": status,
        "outcome": outcome,
        "error_type": a.get("error.type"),
        "time_s": a.get("agentops.time_s", start / 1e9 if start else None),
        "latency_s": a.get("agentops.latency_s", duration),
        "duration_s": duration,
        "input_tokens": a.get("gen_ai.usage.input_tokens", 0),
        "output_tokens": a.get("gen_ai.usage.output_tokens", 0),
        "cost_usd": a.get("agentops.cost_usd"),
        "start_time_ns": start,
        "end_time_ns": end,
        "attributes": dict(a),
    }


def _inherit(rows: list[dict[str, Any]]) -> None:
    """Fill in what telemetry writes on turn spans only: each span's agent and workflow come from its
    nearest ancestor that has them, and a turn's tokens are the sum of its model calls' (the ``chat``
    spans directly under it). Writing these on every span would cost each span more attributes."""
    by_id = {row["span_id"]: row for row in rows}
    sums: dict[str, list[int]] = {}
    for row in rows:
        if row["operation"] == "chat" and row["parent_span_id"]:
            acc = sums.setdefault(row["parent_span_id"], [0, 0])
            acc[0] += row["input_tokens"] or 0
            acc[1] += row["output_tokens"] or 0
    for row in rows:
        if row["operation"] == "invoke_agent" and "gen_ai.usage.input_tokens" not in row["attributes"]:
            row["input_tokens"], row["output_tokens"] = sums.get(row["span_id"], (0, 0))
        for key in ("agent", "workflow"):
            if row[key] is None:
                row[key] = _from_ancestors(row, key, by_id)


def _from_ancestors(row: dict[str, Any], key: str, by_id: dict[str, dict[str, Any]]) -> Any:
    seen = {row["span_id"]}
    parent = by_id.get(row["parent_span_id"])
    while parent is not None and parent["span_id"] not in seen:
        if parent[key] is not None:
            return parent[key]
        seen.add(parent["span_id"])
        parent = by_id.get(parent["parent_span_id"])
    return None


class TraceStore:
    """Finished spans as pandas DataFrames: all spans, turns, LLM calls, tool calls and events.

    Built live over an ``InMemorySpanExporter`` (``Telemetry(exporter="memory")``) or from a JSONL file
    written by :class:`JsonLinesSpanExporter` (:meth:`from_jsonl`). Time columns: ``time_s`` is the
    span start by the telemetry clock (simulated or Unix seconds), ``latency_s`` its duration by that
    clock; ``duration_s`` is always wall time.
    """

    def __init__(self, exporter: InMemorySpanExporter | None = None, records: Iterable[Mapping[str, Any]] = ()):
        self._exporter = exporter
        self._records: list[dict[str, Any]] = [dict(r) for r in records]
        self._converted = 0
        self._lock = threading.Lock()
        #: Lines of the source file that were not span records (see :meth:`from_jsonl`).
        self.skipped_lines = 0

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> TraceStore:
        """Load a store from a JSON-lines span file.

        Lines that are not span records — the torn last line of a writer killed mid-write, or such a
        line followed by later appends — are skipped and counted in :attr:`skipped_lines`, with one
        :class:`TraceFileWarning` naming the file and the line numbers.

        Raises:
            TelemetryError: the file does not exist.
        """
        records: list[dict[str, Any]] = []
        bad: list[int] = []
        if not Path(path).is_file():
            raise TelemetryError(f"no trace file at {os.fspath(path)!r}; check the jsonl_path")
        with Path(path).open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    rec = None
                if isinstance(rec, dict):
                    records.append(rec)
                else:
                    bad.append(n)
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
            warnings.warn(
                f"{os.fspath(path)}: skipped {len(bad)} line(s) that are not span records (line {shown}); "
                "a writer was probably killed mid-line",
                TraceFileWarning,
                stacklevel=2,
            )
        store = cls(records=records)
        store.skipped_lines = len(bad)
        return store

    def records(self) -> list[dict[str, Any]]:
        """Every span as a dict (see :func:`span_record`), oldest first."""
        with self._lock:
            if self._exporter is not None:
                finished = self._exporter.get_finished_spans()
                if len(finished) < self._converted:  # exporter was cleared
                    self._records, self._converted = [], 0
                self._records.extend(span_record(s) for s in finished[self._converted :])
                self._converted = len(finished)
            return list(self._records)

    def clear(self) -> None:
        """Forget every span collected so far."""
        with self._lock:
            if self._exporter is not None:
                self._exporter.clear()
            self._records, self._converted = [], 0

    def __len__(self) -> int:
        return len(self.records())

    def spans(self) -> Any:
        """One row per span; columns include operation, agent, model, tokens, cost_usd, time_s, latency_s."""
        import pandas as pd

        rows = [_row(r) for r in self.records()]
        _inherit(rows)
        frame = pd.DataFrame(rows, columns=_SPAN_COLUMNS)
        return frame.sort_values(["time_s", "start_time_ns"], kind="stable").reset_index(drop=True)

    def _op(self, op: str) -> Any:
        frame = self.spans()
        return frame[frame["operation"] == op].reset_index(drop=True)

    def turns(self) -> Any:
        """``invoke_agent`` spans: one row per agent turn (a request), with its total cost."""
        return self._op("invoke_agent")

    def llm_calls(self) -> Any:
        """``chat`` spans: one row per model call."""
        return self._op("chat")

    def tool_calls(self) -> Any:
        """``execute_tool`` spans: one row per tool execution."""
        return self._op("execute_tool")

    def events(self) -> Any:
        """Span events (guardrail findings, budget refusals, exceptions, ...), one row each."""
        import pandas as pd

        rows = []
        for rec in self.records():
            attrs = rec.get("attributes") or {}
            for ev in rec.get("events") or []:
                ea = ev.get("attributes") or {}
                rows.append(
                    {
                        "event": ev.get("name"),
                        "trace_id": rec.get("trace_id"),
                        "span_id": rec.get("span_id"),
                        "span": rec.get("name"),
                        "agent": ea.get("agent", attrs.get("gen_ai.agent.name")),
                        "time_s": ea.get("agentops.time_s", (ev.get("time_ns") or 0) / 1e9),
                        "attributes": dict(ea),
                    }
                )
        cols = ["event", "trace_id", "span_id", "span", "agent", "time_s", "attributes"]
        return pd.DataFrame(rows, columns=cols).sort_values("time_s", kind="stable").reset_index(drop=True)

    def trace(self, trace_id: str) -> Any:
        """Spans of one trace with ``depth`` and ``offset_s`` (start relative to the root): a waterfall."""
        frame = self.spans()
        frame = frame[frame["trace_id"] == trace_id].reset_index(drop=True)
        if frame.empty:
            raise TelemetryError(f"no spans with trace_id {trace_id!r}; pick one from store.turns()['trace_id']")
        parents = dict(zip(frame["span_id"], frame["parent_span_id"], strict=True))

        def depth(span_id: str) -> int:
            d, seen = 0, set()
            while parents.get(span_id) in parents and span_id not in seen:
                seen.add(span_id)
                span_id, d = parents[span_id], d + 1
            return d

        frame["depth"] = [depth(s) for s in frame["span_id"]]
        frame["offset_s"] = frame["time_s"] - frame["time_s"].min()
        return frame.sort_values(["offset_s", "depth"], kind="stable").reset_index(drop=True)
