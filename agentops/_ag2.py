"""Every coupling to AG2 beyond its documented public API, one section per concern.

Each name here relies on something AG2 1.x does but does not promise — a private module, an
undocumented key, a behaviour — and has a contract test in ``tests/test_ag2_contract.py`` against the
pinned AG2 version, so an AG2 upgrade that breaks one fails one file with a named test instead of a
chapter. Each section says why no public alternative exists.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from ag2.events import ModelResponse, ToolApprovalRequest, ToolCallEvent
from opentelemetry import trace as _trace

# ==================================================================================================
# Role graphs (agentops.graph): the ag2.network hub's log lines and its packet payload
# ==================================================================================================
#
# No public alternative: the hub reports a turn that failed inside a workflow channel only as a log
# line (the channel keeps waiting), and a transition target receives the raw envelope, whose packet
# payload shape is documented in a source comment only.

NETWORK_LOGGER = "ag2.network"
"""The logger AG2's network hub writes to. A turn that raises inside a workflow channel is reported
only here (``notify handler raised``, WARNING), and rejected posts likewise; the channel itself keeps
waiting for the failed speaker."""

_network_sink: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("agentops_network_sink", default=None)
_capture_lock = threading.Lock()
_capture_users = 0
_capture_handler: _NetworkLogRouter | None = None


def _handled_elsewhere(record: logging.LogRecord, skip: logging.Handler) -> bool:
    """True when a handler other than ``skip`` would see ``record`` (the lookup ``Logger.callHandlers``
    does before falling back to ``logging.lastResort``)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not skip and record.levelno >= h.level for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent  # type: ignore[assignment]
    return False


