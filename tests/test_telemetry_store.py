"""Tests for the trace store and span export: JSONL round trips, torn lines, waterfalls, parent spans, kill -9."""

from __future__ import annotations

import json
import sys
import warnings

import ag2
import pytest
from telemetry_support import CANARY, get_weather, weather_model

from agentops.errors import ConfigError, MissingDependencyError
from agentops.models import OfflineModel
from agentops.telemetry import (
    SimulatedClock,
    Telemetry,
    TelemetryError,
    TraceFileWarning,
    TraceStore,
)
from agentops.telemetry.spans import JsonLinesSpanExporter

# -- trace store ----------------------------------------------------------------------------------------


async def test_jsonl_exporter_round_trips_into_the_same_frames(tmp_path):
    path = tmp_path / "spans.jsonl"
    t_file = Telemetry(exporter="jsonl", jsonl_path=path)
    t_mem = Telemetry()
    for t in (t_file, t_mem):
        agent = ag2.Agent("weather", "Be brief.", config=weather_model(), tools=[get_weather])
        t.instrument(agent)
        await agent.ask("What's the weather?")
    t_file.shutdown()
    from_file = TraceStore.from_jsonl(path)
    cols = [
        "name",
        "operation",
        "agent",
        "model",
        "tool",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "outcome",
    ]
    a = from_file.spans()[cols].sort_values("name", kind="stable").reset_index(drop=True)
    b = t_mem.store.spans()[cols].sort_values("name", kind="stable").reset_index(drop=True)
    assert a.equals(b)
    assert all(json.loads(line)["trace_id"] for line in path.read_text().splitlines())


def _jsonl_lines(n: int) -> str:
    return "".join(json.dumps({"name": f"s{i}", "trace_id": "t", "span_id": f"{i}"}) + "\n" for i in range(n))


