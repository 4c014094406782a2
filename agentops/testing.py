"""Test doubles and a pytest plugin for AG2 apps built with ``agentops``: ``pytest -p agentops.testing``.

Loading the plugin (``-p agentops.testing`` on the command line, ``addopts`` in ``pyproject.toml``, or
``pytest_plugins = ["agentops.testing"]`` in a ``conftest.py``)

* **forbids real model requests** for the whole session by setting ``AGENTOPS_ALLOW_MODEL_REQUESTS=0``
  (unless it is already set): :func:`agentops.models.model_config` then refuses every real backend,
  and child processes — notebook kernels under nbval, ``pytest`` run from a notebook — inherit it. A
  test that really wants a model takes the :func:`allow_model_requests` fixture and the
  ``real_model`` marker;
* registers the ``real_model`` marker, and skips those tests unless ``--real-model`` is given;
* provides fixtures: ``offline_model``, ``simulated_clock``, ``scripted_approver``, ``offline_judge``,
  ``replay_config`` (a cassette played back), ``fault_servers`` (the offline model over real HTTP with
  injected faults) and ``allow_model_requests``.

The doubles themselves are importable from here too (one place to look): :class:`OfflineModel` and its
rule helpers, :class:`SlowModel` (calls held back, or never answered: time limits),
:class:`ScriptedApprover`, :class:`SimulatedClock`, :func:`offline_judge_model`, and
:func:`chat_server`, a fake OpenAI-compatible server (an ``httpx2.MockTransport``) for testing how an
app copes with what real servers do — rejected ``json_schema``, malformed tool arguments — without a
network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentops.compat import ALLOW_ENV, ModelRequestsForbidden, model_requests_allowed

__all__ = [
    "ALLOW_ENV",
    "ModelRequestsForbidden",
    "OfflineModel",
    "ScriptedApprover",
    "SimulatedClock",
    "SlowModel",
    "chat_completion",
    "chat_server",
    "json_rule",
    "model_requests_allowed",
    "offline_judge_model",
    "rule",
    "run_cli",
    "run_pytest",
    "run_simulated",
    "tool_rule",
]

if TYPE_CHECKING:  # imported lazily below: the plugin loads before any test, so its import stays light
    from agentops.escalation import ScriptedApprover
    from agentops.evals import offline_judge as offline_judge_model
    from agentops.models import OfflineModel, SlowModel, json_rule, rule, tool_rule
    from agentops.telemetry import SimulatedClock

_LAZY = {
    "OfflineModel": ("agentops.models", "OfflineModel"),
    "SlowModel": ("agentops.models", "SlowModel"),
    "rule": ("agentops.models", "rule"),
    "tool_rule": ("agentops.models", "tool_rule"),
    "json_rule": ("agentops.models", "json_rule"),
    "ScriptedApprover": ("agentops.escalation", "ScriptedApprover"),
    "SimulatedClock": ("agentops.telemetry", "SimulatedClock"),
    "offline_judge_model": ("agentops.evals", "offline_judge"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'agentops.testing' has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------
# A fake OpenAI-compatible server
# --------------------------------------------------------------------------------------------------


def chat_completion(
    content: str | None = None,
    *,
    tool_calls: Iterable[tuple[str, str]] = (),
    finish_reason: str | None = None,
    model: str = "fake-1",
    usage: tuple[int, int] = (10, 5),
) -> dict[str, Any]:
    """An OpenAI chat-completion body; ``tool_calls`` are ``(name, raw_arguments)`` pairs (any text)."""
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}
        for i, (name, args) in enumerate(tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason or ("tool_calls" if calls else "stop")}
        ],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def chat_server(
    replies: Iterable[dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]],
    *,
    reject: Iterable[str] = (),
) -> Any:
    """A fake OpenAI-compatible server: an ``httpx2.MockTransport`` answering chat completions in order.

    Pass it as ``model_config("compatible", "fake-1", base_url="http://fake/v1", transport=chat_server([...]))``.
    Each reply is a body (see :func:`chat_completion`) or a function of the request body returning one.
    ``reject`` makes the server answer HTTP 500 like some real servers do: ``"json_schema"`` (a
    ``response_format`` of that type) and/or ``"null_content"`` (an assistant message with ``content: null``).
    Every request body received is appended to the transport's ``requests`` list.
    """
    import httpx2

    queue = list(replies)
    rejected = set(reject)
    unknown = rejected - {"json_schema", "null_content"}
    if unknown:
        from agentops.errors import ConfigError

        raise ConfigError(f"chat_server cannot reject {sorted(unknown)}; choose json_schema, null_content")
    seen: list[dict[str, Any]] = []

    def handle(request: Any) -> Any:
        body = json.loads(request.content or b"{}")
        seen.append(body)
        fmt = (body.get("response_format") or {}).get("type")
        nulls = any(m.get("role") == "assistant" and m.get("content") is None for m in body.get("messages", []))
        if ("json_schema" in rejected and fmt == "json_schema") or ("null_content" in rejected and nulls):
            return httpx2.Response(500, json={"error": {"message": "unsupported request", "type": "server_error"}})
        if not queue:
            return httpx2.Response(500, json={"error": {"message": "fake server: no scripted reply left"}})
        reply = queue.pop(0)
        return httpx2.Response(200, json=reply(body) if callable(reply) else reply)

    transport = httpx2.MockTransport(handle)
    transport.requests = seen  # type: ignore[attr-defined]
    return transport


# --------------------------------------------------------------------------------------------------
# The pytest plugin
# --------------------------------------------------------------------------------------------------


def pytest_addoption(parser: Any) -> None:
    """``--real-model``: run the tests marked ``real_model`` (they start a local model server)."""
    parser.addoption(
        "--real-model",
        action="store_true",
        default=False,
        help="run tests marked real_model (they need the `local` extra and start a model server)",
    )


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Skip ``real_model`` tests unless ``--real-model`` was given: a plain run never starts a model."""
    if config.getoption("--real-model"):
        return
    skip = pytest.mark.skip(reason="real-model test: run with --real-model (make test-real)")
    for item in items:
        if "real_model" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config: Any) -> None:
    """Forbid real model requests for the session (inherited by subprocesses) and register markers."""
    os.environ.setdefault(ALLOW_ENV, "0")
    config.addinivalue_line(
        "markers", "real_model: needs a real model server (the `local` extra); opts in to model requests"
    )


