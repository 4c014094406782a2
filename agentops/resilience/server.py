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
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pydantic import Field, model_validator

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import ConfigError, MissingDependencyError
from agentops.models import OfflineModel
from agentops.resilience import _wire
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


class _UpstreamFailed(Exception):
    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


class _Upstream:
    """A real OpenAI-compatible provider behind the fault server (the server becomes a fault proxy).

    Requests go through the config's own HTTP client when it has one (``model_config`` gives real
    backends one: compatibility fixes, the test-suite switch, a cassette recording or replaying).
    """

    def __init__(self, config: Any) -> None:
        base_url = getattr(config, "base_url", None) or "https://api.openai.com/v1"
        self.url = str(base_url).rstrip("/") + "/chat/completions"
        self.api_key = getattr(config, "api_key", None)
        timeout = getattr(config, "timeout", None)
        self.timeout = float(timeout) if isinstance(timeout, (int, float)) else 60.0
        self._client: Any = getattr(config, "http_client", None)

    async def complete(self, body: dict[str, Any], rid: str) -> dict[str, Any]:
        import httpx

        if self._client is None:  # created in the server's own event loop
            self._client = httpx.AsyncClient(timeout=self.timeout)
        sent = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        r = await self._client.post(self.url, json=sent, headers=headers)
        if r.status_code != 200:
            kept = [(k.encode(), v.encode()) for k, v in r.headers.items() if k.lower() == "retry-after"]
            raise _UpstreamFailed(r.status_code, r.content, kept)
        done = r.json()
        done["id"] = rid
        return done


