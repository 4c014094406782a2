"""Two service processes (``python -m agentops serve``) sharing one Redis: one limit, one budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("a2a")
httpx = pytest.importorskip("httpx")

from agentops.serve.testing import ServiceProcess  # noqa: E402

KEY = "scale-out-key-000001"


@pytest.fixture
def two_replicas(redis_client, redis_url):
    env = {"AGENTOPS_API_KEYS": f"team={KEY}", "AGENTOPS_SERVE_MAX_TOKENS": "100000"}
    replicas = ServiceProcess.replicas(2, redis_url=redis_url, rate="5/minute", env=env)
    try:
        yield replicas
    finally:
        for r in replicas:
            r.stop()


def _ask(url, prompt="refund?"):
    return httpx.post(url + "/v1/ask", json={"prompt": prompt}, headers={"X-API-Key": KEY}, timeout=10)


def test_rate_limit_is_shared_by_two_processes(two_replicas):
    a, b = two_replicas
    assert a.url != b.url and a.pid != b.pid
    answers = [_ask(r.url) for r in (a, b, a, b, a, b, a)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
    assert {r.json()["error"] for r in answers[5:]} == {"rate_limited"}


def test_token_budget_is_shared_by_two_processes(redis_client, redis_url):
    env = {"AGENTOPS_API_KEYS": f"team={KEY}", "AGENTOPS_SERVE_MAX_TOKENS": "150"}
    replicas = ServiceProcess.replicas(2, redis_url=redis_url, rate="", env=env)
    try:
        bodies = [_ask(r.url).json() for r in replicas * 4]
    finally:
        for r in replicas:
            r.stop()
    answered = [x for x in bodies if "answer" in x]
    refused = [x for x in bodies if x.get("kind") == "BudgetExceeded"]
    assert len(answered) + len(refused) == 8
    # 150 tokens: a call reserves ~95 (prompt + 64 completion) and settles ~40, so two answers fit
    # whichever replica serves them; alone, each replica would have answered at least twice.
    assert len(answered) == 2 and len(refused) == 6, bodies


def test_cli_drains_on_sigterm_and_reports(redis_url):
    env = {"AGENTOPS_API_KEYS": f"team={KEY}"}
    with ServiceProcess(redis_url=redis_url, rate="", env=env) as a:
        assert httpx.get(a.url + "/readyz").status_code == 200
    assert a.returncode == 0
    assert "stopped; drained" in a.output


def test_cli_check_and_bad_target():
    env = {**os.environ, "AGENTOPS_API_KEYS": f"team={KEY}", "PYTHONPATH": str(Path(__file__).parents[1])}
    run = [sys.executable, "-m", "agentops", "serve"]
    target = "agentops.scenarios.deployment:support_agent"
    ok = subprocess.run([*run, target, "--check"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok: support with 1 key(s), limit 60/minute"
    assert KEY not in ok.stdout + ok.stderr
    bad = subprocess.run([*run, "agentops.scenarios.deployment"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "module:factory" in bad.stderr
