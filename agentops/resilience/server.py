"""A local OpenAI-compatible HTTP server backed by the offline model, with HTTP-level fault injection.

Every fault the offline model simulates in-process is a Python exception; a real provider fails on the
wire: a 429 with ``Retry-After``, a 502 from a proxy, a reset connection, a first byte that never comes,
a stream cut off mid-answer, a body that is not JSON. This server answers ``POST /v1/chat/completions``
(plain and streamed) from an :class:`~agentops.models.OfflineModel`, so AG2's real OpenAI client path —
the openai SDK, its HTTP client, its retries and timeouts — runs against it offline and in CI.

Faults are drawn per request from a seeded generator keyed on the canonical request and on how many times
that same request was seen, so a run is reproducible and a retried request can succeed. Rates are set per
model route (``routes={"offline-mini": HTTPFaults(...)}``; other models get ``faults``) and can be changed
while serving (:meth:`FaultServer.set_faults`: an outage starts and ends). ``/healthz`` and ``/readyz``
report the server's own health from its recent responses (:mod:`agentops.resilience.health`).

Why a hand-written app: the ASGI plumbing is Starlette's and the serving is uvicorn's; what no library
does is speak OpenAI's chat-completions shape from our offline model and break it on purpose.

Example::

    with FaultServer(OfflineModel(), faults=HTTPFaults(rate_limit=0.1)) as server:
        config = model_config("compatible", "offline-1", base_url=server.base_url)
        reply = await ag2.Agent("a", "Be brief.", config=config).ask("hi")
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ag2.events import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextInput,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResult,
    ToolResultEvent,
    ToolResultsEvent,
)
from pydantic import Field, model_validator

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import ConfigError, MissingDependencyError
from agentops.models import OfflineModel, count_tokens
from agentops.resilience.health import Health, HealthMonitor, HealthRules, health_routes

__all__ = ["FAULT_KINDS", "FaultServer", "HTTPFaults", "build_app"]

FAULT_KINDS = ("rate_limit", "server_error", "reset", "slow", "truncated", "malformed")


class HTTPFaults(Spec):
    """Per-request probabilities of each wire fault (they must sum to ≤ 1).

    Args:
        rate_limit: 429 with a ``Retry-After`` header of ``retry_after_s`` seconds.
        server_error: 500, 502 or 503 (chosen by the same seeded draw).
        reset: the response starts, then the connection is closed mid-body.
        slow: the first byte waits ``slow_s`` seconds (a client read timeout below that fires).
        truncated: a streamed answer stops before its end (no finish reason, no ``[DONE]``);
            a plain answer is cut mid-JSON.
        malformed: 200 with a body that is not JSON.
    """

    rate_limit: float = Field(0.0, ge=0, le=1)
    server_error: float = Field(0.0, ge=0, le=1)
    reset: float = Field(0.0, ge=0, le=1)
    slow: float = Field(0.0, ge=0, le=1)
    truncated: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    retry_after_s: float = Field(0.05, ge=0, le=3600)
    slow_s: float = Field(2.0, ge=0, le=600)

    @model_validator(mode="after")
    def _at_most_one(self) -> HTTPFaults:
        if self.total > 1 + 1e-9:
            raise ValueError(f"fault rates sum to {self.total:.3f}; they must sum to at most 1")
        return self

    @property
    def total(self) -> float:
        """Probability that a request meets some fault."""
        return sum(getattr(self, k) for k in FAULT_KINDS)

    def draw(self, u: float) -> str | None:
        """Map a uniform draw in [0, 1) to a fault kind, or ``None`` for a healthy request."""
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(self, kind)
            if u < edge:
                return kind
        return None

    @classmethod
    def uniform(cls, rate: float, **overrides: Any) -> HTTPFaults:
        """Spread ``rate`` evenly over every fault kind."""
        return cls(**{k: rate / len(FAULT_KINDS) for k in FAULT_KINDS}, **overrides)


# --------------------------------------------------------------------------------------------------
# Wire format <-> AG2 events
# --------------------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _to_events(messages: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
    """OpenAI chat messages -> (system prompts, AG2 conversation events) for the offline client."""
    system: list[str] = []
    events: list[Any] = []
    names: dict[str, str] = {}
    pending: list[ToolResultEvent] = []
    for msg in messages:
        role = msg.get("role")
        if role != "tool" and pending:
            events.append(ToolResultsEvent(pending))
            pending = []
        if role in ("system", "developer"):
            system.append(_text_of(msg.get("content")))
        elif role == "user":
            events.append(ModelRequest([TextInput(_text_of(msg.get("content")))]))
        elif role == "assistant":
            calls = []
            for tc in msg.get("tool_calls") or []:
                fn = tc.get("function") or {}
                names[tc.get("id", "")] = fn.get("name", "")
                calls.append(
                    ToolCallEvent(fn.get("name", ""), id=tc.get("id", ""), arguments=fn.get("arguments", "{}"))
                )
            text = _text_of(msg.get("content"))
            events.append(ModelResponse(ModelMessage(text) if text else None, tool_calls=ToolCallsEvent(calls)))
        elif role == "tool":
            call_id = msg.get("tool_call_id", "")
            result = ToolResult([TextInput(_text_of(msg.get("content")))])
            pending.append(ToolResultEvent(parent_id=call_id, name=names.get(call_id), result=result))
        else:
            raise ValueError(f"unknown message role {role!r}")
    if pending:
        events.append(ToolResultsEvent(pending))
    return system, events


def _tool_schemas(tools: list[dict[str, Any]] | None) -> list[Any]:
    out = []
    for t in tools or []:
        fn = (t or {}).get("function") or {}
        if fn.get("name"):
            out.append(SimpleNamespace(function=SimpleNamespace(name=fn["name"])))
    return out


def _response_schema(body: dict[str, Any]) -> Any:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return SimpleNamespace(json_schema=(fmt.get("json_schema") or {}).get("schema") or {})
    return None


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if not max_tokens or count_tokens(text) <= max_tokens:
        return text, False
    words, kept = text.split(" "), []
    for w in words:
        if count_tokens(" ".join([*kept, w])) > max_tokens:
            break
        kept.append(w)
    return " ".join(kept), True


def _completion(response: ModelResponse, body: dict[str, Any], rid: str) -> dict[str, Any]:
    text = response.message.content if response.message is not None else None
    finish = response.finish_reason or "stop"
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if text is not None:
        text, cut = _truncate(text, max_tokens)
        finish = "length" if cut else finish
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in response.tool_calls.calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    u = response.usage
    completion_tokens = count_tokens(text or "") + sum(
        count_tokens(c.name + c.arguments) for c in response.tool_calls.calls
    )
    usage = {
        "prompt_tokens": int(u.prompt_tokens or 0),
        "completion_tokens": completion_tokens,
        "total_tokens": int(u.prompt_tokens or 0) + completion_tokens,
    }
    return {
        "id": rid,
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model") or response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


def _chunks(done: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A completed answer as the stream of chunks a provider would send."""
    base = {"id": done["id"], "object": "chat.completion.chunk", "created": 0, "model": done["model"]}
    choice, msg = done["choices"][0], done["choices"][0]["message"]
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for word in (msg.get("content") or "").split(" ") if msg.get("content") else []:
        piece = word if len(out) == 1 else " " + word
        out.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    for i, tc in enumerate(msg.get("tool_calls") or []):
        delta = {"tool_calls": [{"index": i, **tc}]}
        out.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if include_usage:
        out.append({**base, "choices": [], "usage": done["usage"]})
    return out


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