class _NetworkLogRouter(logging.Handler):
    """Appends a network record to the sink of the run whose task emitted it.

    Records from outside any capture go where they would have gone without this handler (the
    process's ``logging.lastResort`` when nothing else handles them), so installing it changes
    nothing for other code. Records inside a capture still reach handlers the user configured.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        sink = _network_sink.get()
        if sink is not None:
            sink.append(f"{record.levelname} {record.name}: {record.getMessage()}")
            return
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and not _handled_elsewhere(record, self):
            last.handle(record)


@contextlib.contextmanager
def network_log_capture(sink: list[str] | None = None) -> Iterator[list[str]]:
    """Collect the ``ag2.network`` WARNING lines of the tasks started inside this block into ``sink``.

    Nothing about the logger is changed (level, propagation and handlers stay as configured): a
    handler is added while at least one capture is active and routes each record by the asyncio
    context it was emitted from, so concurrent runs keep their own lines, and records emitted outside
    every capture are handled exactly as before. Without logging configured, captured lines no longer
    reach stderr (which would break notebook output); with logging configured they also reach your
    handlers. Re-entrant and safe for concurrent runs.
    """
    global _capture_users, _capture_handler
    sink = [] if sink is None else sink
    token = _network_sink.set(sink)
    with _capture_lock:
        if _capture_users == 0:
            _capture_handler = _NetworkLogRouter()
            logging.getLogger(NETWORK_LOGGER).addHandler(_capture_handler)
        _capture_users += 1
    try:
        yield sink
    finally:
        _network_sink.reset(token)
        with _capture_lock:
            _capture_users -= 1
            if _capture_users == 0 and _capture_handler is not None:
                logging.getLogger(NETWORK_LOGGER).removeHandler(_capture_handler)
                _capture_handler = None


def packet_body(envelope: Any) -> str:
    """The text of a workflow packet (``ag2.packet`` envelope): ``event_data["body"]``.

    AG2 documents the payload shape in a comment of ``ag2/network/envelope.py`` only; a transition
    target receives the envelope and has no other way to read what the speaker said.
    """
    data = getattr(envelope, "event_data", None)
    body = data.get("body", "") if isinstance(data, dict) else ""
    return body if isinstance(body, str) else ""


# ==================================================================================================
# Evals (agentops.evals): grading without writing the run JSON
# ==================================================================================================
#
# No public alternative: ``evaluate_traces`` documents ``store_dir`` as the directory it always writes
# ``<run_id>.json`` to; a scratch directory works but serialises every case's events and feedback on
# each run — about half the runner's CPU time on a 1,000-case suite.


async def grade_traces_in_memory(source: Any, **options: Any) -> Any:
    """``ag2.eval.evaluate_traces`` without writing the run JSON to disk.

    Its grading core skips the write when ``store_dir`` is falsy (``if store_dir:`` in
    ``ag2/eval/runtime/evaluate.py``), which is how ``run_agent(store_dir=None)`` runs in memory. The
    caller saves the run itself (``RunResult.save(path)``) when it wants a file.
    """
    from ag2.eval import evaluate_traces

    return await evaluate_traces(source, store_dir="", **options)


# ==================================================================================================
# Tool approvals (agentops.tools.Approver)
# ==================================================================================================
#
# No public alternative: a ToolApprovalRequest carries one structured field about its call,
# ``tool_call_id``; the tool's name and arguments are only in the prose of ``content``. We do not parse
# the prose (a crafted argument could make it read like another call): the model's
# ToolCallEvent is already in the stream's history (published before any tool runs) and is found by
# that id. Relied on: (1) ``ToolApprovalRequest.tool_call_id`` equals ``ToolCallEvent.id``; (2) the
# ToolCallEvent (or the ModelResponse carrying it) is in ``context.stream.history`` when the hook runs.


async def approval_call(event: ToolApprovalRequest, context: Any) -> ToolCallEvent | None:
    """The tool call an approval request is about, looked up by ``tool_call_id``; None if not found."""
    stream = getattr(context, "stream", None)
    history = getattr(stream, "history", None)
    if history is None or not getattr(event, "tool_call_id", None):
        return None
    events = list(await history.get_events())
    for e in reversed(events):
        if isinstance(e, ToolCallEvent) and e.id == event.tool_call_id:
            return e
        if isinstance(e, ModelResponse) and e.tool_calls is not None:
            for call in e.tool_calls.calls:
                if call.id == event.tool_call_id:
                    return call
    return None


def call_arguments(call: ToolCallEvent) -> dict[str, Any]:
    """A tool call's arguments as a dict ({} when the model sent something that is not a JSON object)."""
    try:
        args = json.loads(call.arguments or "{}")
    except (TypeError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}


# ==================================================================================================
# Guardrails (agentops.guardrails): the stream a model client publishes through
# ==================================================================================================
#
# No public alternative: AG2 model clients publish streamed output (``ModelMessageChunk``,
# ``ModelMessage``) with ``context.send`` *before* ``on_llm_call`` returns, so live stream observers
# see text no middleware has checked yet, and AG2 offers no hook on that path. The seam used here:
# ``ConversationContext`` is a dataclass whose ``send`` forwards to ``self.stream.send(event, self)``,
# and the context an ``on_llm_call`` hook passes to ``call_next`` is the one the client receives. A
# guard hands the client a copy of the context whose stream redacts before publishing.


def context_stream(context: Any) -> Any:
    """The stream a conversation context publishes to."""
    return context.stream


def with_stream(context: Any, stream: Any) -> Any:
    """A copy of ``context`` that publishes through ``stream`` (dependencies and variables shared)."""
    import dataclasses

    return dataclasses.replace(context, stream=stream)


# ==================================================================================================
# Telemetry (agentops.telemetry)
# ==================================================================================================

#: The attribute AG2's ``TelemetryMiddleware`` stamps on every span it opens, and its values. AG2
#: defines them in its private ``ag2._telemetry_consts``; the eval trace reader matches on them too.
SPAN_TYPE_ATTR = "ag2.span.type"
SPAN_TYPE_AGENT = "agent"  # invoke_agent <name>
SPAN_TYPE_LLM = "llm"  # chat <model>
SPAN_TYPE_TOOL = "tool"  # execute_tool <tool>
SPAN_TYPE_USAGE = "usage"  # record_usage <kind>