@pytest.fixture()
def allow_model_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Allow real model requests for one test (the session forbids them)."""
    monkeypatch.setenv(ALLOW_ENV, "1")
    yield


@pytest.fixture()
def offline_model() -> Any:
    """A fresh :class:`OfflineModel` (seed 0, no latency) to register rules on."""
    from agentops.models import OfflineModel

    return OfflineModel(seed=0)


@pytest.fixture()
def simulated_clock() -> Any:
    """A :class:`SimulatedClock` at t=0."""
    from agentops.telemetry import SimulatedClock

    return SimulatedClock(start=0.0)


@pytest.fixture()
def scripted_approver() -> Callable[..., Any]:
    """A factory: ``scripted_approver("yes", False, default="no")`` → a :class:`ScriptedApprover`."""
    from agentops.escalation import ScriptedApprover

    return ScriptedApprover


@pytest.fixture()
def offline_judge() -> Any:
    """An offline judge model that grades answers by rule (see :func:`agentops.evals.offline_judge`)."""
    from agentops.evals import offline_judge as build

    return build()


@pytest.fixture()
def fault_servers() -> Iterator[Callable[..., Any]]:
    """A factory: ``fault_servers(model, faults=HTTPFaults(...))`` → a running
    :class:`~agentops.resilience.FaultServer` (the offline model over HTTP on a free loopback port, with
    injected wire faults); every server it started is stopped when the test ends."""
    from agentops.resilience import FaultServer

    started: list[Any] = []

    def start(*args: Any, **kwargs: Any) -> Any:
        server = FaultServer(*args, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def replay_config(request: pytest.FixtureRequest) -> Callable[[str | Path], Any]:
    """A factory: ``replay_config("cassettes/x.yaml")`` → a ``ModelConfig`` replaying that cassette.

    Relative paths are resolved against the test file's directory. Each test replays from the
    cassette's first exchange, whatever ran before it in the process.
    """
    from agentops.cassettes import forget_cassette
    from agentops.models import model_config

    def build(path: str | Path) -> Any:
        p = Path(path)
        if not p.is_absolute():
            p = Path(request.node.path).parent / p
        forget_cassette(p)
        return model_config("replay", cassette=p)

    return build


# --------------------------------------------------------------------------------------------------
# Running a test suite from a notebook or a script
# --------------------------------------------------------------------------------------------------


_PLUGINS = ("pytest_asyncio.plugin", "_hypothesis_pytestplugin")
"""Plugins a run loads by name; every other installed plugin stays out (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``)."""


class _Collector:
    """A pytest plugin that keeps one row per test: its outcome and the first line of the failure."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:  # a module that does not import: one error row, named by its path
            self.rows[report.nodeid] = {"test": report.nodeid, "outcome": "error", "message": _first_line(report)}

    def pytest_runtest_logreport(self, report: Any) -> None:
        row = self.rows.setdefault(report.nodeid, {"test": report.nodeid.split("::")[-1], "outcome": "passed"})
        if report.when == "call" or not report.passed:
            outcome = report.outcome if report.when == "call" or report.skipped else "error"
            if row["outcome"] == "passed" or outcome == "error":
                row["outcome"] = outcome
                row["message"] = _first_line(report)


def _first_line(report: Any) -> str:
    if report.passed:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:120]
    if report.when == "collect":  # an import error: its last line names the cause
        return str(report.longrepr).strip().splitlines()[-1][:120]
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2])[:120]
    return str(report.longrepr).splitlines()[0][:120] if report.longrepr else ""