@dataclass
class ServerStats:
    """What the server did: requests seen, faults injected by kind, responses by status and by model.

    Every response is also recorded in ``monitor`` (a fault is a failed call), which ``/readyz`` reads.
    """

    requests: int = 0
    faults: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    monitor: HealthMonitor = field(default_factory=lambda: HealthMonitor(HealthRules(window_s=30)), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, fault: str | None, status: int, model: str = "", latency_s: float = 0.0) -> None:
        with self._lock:
            self.requests += 1
            self.faults[fault or "none"] += 1
            self.statuses[status] += 1
            self.models[model] += 1
        self.monitor.record(fault in (None, "slow"), latency_s)


def _error(status: int, message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


class _Completions:
    """The raw ASGI endpoint for ``POST /v1/chat/completions`` (raw, so it can break a connection)."""

    def __init__(
        self, model: OfflineModel, faults: HTTPFaults, seed: int, stats: ServerStats, routes: dict[str, HTTPFaults]
    ) -> None:
        self.model, self.faults, self.seed, self.stats = model, faults, seed, stats
        self.routes = dict(routes)
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def faults_for(self, model: str | None) -> HTTPFaults:
        """The fault rates of a model route (the default rates for a model without its own)."""
        with self._lock:
            return self.routes.get(model or "", self.faults)

    def set_faults(self, faults: HTTPFaults, model: str | None = None) -> None:
        """Change the rates of one model route, or the default rates (``model=None``)."""
        with self._lock:
            if model is None:
                self.faults = faults
            else:
                self.routes[model] = faults

    def _draw(self, body: dict[str, Any]) -> tuple[str | None, random.Random, str]:
        canonical = json.dumps({k: v for k, v in body.items() if k not in ("stream", "stream_options")}, sort_keys=True)
        digest = hashlib.sha256(f"{self.seed}\x00{canonical}".encode()).hexdigest()
        with self._lock:
            self._attempts[digest] += 1
            attempt = self._attempts[digest]
        rng = random.Random(int(hashlib.sha256(f"{digest}:{attempt}".encode()).hexdigest()[:16], 16))
        faults = self.faults_for(body.get("model"))
        return (faults.draw(rng.random()) if faults.total else None), rng, f"chatcmpl-{digest[:12]}-{attempt}"

    async def _answer(self, body: dict[str, Any], rid: str) -> dict[str, Any]:
        system, events = _to_events(body.get("messages") or [])
        client = self.model.create()
        response = await client(
            events,
            SimpleNamespace(prompt=system),
            tools=_tool_schemas(body.get("tools")),
            response_schema=_response_schema(body),
            serializer=None,
        )
        return _completion(response, body, rid)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("the body must be a JSON object with a 'messages' list")
            fault, rng, rid = self._draw(body)
            done = None if fault in ("rate_limit", "server_error") else await self._answer(body, rid)
        except (ValueError, TypeError) as exc:
            self.stats.count("bad_request", 400)
            return await _send(send, 400, _error(400, str(exc), "invalid_request_error"))
        await self._respond(fault, rng, body, done, send)

    async def _respond(self, fault: str | None, rng: random.Random, body: dict[str, Any], done: Any, send: Any) -> None:
        stream, model = bool(body.get("stream")), str(body.get("model") or "")
        faults = self.faults_for(model)

        def count(status: int) -> None:
            self.stats.count(fault, status, model, faults.slow_s if fault == "slow" else 0.0)

        if fault == "rate_limit":
            count(429)
            headers = [(b"retry-after", f"{faults.retry_after_s:g}".encode())]
            return await _send(send, 429, _error(429, "Rate limit reached (injected)", "rate_limit_exceeded"), headers)
        if fault == "server_error":
            status = rng.choice((500, 502, 503))
            count(status)
            return await _send(send, status, _error(status, f"Upstream failure {status} (injected)", "server_error"))
        if fault == "slow":
            await asyncio.sleep(faults.slow_s)
        if fault == "malformed":
            count(200)
            return await _send(send, 200, b'{"id": "chatcmpl-broken", "choices": [{"mess')
        if fault == "reset":
            count(200)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id": "chatcmpl-', "more_body": True})
            raise ConnectionResetError("connection reset (injected)")
        if fault == "truncated" and not stream:
            msg = done["choices"][0]["message"]
            if msg.get("content"):
                words = msg["content"].split(" ")
                msg["content"] = " ".join(words[: max(1, len(words) // 2)])
            done["choices"][0]["finish_reason"] = "length"
        count(200)
        if not stream:
            return await _send(send, 200, json.dumps(done).encode())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = _chunks(done, include_usage)
        if fault == "truncated":
            chunks = chunks[: max(1, (len(chunks) - 1) // 2)]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        for chunk in chunks:
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True}
            )
        tail = b"" if fault == "truncated" else b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), *headers]}
    )
    await send({"type": "http.response.body", "body": body})


