"""run_pytest (in process and isolated) and run_cli: real pytest runs on a tiny project."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

import pytest

from agentops.errors import ConfigError
from agentops.testing import ALLOW_ENV, run_cli, run_pytest

TESTS = """
import asyncio

import pytest


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert 1 + 1 == 3, "arithmetic is broken"


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


async def test_async_runs_on_its_own_loop():
    await asyncio.sleep(0)


@pytest.fixture()
def broken():
    raise RuntimeError("fixture blew up")


def test_setup_error(broken):
    pass


def test_model_requests_are_forbidden():
    import os

    assert os.environ["AGENTOPS_ALLOW_MODEL_REQUESTS"] == "0"
"""


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.pytest.ini_options]
            testpaths = ["tests"]
            addopts = "-p agentops.testing"
            asyncio_mode = "auto"
            asyncio_default_fixture_loop_scope = "function"
            """
        )
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tiny.py").write_text(TESTS)
    return tmp_path


EXPECTED = {
    "test_passes": "passed",
    "test_fails": "failed",
    "test_skipped": "skipped",
    "test_async_runs_on_its_own_loop": "passed",
    "test_setup_error": "error",
    "test_model_requests_are_forbidden": "passed",
}


def _check(frame):
    assert dict(zip(frame.test, frame.outcome, strict=True)) == EXPECTED
    messages = dict(zip(frame.test, frame.message, strict=True))
    assert "arithmetic is broken" in messages["test_fails"] and "fixture blew up" in messages["test_setup_error"]
    assert "not today" in messages["test_skipped"] and messages["test_passes"] == ""
    assert frame.attrs["exit_code"] == 1


def test_run_pytest_in_process_reports_each_test_and_restores_the_environment(project, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    path_before = list(sys.path)
    frame = run_pytest(project)
    _check(frame)
    assert "1 failed" in frame.attrs["output"]
    assert ALLOW_ENV not in os.environ and "PYTEST_DISABLE_PLUGIN_AUTOLOAD" not in os.environ
    assert sys.path == path_before


async def test_run_pytest_from_a_running_event_loop(project):
    assert asyncio.get_running_loop() is not None
    _check(run_pytest(project, "-k", "not nothing"))


def test_run_pytest_isolated_runs_one_subprocess(project):
    _check(run_pytest(project, isolated=True))


def test_run_pytest_selects_with_k_and_refuses_a_missing_project(project, tmp_path):
    frame = run_pytest(project, "-k", "passes")
    assert list(frame.test) == ["test_passes"] and frame.attrs["exit_code"] == 0
    (project / "tests" / "test_broken.py").write_text("import no_such_module_here\n")
    frame = run_pytest(project, "-k", "passes")
    broken = frame[frame.outcome == "error"]
    assert list(broken.test) == ["tests/test_broken.py"] and "no_such_module_here" in broken.message.iloc[0]
    with pytest.raises(ConfigError, match="needs a project directory"):
        run_pytest(tmp_path / "nope")


async def test_run_cli_runs_a_command_in_process_and_returns_its_lines(tmp_path):
    code, lines = run_cli("eval", str(tmp_path / "missing.yaml"))
    assert code == 2 and any("missing.yaml" in line for line in lines)
    code, lines = run_cli("list")
    assert code == 0 and any("07_resilience" in line for line in lines)


def test_run_simulated_lands_sleeps_exactly_and_restores_anyio():
    import asyncio

    import anyio.to_thread

    from agentops.testing import run_simulated

    before = anyio.to_thread.run_sync

    async def eight_in_parallel(clock):
        start = clock()
        await asyncio.gather(*(asyncio.sleep(0.2) for _ in range(8)))
        parallel = clock() - start
        inline = await anyio.to_thread.run_sync(lambda: "ran inline")
        for _ in range(3):
            await asyncio.sleep(0.2)
        return parallel, clock() - start, inline

    parallel, total, inline = run_simulated(eight_in_parallel)
    assert parallel == pytest.approx(0.2, abs=1e-3) and total == pytest.approx(0.8, abs=1e-3)
    assert inline == "ran inline"
    assert anyio.to_thread.run_sync is before