def turn_model_config(context: Any) -> Any:
    """The ``ModelConfig`` the current turn runs with, or ``None``.

    No public accessor: AG2 puts the turn's config (the agent's, or the one given to ``ask``) into
    ``context.dependencies`` under ``ag2.utils.MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY``, which its own
    ``MetricsMiddleware`` reads the same way.
    """
    deps = getattr(context, "dependencies", None)
    return deps.get(_model_config_key()) if deps else None


@functools.cache
def _model_config_key() -> str:
    from ag2.utils import MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY

    return MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY


def hook_span(span_type: str) -> Any:
    """The span AG2's ``TelemetryMiddleware`` opened for the hook now running, or ``None``.

    AG2 makes its span current while the middleware inside it run (not documented: the middleware
    could equally open spans without making them current). This reads the current span and checks
    that it is AG2's span for this hook — by the name AG2 gives it, ``{operation} {target}`` after the
    GenAI semantic conventions (``chat offline-1``) — so a span some other middleware opened in between
    is never annotated by mistake; then nothing is annotated. (The name, not the
    :data:`SPAN_TYPE_ATTR` attribute: reading a live span's attributes costs several times more.)
    """
    span = _trace.get_current_span()
    if not span.is_recording():
        return None
    name = getattr(span, "name", None)  # an SDK span; the API's non-recording span has none
    operation = _OPERATION_OF[span_type]
    if not name or not name.startswith(operation) or name[len(operation) : len(operation) + 1] not in ("", " "):
        return None
    return span


#: The GenAI operation that names AG2's span of each span type.
_OPERATION_OF = {
    SPAN_TYPE_AGENT: "invoke_agent",
    SPAN_TYPE_LLM: "chat",
    SPAN_TYPE_TOOL: "execute_tool",
    SPAN_TYPE_USAGE: "record_usage",
}


# ==================================================================================================
# SLOs (agentops.slo)
# ==================================================================================================


@functools.cache
def turn_duration_buckets() -> tuple[float, ...]:
    """Bucket bounds (seconds) of AG2's ``ag2_agent_turn_duration_seconds`` histogram, ``+Inf`` left out.

    A latency SLO must count "slower than the threshold" exactly, so its threshold has to be one of
    these bounds. AG2 exposes them neither as a constant nor through its middleware; they are read
    from a ``MetricsMiddleware`` built on a scratch registry (its private metric container), so they
    follow AG2 when it changes them.
    """
    from ag2.middleware.builtin import MetricsMiddleware
    from prometheus_client import CollectorRegistry

    histogram = MetricsMiddleware(CollectorRegistry())._metrics.agent_turn_duration_seconds
    return tuple(float(b) for b in histogram._upper_bounds if b != float("inf"))


# ==================================================================================================
# Per-turn cost (agentops.models): stream subscriptions reuse their call model
# ==================================================================================================
#
# No public alternative: every ``ask`` subscribes fresh closures to its stream (the LLM callback, the
# human-input hook, the tool executor and one subscriber per tool), and ``Stream.subscribe`` builds a
# fast_depends call model for each — a new pydantic model class per closure, about 60 % of an offline
# turn's CPU. The closures of one ``def`` share a signature, so the model built for the first one fits
# every later one with only the callable swapped. Second, the ``Context`` parameter's resolver
# (``ContextField.use``) is a plain function, which fast_depends runs in a worker thread on every
# event; the cached models resolve it inline (it only copies the context into the call's arguments).
# Relied on: ``ag2.stream`` looks ``build_model`` up as a module global when it subscribes; a
# ``CallModel`` is fully described by its slots; ``ContextField.use`` is pure.


def _subscription_target(func: Any) -> Any:
    """The plain function whose code identifies ``func`` (a function or a bound method), else None."""
    import types

    if isinstance(func, types.MethodType) and type(func.__func__) is types.FunctionType:
        return func.__func__
    if type(func) is types.FunctionType:
        return func
    return None


