"""What an eval runs against: agents, async callables, role graphs and workflows — and the registry
that lets a suite file name one.

A suite file is data. Its ``target:`` (and ``judge.factory:``) can only name a factory registered in
code with :func:`register_target` (:func:`register_judge`), never an import path, so loading and
running a suite cannot execute code its author chose. The command line's ``--agent`` / ``--judge``
accept ``module:factory`` because whoever types the command already runs code.

>>> build_target("demo_agent", variant="regressed").name
'support_regressed'
>>> build_target("os:system")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agentops.evals.errors.UnknownKeyError: unknown target 'os:system' (an import path is accepted only on the ...
"""

from __future__ import annotations

import importlib
import inspect
import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import ag2
from ag2.events import Usage

from agentops.errors import ConfigError
from agentops.evals.cases import _NAME
from agentops.evals.errors import EvalError, UnknownKeyError

__all__ = [
    "Target",
    "TargetResponse",
    "build_judge",
    "build_target",
    "register_judge",
    "register_target",
    "role_graph_target",
    "workflow_target",
]

Target = Union[ag2.Agent, Callable[[str], Awaitable[Any]]]  # noqa: UP007
"""An ``ag2.Agent`` or any ``(prompt) -> str | AgentReply | TargetResponse`` (sync or async)."""


@dataclass(frozen=True)
class TargetResponse:
    """What a non-agent target may return when it knows more than text: usage per model and tool calls.

    ``usage`` maps model name → ``ag2.events.Usage`` (priced through :mod:`agentops.usage`).
    """

    text: str
    usage: Mapping[str, Usage] = field(default_factory=dict)
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


class _Registry:
    """Names → factories, safe under threads. Built-ins are code constants resolved on first use."""

    def __init__(self, kind: str, builtins: Mapping[str, str]) -> None:
        self.kind = kind
        self._items: dict[str, Any] = dict(builtins)
        self._lock = threading.Lock()

    def add(self, name: str, factory: Any, *, replace: bool) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{self.kind} name {name!r} must start with a letter and use only letters, digits, _ . - "
                f"(it is what a suite file writes)"
            )
        if not (callable(factory) or isinstance(factory, ag2.Agent)):
            raise ConfigError(f"{self.kind} {name!r} must be an ag2.Agent or a callable, got {type(factory).__name__}")
        with self._lock:
            old = self._items.get(name)
            if old is not None and old is not factory and not replace:
                raise ConfigError(f"{self.kind} {name!r} is already registered; pick another name or pass replace=True")
            self._items[name] = factory

    def get(self, name: str) -> Any:
        with self._lock:
            item = self._items.get(name)
            names = sorted(self._items)
        if item is None:
            hint = ""
            if ":" in name:
                hint = f" (an import path is accepted only on the command line, with --{_FLAG[self.kind]})"
            raise UnknownKeyError(f"unknown {self.kind} {name!r}{hint}; registered {self.kind}s: {names}")
        if isinstance(item, str):  # a built-in, named by the package itself
            item = _import(item, self.kind)
        return item


_FLAG = {"target": "agent", "judge": "judge"}
_TARGETS = _Registry("target", {"demo_agent": "agentops.evals.demo:demo_agent"})
_JUDGES = _Registry("judge", {"offline_judge": "agentops.evals.offline:offline_judge"})


def register_target(name: str, factory: Any, *, replace: bool = False) -> None:
    """Let suite files name a target: ``target: <name>`` (with ``target_options`` as keyword arguments).

    ``factory`` is an ``ag2.Agent``, an async ``(prompt) -> ...`` function (both take no options), or
    a factory called with the suite's ``target_options`` that returns either.

    Raises:
        ConfigError: a bad name, a non-callable factory, or the name is taken (``replace=True`` to swap).
    """
    _TARGETS.add(name, factory, replace=replace)


def register_judge(name: str, factory: Callable[..., Any], *, replace: bool = False) -> None:
    """Let suite files name a judge: ``judge: {factory: <name>, options: {...}}``.

    ``factory(**options)`` returns a :class:`~agentops.evals.Judge` or a model config to judge with.
    """
    _JUDGES.add(name, factory, replace=replace)


def build_target(spec: str, *, allow_import: bool = False, **options: Any) -> Any:
    """The target a suite or the CLI names: a registered name, or ``module:factory`` with ``allow_import``.

    Raises:
        UnknownKeyError: the name is not registered (or is an import path without ``allow_import``).
        EvalError: the factory rejects the options or fails.
    """
    return _build(_TARGETS, spec, allow_import, options)