def build_app(
    model: OfflineModel | None = None,
    faults: HTTPFaults | None = None,
    *,
    seed: int = 0,
    stats: ServerStats | None = None,
    routes: Mapping[str, HTTPFaults] | None = None,
    health: Callable[[], Health] | None = None,
) -> Any:
    """The Starlette app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /healthz``, ``GET /readyz``.

    ``routes`` gives a model its own fault rates; ``health`` replaces the server's own health check
    (its recent responses) behind ``/healthz`` and ``/readyz``.
    """
    try:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            "the fault server needs starlette: pip install 'ag2-agentops-cookbook[serve]'"
        ) from None
    model = model or OfflineModel(sleep=False)
    stats = stats if stats is not None else ServerStats()
    completions = _Completions(model, faults or HTTPFaults(), seed, stats, dict(routes or {}))

    async def models(request: Any) -> Any:
        return JSONResponse(
            {"object": "list", "data": [{"id": model.model, "object": "model", "owned_by": "agentops"}]}
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            *health_routes(health or stats.monitor.check),
        ]
    )
    app.state.stats = stats
    app.state.completions = completions
    return app


# --------------------------------------------------------------------------------------------------
# Serving on loopback
# --------------------------------------------------------------------------------------------------

_QUIET_LOGS = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        name: {"handlers": ["null"], "propagate": False} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    },
}