def _error(status: int, message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


class _Completions:
    """The raw ASGI endpoint for ``POST /v1/chat/completions`` (raw, so it can break a connection)."""

    def __init__(
        self,
        model: OfflineModel,
        faults: HTTPFaults,
        seed: int,
        stats: ServerStats,
        routes: dict[str, HTTPFaults],
        upstream: _Upstream | None = None,
    ) -> None:
        self.model, self.faults, self.seed, self.stats, self.upstream = model, faults, seed, stats, upstream
        self.routes = dict(routes)
        self.scripted: deque[str | None] = deque()
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def faults_for(self, model: str | None) -> HTTPFaults:
        """The fault rates of a model route (the default rates for a model without its own)."""
        with self._lock:
            return self.routes.get(model or "", self.faults)

    def reset(self) -> None:
        """Forget how often each request was seen (the next run draws the same faults as the first)."""
        with self._lock:
            self._attempts.clear()
            self.scripted.clear()

    def add_script(self, kinds: list[str | None]) -> None:
        """Queue faults for the next requests."""
        with self._lock:
            self.scripted.extend(kinds)

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
        with self._lock:
            if self.scripted:
                return self.scripted.popleft(), rng, f"chatcmpl-{digest[:12]}-{attempt}"
        return (faults.draw(rng.random()) if faults.total else None), rng, f"chatcmpl-{digest[:12]}-{attempt}"

    async def _answer(self, body: dict[str, Any], rid: str) -> dict[str, Any]:
        if self.upstream is not None:
            return await self.upstream.complete(body, rid)
        system, events = _wire.to_events(body.get("messages") or [])
        client = self.model.create()
        response = await client(
            events,
            SimpleNamespace(prompt=system),
            tools=_wire.tool_schemas(body.get("tools")),
            response_schema=_wire.response_schema(body),
            serializer=None,
        )
        return _wire.completion(response, body, rid)

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
        except _UpstreamFailed as exc:  # the real provider's own failure, passed through as it came
            self.stats.count("upstream", exc.status)
            return await _send(send, exc.status, exc.body, exc.headers)
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
        chunks = _wire.chunks(done, include_usage)
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
    upstream: Any = None,
) -> Any:
    """The Starlette app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /healthz``, ``GET /readyz``.

    ``routes`` gives a model its own fault rates; ``health`` replaces the server's own health check
    (its recent responses) behind ``/healthz`` and ``/readyz``; ``upstream`` (an AG2 ``OpenAIConfig``
    of a real provider: its ``base_url`` and ``api_key``) answers instead of the offline model, so the
    server is a fault-injecting proxy in front of a real model.
    """
    try:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            "the fault server needs starlette and uvicorn: pip install starlette uvicorn"
        ) from None
    model = model or OfflineModel(sleep=False)
    stats = stats if stats is not None else ServerStats()
    completions = _Completions(
        model, faults or HTTPFaults(), seed, stats, dict(routes or {}), _Upstream(upstream) if upstream else None
    )

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

    ``base_url`` (``http://127.0.0.1:<port>/v1``) is what an OpenAI-compatible client takes;
    :meth:`config` builds AG2's ``OpenAIConfig`` for it. With ``upstream`` (a real provider's
    ``OpenAIConfig``) requests that draw no fault are forwarded to that provider with its key, so the
    same drill runs against a real model. Start-up waits at most ``start_timeout_s``; leaving the
    ``with`` block stops the server and joins its thread (bounded by ``stop_timeout_s``).
    """

    def __init__(
        self,
        model: OfflineModel | None = None,
        *,
        faults: HTTPFaults | None = None,
        routes: Mapping[str, HTTPFaults] | None = None,
        upstream: Any = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ConfigError(f"the fault server listens on loopback only; got host={host!r} (use '127.0.0.1')")
        self.model = model or OfflineModel(sleep=False)
        self.faults = faults or HTTPFaults()
        self.stats = ServerStats()
        self.app = build_app(self.model, self.faults, seed=seed, stats=self.stats, routes=routes, upstream=upstream)
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be between 0 (a free one) and 65535, got {port}")
        self.host, self.port, self._wanted_port = host, 0, port
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def set_faults(self, faults: HTTPFaults, model: str | None = None) -> None:
        """Change fault rates while serving: one model's route, or the default (``model=None``)."""
        self.app.state.completions.set_faults(faults, model)
        if model is None:
            self.faults = faults

    def config(self, model: str, **options: Any) -> Any:
        """AG2's ``OpenAIConfig`` for ``model`` on this server (``options``: ``timeout``, ``max_retries``,
        ``streaming``, ``http_client``, ...). The key is a placeholder: the server holds the real one."""
        try:
            from ag2.config import OpenAIConfig
            from openai import AsyncOpenAI  # noqa: F401  (ag2's placeholder hides the missing SDK until use)
        except ImportError:
            raise MissingDependencyError(
                "the fault server's clients need the OpenAI SDK: pip install 'ag2[openai]'"
            ) from None
        return OpenAIConfig(model=model, base_url=self.base_url, api_key="fault-server", **options)

    def script(self, kinds: Iterable[str | None]) -> None:
        """The next requests meet these faults, in order (``None`` = answer normally), whatever the rates."""
        kinds = list(kinds)
        unknown = [k for k in kinds if k is not None and k not in FAULT_KINDS]
        if unknown:
            raise ConfigError(f"unknown fault kind(s) {unknown}; choose from {', '.join(FAULT_KINDS)}")
        self.app.state.completions.add_script(kinds)

    def reset(self) -> None:
        """Start afresh: attempt counts (so the same requests draw the same faults again) and statistics."""
        self.app.state.completions.reset()
        self.stats = ServerStats()
        self.app.state.completions.stats = self.stats
        self.app.state.stats = self.stats

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
        try:
            sock.bind(("127.0.0.1" if self.host == "localhost" else self.host, self._wanted_port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on port {self._wanted_port}: {exc}; pick another (0 = any free)"
            ) from None
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

    @property
    def running(self) -> bool:
        """True while the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

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


# --------------------------------------------------------------------------------------------------
# Command line: python -m agentops serve-model
# --------------------------------------------------------------------------------------------------


def register_cli(sub: Any) -> None:
    """Add ``serve-model`` to the ``python -m agentops`` sub-command parser."""
    p = sub.add_parser(
        "serve-model",
        help="serve the offline model as an OpenAI-compatible API on loopback, with injected faults",
        description="Serve the offline model on http://127.0.0.1:PORT/v1 (chat completions, plain and streamed), "
        "with seeded wire faults, until interrupted.",
    )
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0 = any free port; default 8000)")
    p.add_argument("--fault-rate", type=float, default=0.0, help="total fault rate, spread evenly over every kind")
    for kind in FAULT_KINDS:
        p.add_argument(f"--{kind.replace('_', '-')}", type=float, default=None, metavar="P", help=f"rate of {kind}")
    p.add_argument("--retry-after-s", type=float, default=1.0, help="Retry-After sent with a 429")
    p.add_argument("--slow-s", type=float, default=2.0, help="first-byte delay of a slow response")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--scenario",
        choices=("plain", "drill"),
        default="plain",
        help="offline rules: plain answers, or chapter 07's support agent (tickets and FAQ)",
    )
    p.set_defaults(func=_cmd_serve_model)


def _cmd_serve_model(args: Any) -> int:
    rates = {k: getattr(args, k) for k in FAULT_KINDS if getattr(args, k) is not None}
    faults = HTTPFaults.uniform(args.fault_rate, retry_after_s=args.retry_after_s, slow_s=args.slow_s)
    faults = HTTPFaults(**{**faults.model_dump(), **rates})
    if args.scenario == "drill":
        from agentops.resilience.drill import drill_model

        model = drill_model(args.seed)
    else:
        model = OfflineModel(seed=args.seed, sleep=False)
    with FaultServer(model, faults=faults, seed=args.seed, port=args.port) as server:
        print(f"serving the offline model at {server.base_url} (faults {faults.total:.0%}); Ctrl-C stops", flush=True)
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