def build_judge(spec: str, *, allow_import: bool = False, **options: Any) -> Any:
    """A judge (or judge model config) by registered name, or ``module:factory`` with ``allow_import``."""
    return _build(_JUDGES, spec, allow_import, options)


def _build(registry: _Registry, spec: str, allow_import: bool, options: dict[str, Any]) -> Any:
    obj = _import(spec, registry.kind) if allow_import and ":" in spec else registry.get(spec)
    if isinstance(obj, ag2.Agent) or inspect.iscoroutinefunction(obj):
        if options:
            raise EvalError(f"{registry.kind} {spec!r} is not a factory; it takes no options (got {sorted(options)})")
        return obj
    if not callable(obj):
        raise EvalError(f"{registry.kind} {spec!r} is a {type(obj).__name__}, not an agent, async function or factory")
    try:
        inspect.signature(obj).bind(**options)
    except TypeError as exc:
        raise EvalError(f"{registry.kind} factory {spec!r} rejects options {sorted(options)}: {exc}") from None
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    try:
        return obj(**options)
    except ConfigError as exc:
        raise EvalError(f"{registry.kind} factory {spec!r} failed: {exc}") from None


def _import(spec: str, kind: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{kind} {spec!r} must look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EvalError(f"cannot import {module_name!r} for {kind} {spec!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise EvalError(f"{module_name!r} has no attribute {attr!r} ({kind} {spec!r})") from None


# --------------------------------------------------------------------------------------------------
# Role graphs and workflows as targets
# --------------------------------------------------------------------------------------------------


class _RunRecorder:
    """AG2 middleware factory that records every model call's usage (per model) and tool calls.

    Given to a role graph or workflow through its ``middleware=`` seam, it lets an eval price and
    check a multi-agent run exactly like a single agent's reply. Safe under asyncio (one event loop).
    """

    def __init__(self) -> None:
        self.usage: dict[str, Usage] = {}
        self.tool_calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: Any, context: Any) -> Any:
        from ag2.middleware import BaseMiddleware

        recorder = self

        class _Record(BaseMiddleware):
            async def on_llm_call(self, call_next: Any, events: Any, ctx: Any) -> Any:
                response = await call_next(events, ctx)
                if response.usage:
                    name = response.model or "unknown"
                    recorder.usage[name] = recorder.usage.get(name, Usage()) + response.usage
                for call in response.tool_calls.calls:
                    recorder.tool_calls.append((call.name, _arguments(call.arguments)))
                return response

        return _Record(event, context)

    def response(self, text: str) -> TargetResponse:
        return TargetResponse(text, dict(self.usage), tuple(self.tool_calls))


def _arguments(raw: str | None) -> dict[str, Any]:
    """A tool call's JSON arguments as a dict (unparsable text kept under ``_raw``)."""
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return {"_raw": raw}
    return args if isinstance(args, dict) else {"_value": args}


def _with_recorder(recorder: _RunRecorder, extra: Any) -> Callable[[str], list[Any]]:
    """The recorder innermost of the caller's middleware spec (a list or a function of the role name)."""
    from agentops.graph import extra_middleware

    return lambda name: [*extra_middleware(extra, name), recorder]


def role_graph_target(graph: Any, **run_options: Any) -> Callable[[str], Awaitable[TargetResponse]]:
    """Turn an :class:`agentops.graph.RoleGraph` into an eval target.

    Each case runs ``graph.run(prompt, **run_options)``; the answer is the last role's text, and usage
    and tool calls of every role are recorded, so token, cost and tool-call assertions work.

    Example::

        run = await run_suite(suite, role_graph_target(desk, model=cfg))
    """
    extra = run_options.pop("middleware", None)

    async def target(prompt: str) -> TargetResponse:
        recorder = _RunRecorder()
        run = await graph.run(prompt, middleware=_with_recorder(recorder, extra), **run_options)
        return recorder.response(run.answer)

    return target


def workflow_target(template: Any, **run_options: Any) -> Callable[[str], Awaitable[TargetResponse]]:
    """Turn an :mod:`agentops.workflows` template into an eval target.

    Each case runs ``run_workflow(template, prompt, **run_options)``; the answer is the output of the
    last stage that completed (template order), with every stage's usage and tool calls recorded. A run
    that does not complete raises, so the case is recorded as an error naming the stage.
    """
    from agentops.workflows import run_workflow

    extra = run_options.pop("middleware", None)

    async def target(prompt: str) -> TargetResponse:
        recorder = _RunRecorder()
        run = await run_workflow(template, prompt, middleware=_with_recorder(recorder, extra), **run_options)
        run.raise_for_status()
        done = [r.stage for r in run.stages if r.stage in run.outputs]
        return recorder.response(run.outputs[done[-1]] if done else "")

    return target