class _CallModelCache:
    """``ag2.stream.build_model`` with one template call model per function code object.

    A cached template is reused only when the new function's defaults are the same objects and its
    annotations compare equal (what fast_depends derives the model from); anything else — a callable
    object, a ``functools.partial``, a fast_depends-wrapped call — is built as before. Thread-safe: a
    race at worst builds one template twice.
    """

    def __init__(self, build: Any) -> None:
        self.build = build
        self._templates: dict[tuple[Any, ...], tuple[tuple[Any, Any, Any], Any]] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, func: Any, *, sync_to_thread: bool = True, serialize_result: bool = True) -> Any:
        target = _subscription_target(func)
        if target is None or hasattr(func, "_fastdepends_call_"):
            return self.build(func, sync_to_thread=sync_to_thread, serialize_result=serialize_result)
        key = (target.__code__, type(func), sync_to_thread, serialize_result)
        shape = (target.__defaults__, target.__kwdefaults__, target.__annotations__)
        cached = self._templates.get(key)
        if cached is not None and _same_shape(cached[0], shape):
            self.hits += 1
            return _with_call(cached[1], _async_call(func, sync_to_thread))
        self.misses += 1
        model = self.build(func, sync_to_thread=sync_to_thread, serialize_result=serialize_result)
        model.custom_fields = {name: _inline_context(field) for name, field in model.custom_fields.items()}
        self._templates[key] = (shape, _with_call(model, None))  # the template keeps no closure alive
        return model


def _same_shape(old: tuple[Any, Any, Any], new: tuple[Any, Any, Any]) -> bool:
    """Same default objects (positional and keyword) and equal annotations."""
    (d0, k0, a0), (d1, k1, a1) = old, new
    k0, k1 = k0 or {}, k1 or {}
    same_kw = k0.keys() == k1.keys() and all(k0[name] is k1[name] for name in k0)
    return _same_objects(d0 or (), d1 or ()) and same_kw and a0 == a1


def _same_objects(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _with_call(template: Any, call: Any) -> Any:
    """A copy of a fast_depends ``CallModel`` that calls ``call``."""
    model = object.__new__(type(template))
    for slot in type(template).__slots__:
        if hasattr(template, slot):
            setattr(model, slot, getattr(template, slot))
    model.call = call
    return model


def _async_call(func: Any, sync_to_thread: bool) -> Any:
    from ag2.utils import _to_async

    return _to_async(func, sync_to_thread=sync_to_thread)


@functools.cache
def _inline_context_class() -> type:
    from ag2.annotations import ContextField

    class _InlineContextField(ContextField):
        """``ContextField`` whose resolver fast_depends awaits inline instead of sending to a thread."""

        __slots__ = ()

        async def use(self, /, **kwargs: Any) -> dict[str, Any]:
            return ContextField.use(self, **kwargs)

    return _InlineContextField


def _inline_context(field: Any) -> Any:
    from ag2.annotations import ContextField

    if type(field) is not ContextField:
        return field
    inline = object.__new__(_inline_context_class())
    for slot in ("cast", "param_name", "required", "field"):
        setattr(inline, slot, getattr(field, slot))
    return inline


_call_model_cache: _CallModelCache | None = None
_install_lock = threading.Lock()


def reuse_subscription_models() -> _CallModelCache:
    """Make ``Stream.subscribe`` reuse one call model per subscriber function (idempotent).

    Returns the installed cache (its ``hits``/``misses`` say how often a model was reused). Events
    reach subscribers exactly as before; only the per-subscription model building is skipped.
    """
    global _call_model_cache
    if _call_model_cache is not None:  # the per-ask fast path: no lock once installed
        return _call_model_cache
    with _install_lock:
        if _call_model_cache is None:
            import ag2.stream

            _call_model_cache = _CallModelCache(ag2.stream.build_model)
            ag2.stream.build_model = _call_model_cache
        return _call_model_cache