class FaultServer:
    """Serve :func:`build_app` on a free loopback port in a background thread; a context manager.

    ``base_url`` (``http://127.0.0.1:<port>/v1``) is what ``model_config("compatible", base_url=...)``
    takes. Start-up waits at most ``start_timeout_s``; leaving the ``with`` block stops the server and
    joins its thread (bounded by ``stop_timeout_s``).
    """

    def __init__(
        self,
        model: OfflineModel | None = None,
        *,
        faults: HTTPFaults | None = None,
        routes: Mapping[str, HTTPFaults] | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ConfigError(f"the fault server listens on loopback only; got host={host!r} (use '127.0.0.1')")
        self.model = model or OfflineModel(sleep=False)
        self.faults = faults or HTTPFaults()
        self.stats = ServerStats()
        self.app = build_app(self.model, self.faults, seed=seed, stats=self.stats, routes=routes)
        self.host, self.port = host, 0
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def set_faults(self, faults: HTTPFaults, model: str | None = None) -> None:
        """Change fault rates while serving: one model's route, or the default (``model=None``)."""
        self.app.state.completions.set_faults(faults, model)
        if model is None:
            self.faults = faults

    def health(self) -> Health:
        """The server's own health, from its recent responses (what ``/readyz`` returns)."""
        return self.stats.monitor.check()

    @property
    def url(self) -> str:
        """The server's root URL (``/healthz`` and ``/readyz`` live here)."""
        if not self.port:
            raise ConfigError("the fault server is not running: use it as `with FaultServer(...) as server:`")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        if not self.port:
            raise ConfigError("the fault server is not running: use it as `with FaultServer(...) as server:`")
        return f"{self.url}/v1"

    def start(self) -> FaultServer:
        """Bind a free port and serve in a background thread; returns once the server accepts requests."""
        import uvicorn

        family = socket.AF_INET6 if self.host == "::1" else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it Nagle's algorithm meets delayed ACKs and every response waits ~40 ms.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1" if self.host == "localhost" else self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=_QUIET_LOGS, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"agentops-fault-server-{self.port}"
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise ConfigError(f"the fault server did not start within {self.start_timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (bounded)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.stop_timeout_s)
        self._server, self._thread, self.port = None, None, 0

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