def _pytest_args(args: Iterable[str]) -> list[str]:
    plugins = [f"-p{name}" for name in _PLUGINS]
    return ["-q", "-p", "no:cacheprovider", *plugins, *args]


def _in_process(root: Path, args: list[str]) -> tuple[int, str, _Collector]:
    """``pytest.main`` in this process with the environment and ``sys.path`` restored afterwards."""
    import contextlib
    import io
    import sys

    collector, out = _Collector(), io.StringIO()
    saved_env, saved_path = dict(os.environ), list(sys.path)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            # importlib mode: test modules of another project run earlier in this process never collide
            own = ["--import-mode=importlib", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
            code = pytest.main([*args, *own, str(root)], plugins=[collector])
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
    return int(code), out.getvalue(), collector


def _subprocess(root: Path, args: list[str], timeout_s: float) -> tuple[int, str, _Collector]:
    import subprocess
    import sys
    import tempfile
    import xml.etree.ElementTree as ET

    collector = _Collector()
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [sys.executable, "-m", "pytest", *args, f"--junitxml={report}"]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        if report.exists():
            for case in ET.parse(report).getroot().iter("testcase"):
                row = {"test": case.get("name") or "", "outcome": "passed", "message": ""}
                for kind, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
                    node = case.find(kind)
                    if node is not None:
                        row["outcome"], row["message"] = outcome, (node.get("message") or "").split("\n")[0][:120]
                        break
                collector.rows[f"{case.get('classname')}::{row['test']}"] = row
    return proc.returncode, proc.stdout + proc.stderr, collector


def _off_the_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, on a worker thread when this thread runs an event loop (``asyncio.run`` inside)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    with ThreadPoolExecutor(1, thread_name_prefix="agentops-testing") as pool:
        return pool.submit(fn, *args).result()


def run_cli(*argv: str) -> tuple[int, list[str]]:
    """``python -m agentops <argv>`` in this process: the exit code and the non-blank output lines.

    What CI runs, without starting a second interpreter (the same ``main`` the command line calls).

    >>> run_cli("eval", "no-such-suite.yaml")[0]
    2
    """
    import contextlib
    import io

    from agentops.__main__ import main

    def call() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(list(argv))
        return code, out.getvalue()

    code, text = _off_the_loop(call)
    return code, [line for line in text.splitlines() if line.strip()]


def run_pytest(project: str | Path, *args: str, isolated: bool = False, timeout_s: float = 600.0) -> Any:
    """Run a project's tests with pytest; one row per test (``test``, ``outcome``, ``message``).

    Pytest runs with the project's own configuration (``pyproject.toml`` addopts, markers), no cache,
    and only the plugins it needs (``pytest-asyncio``, hypothesis's, plus whatever the project's
    addopts load with ``-p``): installed plugins are not autoloaded, so a stray one cannot change the
    result. By default pytest runs **in this process** (``pytest.main``) — no second interpreter to
    start, which is what makes it fast enough to call from a notebook; the environment (the plugin sets
    ``AGENTOPS_ALLOW_MODEL_REQUESTS=0``) and ``sys.path`` are restored afterwards. From inside a running
    event loop (a notebook cell) it runs on a worker thread, since pytest-asyncio starts loops of its own.
    ``isolated=True`` runs one ``python -m pytest`` subprocess instead (results from its JUnit report).

    ``frame.attrs``: ``exit_code`` (pytest's) and ``output`` (its terminal report).
    """
    import pandas as pd

    root = Path(project).resolve()
    if not root.is_dir():
        from agentops.errors import ConfigError

        raise ConfigError(f"run_pytest needs a project directory, got {str(project)!r}")
    full = _pytest_args(args)
    if isolated:
        code, output, collector = _subprocess(root, full, timeout_s)
    else:
        code, output, collector = _off_the_loop(_in_process, root, full)
    frame = pd.DataFrame(list(collector.rows.values()), columns=["test", "outcome", "message"]).fillna("")
    frame.attrs["exit_code"] = code
    frame.attrs["output"] = output[-4000:]
    return frame


def run_simulated(coro_factory: Callable[[Callable[[], float]], Any]) -> Any:
    """Run ``coro_factory(loop.time)`` to completion on a simulated clock (looptime, starting at 0).

    Sleeps, model latencies and timeouts take no wall time and land exactly, so a benchmark can show
    what concurrency does without the machine's load in the number. AG2 runs some synchronous hooks in
    anyio worker threads, which a simulated loop cannot see (it would jump to its next timer while a
    thread still works), so they run inline for the duration — as the ``simulated_time`` test fixture
    does. Needs the ``looptime`` package (in the ``dev`` extra).
    """
    import anyio.to_thread
    import looptime

    async def run_inline(func: Any, *args: Any, **_: Any) -> Any:
        return func(*args)

    original, anyio.to_thread.run_sync = anyio.to_thread.run_sync, run_inline
    loop = looptime.new_event_loop(start=0.0)
    try:
        return loop.run_until_complete(coro_factory(loop.time))
    finally:
        loop.close()
        anyio.to_thread.run_sync = original
