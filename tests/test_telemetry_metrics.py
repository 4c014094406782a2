"""Tests for the telemetry metrics: the /metrics endpoint and the Grafana dashboard's queries."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import ag2
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from telemetry_support import EVENTS, get_weather, logged_telemetry, weather_model

from agentops.errors import ConfigError
from agentops.models import Faults, OfflineModel, ServerError
from agentops.telemetry import (
    MetricsServer,
    Telemetry,
    TelemetryError,
    grafana_dashboard,
)
from agentops.telemetry.dashboard import dashboard_queries, promql_metric_names


@pytest.fixture()
def telemetry():
    yield from logged_telemetry()


# -- metrics endpoint ---------------------------------------------------------------------------------


async def test_metrics_served_over_http_and_parsed(telemetry):
    agent = ag2.Agent("weather", "Be brief.", config=weather_model(), tools=[get_weather])
    telemetry.instrument(agent)
    await agent.ask("What's the weather?")
    server = telemetry.serve_metrics(port=0)
    try:
        assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
        with pytest.raises(TelemetryError, match="already served"):
            telemetry.serve_metrics()
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
        port = server.port
    finally:
        server.stop()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    assert {
        "ag2_llm_calls",
        "ag2_llm_tokens",
        "ag2_tool_calls",
        "ag2_agent_turns",
        "agentops_cost_usd",
        "agentops_request_cost_usd",
    } <= set(fams)
    cost_total = sum(s.value for s in fams["agentops_cost_usd"].samples if s.name == "agentops_cost_usd_total")
    assert cost_total == pytest.approx(telemetry.store.llm_calls()["cost_usd"].sum())
    count = [s.value for s in fams["agentops_request_cost_usd"].samples if s.name == "agentops_request_cost_usd_count"]
    assert count == [1.0]
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_metrics_server_is_loopback_only_and_reports_busy_ports():
    reg = CollectorRegistry()
    with pytest.raises(ConfigError, match="loopback"):
        MetricsServer(reg, host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"0\.\.65535"):
        MetricsServer(reg, port=70000)
    with MetricsServer(reg, port=0) as first, pytest.raises(TelemetryError, match="pick another port"):
        MetricsServer(reg, port=first.port).start()
    with pytest.raises(TelemetryError, match="not running"):
        _ = first.port


# -- dashboard ------------------------------------------------------------------------------------------


def test_promql_metric_names():
    assert promql_metric_names('sum by (le, model) (rate(a_bucket{x="y",le="0.5"}[5m]))') == {"a_bucket"}
    assert promql_metric_names("sum(rate(a_total[$__rate_interval])) / sum(rate(b_total[1h])) * 3600") == {
        "a_total",
        "b_total",
    }
    assert promql_metric_names("label_values(ag2_agent_turns_total, agent)") == {"ag2_agent_turns_total"}
    assert promql_metric_names("x_total > bool 1e-3 and on (slo) y") == {"x_total", "y"}


async def test_dashboard_is_valid_and_every_query_uses_a_real_metric():
    dash = grafana_dashboard()
    json.dumps(dash)
    queries = dashboard_queries(dash)
    assert len(queries) >= 15 and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("requests", "error", "latency", "tokens", "cost", "guardrail", "budget"):
        assert word in titles
    t = Telemetry()
    agent = ag2.Agent("weather", "Be brief.", config=weather_model(), tools=[get_weather])
    t.instrument(agent)
    await agent.ask("What's the weather?")
    await ag2.Agent("odd", "x", config=OfflineModel("unpriced-model-q"), middleware=t.middleware("odd")).ask("hi")
    for kind, payload in EVENTS:
        t.listener(kind, payload)
    with pytest.raises(ServerError):
        bad = ag2.Agent("bad", "x", config=OfflineModel(faults=Faults(server_error=1.0)))
        t.instrument(bad)
        await bad.ask("x")
    with t.serve_metrics(port=0) as server:
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
    produced = {s.name for f in text_string_to_metric_families(body) for s in f.samples}
    used = set().union(*(promql_metric_names(q) for q in queries))
    assert used, "no metric found in the dashboard"
    assert used <= produced, f"dashboard uses metrics the exporter does not produce: {sorted(used - produced)}"