def test_a_torn_last_line_is_skipped_counted_and_reported(tmp_path):
    """Issue 11: a writer killed mid-line made the whole file unreadable."""
    path = tmp_path / "spans.jsonl"
    path.write_text(_jsonl_lines(3) + '{"name": "torn", "trace_id": "t", "attri')
    with pytest.warns(TraceFileWarning, match=r"skipped 1 line\(s\).*line 4"):
        store = TraceStore.from_jsonl(path)
    assert [r["name"] for r in store.records()] == ["s0", "s1", "s2"] and store.skipped_lines == 1
    path.write_bytes(_jsonl_lines(1).encode() + '{"name": "ü'.encode()[:-1])  # torn inside a character
    with pytest.warns(TraceFileWarning):
        assert len(TraceStore.from_jsonl(path)) == 1
    path.write_text(_jsonl_lines(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TraceStore.from_jsonl(path).skipped_lines == 0
    with pytest.raises(TelemetryError, match="no trace file"):
        TraceStore.from_jsonl(tmp_path / "missing.jsonl")


async def test_appending_to_a_torn_file_starts_a_fresh_line(tmp_path):
    path = tmp_path / "spans.jsonl"
    path.write_text(_jsonl_lines(2) + '{"name": "torn')
    t = Telemetry(exporter="jsonl", jsonl_path=path)
    await ag2.Agent("a", "Be brief.", config=OfflineModel(seed=0), middleware=t.middleware("a")).ask("hi")
    t.shutdown()
    with pytest.warns(TraceFileWarning, match="line 3"):
        store = TraceStore.from_jsonl(path)
    assert store.skipped_lines == 1 and len(store.turns()) == 1 and len(store) == 5  # s0, s1, 3 new


def test_jsonl_exports_in_the_background_at_least_every_second():
    from agentops.telemetry.spans import FLUSH_INTERVAL_S

    assert FLUSH_INTERVAL_S <= 1.0


async def test_trace_waterfall_depths_and_offsets():
    cfg = weather_model(latency_s=1.0, sleep=False)
    t = Telemetry(clock=SimulatedClock(follow=[cfg]))
    agent = ag2.Agent("weather", "Be brief.", config=cfg, tools=[get_weather])
    t.instrument(agent)
    await agent.ask("What's the weather?")
    tid = t.store.turns()["trace_id"].iloc[0]
    wf = t.store.trace(tid)
    rows = wf[wf["operation"].isin(["invoke_agent", "chat", "execute_tool"])]
    assert list(zip(rows["name"], rows["depth"], rows["offset_s"], strict=True)) == [
        ("invoke_agent weather", 0, 0.0),
        ("chat offline-1", 1, 0.0),
        ("execute_tool get_weather", 1, 1.0),
        ("chat offline-1", 1, 1.0),
    ]
    assert rows["latency_s"].tolist() == [2.0, 1.0, 0.0, 1.0]
    with pytest.raises(TelemetryError, match="no spans"):
        t.store.trace("0" * 32)
    t.store.clear()
    assert len(t.store) == 0


def test_exporter_configuration_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown span exporter"):
        Telemetry(exporter="zipkin")
    with pytest.raises(ConfigError, match="jsonl_path"):
        Telemetry(exporter="jsonl")
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(MissingDependencyError, match=r"\[otlp\]"):
        Telemetry(exporter="otlp")
    with pytest.raises(TelemetryError, match="keeps no spans"):
        _ = Telemetry(exporter="none").store


def test_jsonl_exporter_refuses_after_shutdown(tmp_path):
    exp = JsonLinesSpanExporter(tmp_path / "x.jsonl")
    exp.shutdown()
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert exp.export([]) == SpanExportResult.FAILURE


async def test_span_groups_turns_into_one_trace_with_clock_times():
    cfg = weather_model(latency_s=1.5, sleep=False)
    clock = SimulatedClock(start=10.0, follow=[cfg])
    t = Telemetry(clock=clock)
    a = ag2.Agent("router", "Route.", config=cfg)
    b = ag2.Agent("weather", "Be brief.", config=cfg, tools=[get_weather])
    t.instrument([a, b])
    with t.span("workflow support", workflow="support", customer="ops@example.com"):
        await a.ask("hello")
        await b.ask("What's the weather?")
    with pytest.raises(RuntimeError), t.span("workflow failing"):
        raise RuntimeError("boom")
    spans = t.store.spans()
    root = spans[spans["name"] == "workflow support"].iloc[0]
    turns = t.store.turns()
    assert set(turns["trace_id"]) == {root["trace_id"]}
    assert set(turns["parent_span_id"]) == {root["span_id"]}
    assert (root["time_s"], root["latency_s"], root["workflow"]) == (10.0, 4.5, "support")
    assert root["attributes"]["customer"] == "[EMAIL_ADDRESS]"
    failing = spans[spans["name"] == "workflow failing"].iloc[0]
    assert failing["outcome"] == "error" and failing["error_type"] == "RuntimeError"


# -- a writer that dies: kill -9 and a normal exit ----------------------------------------------------

_WRITER = """
import asyncio, sys, time
import ag2
from agentops.models import OfflineModel
from agentops.telemetry import Telemetry

path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
telemetry = Telemetry(exporter="jsonl", jsonl_path=path)
agent = ag2.Agent("writer", "Be brief.", config=OfflineModel(seed=0))
telemetry.instrument(agent)

async def main():
    i = 0
    while mode == "forever" or i < n:
        await agent.ask(f"turn {i}")
        i += 1
        if i == n:
            print("done", flush=True)

asyncio.run(main())
if mode == "block":
    time.sleep(120)  # alive, idle, never flushed by hand: only the background export writes
"""


def _start_writer(path, n: int, mode: str):
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(n), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout_s: float) -> bool:
    """Poll ``predicate`` every 50 ms; False once ``timeout_s`` passed (a guard, not a measurement)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _turns_in(path) -> int:
    if not path.exists():
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceFileWarning)
        return len(TraceStore.from_jsonl(path).turns())


def _kill(proc) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_kill_9_after_the_last_turn_loses_no_span(tmp_path):
    """Issue 11: spans waited 5 s in memory, so a kill -9 lost them; now they reach the file within a
    second without any flush() call. The writer idles after its turns and is killed once its spans are
    on disk, or after 3 s — three times the promised interval, slack for a loaded machine (a span
    still in memory then fails the test)."""
    path = tmp_path / "spans.jsonl"
    proc = _start_writer(path, 5, "block")
    try:
        assert proc.stdout.readline().strip() == "done", proc.stderr.read()
        _wait_for(lambda: _turns_in(path) == 5, 3.0)
    finally:
        _kill(proc)
    assert proc.returncode == -9
    store = TraceStore.from_jsonl(path)
    assert len(store.turns()) == 5 and len(store.llm_calls()) == 5 and store.skipped_lines == 0


def test_kill_9_mid_write_leaves_a_readable_file(tmp_path):
    path = tmp_path / "spans.jsonl"
    proc = _start_writer(path, 10**9, "forever")
    try:
        assert _wait_for(lambda: path.exists() and path.stat().st_size > 20_000, 60), proc.stderr.read()
    finally:
        _kill(proc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceFileWarning)  # the kill may have torn the last line
        store = TraceStore.from_jsonl(path)
    assert store.skipped_lines <= 1 and len(store.turns()) >= 5
    assert all(isinstance(r, dict) and r["trace_id"] for r in store.records())


def test_a_normal_exit_without_shutdown_exports_every_span(tmp_path):
    path = tmp_path / "spans.jsonl"
    proc = _start_writer(path, 3, "exit")
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        _kill(proc)
    assert proc.returncode == 0, err
    assert len(TraceStore.from_jsonl(path).turns()) == 3


def test_a_failing_span_records_a_redacted_one_line_message_and_no_stack_trace():

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentops.telemetry.spans import span_record

    t = Telemetry()
    raw = InMemorySpanExporter()  # sees the live span, before the export-time redaction
    t.tracer_provider.add_span_processor(SimpleSpanProcessor(raw))
    message = f"payment failed for key {CANARY}\n  while calling the gateway " + "retrying " * 60
    with pytest.raises(RuntimeError), t.span("workflow failing"):
        raise RuntimeError(message)
    cut = "word " * 900 + CANARY  # a secret past the scanned part must not leave a fragment behind
    with pytest.raises(ValueError), t.span("workflow long"):
        raise ValueError(cut)
    for exported in (t.span_exporter.get_finished_spans(), raw.get_finished_spans()):
        records = {s.name: span_record(s) for s in exported}
        assert CANARY not in json.dumps(records) and "sk-canary" not in json.dumps(records)
        failing = records["workflow failing"]
        expected = "RuntimeError: payment failed for key [SECRET] while calling the gateway retrying"
        assert failing["status"] == "ERROR" and failing["status_description"].startswith(expected)
        assert "\n" not in failing["status_description"] and len(failing["status_description"]) <= 200
        assert failing["status_description"].endswith("…")
        (event,) = failing["events"]
        assert event["name"] == "exception" and "exception.stacktrace" not in event["attributes"]
        assert event["attributes"]["exception.type"] == "RuntimeError"
        assert event["attributes"]["exception.message"] == failing["status_description"].split(": ", 1)[1]
        long = records["workflow long"]["status_description"]
        assert long.startswith("ValueError: word word") and len(long) <= 200
    spans = t.store.spans()
    failing = spans[spans["name"] == "workflow failing"].iloc[0]
    assert failing["outcome"] == "error" and failing["error_type"] == "RuntimeError"
