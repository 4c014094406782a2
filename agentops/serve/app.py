"""Turn an ``ag2.Agent`` (with its middleware) into an ASGI service: REST, A2A, health and metrics.

:func:`build_app` returns a Starlette app with

- ``POST /v1/ask`` — ``{"prompt": "...", "conversation_id": "..."}`` → ``{"answer": ..., "version": ...}``;
  validated (JSON object, prompt length, body size) and guarded by API key and per-key rate limit;
  with a ``queue`` (:mod:`agentops.serve.queue`) bursts wait for a slot by priority, bounded;
- ``/a2a`` — AG2's own :class:`ag2.a2a.A2AServer` (JSON-RPC), with a card whose skills carry tags; its
  card is public, its RPC endpoint needs the same API key (``A2AConfig(headers={"X-API-Key": ...})``);
- ``GET /healthz`` (liveness only: the process answers) and ``GET /readyz`` (readiness: not ready while
  draining, when a dependency is down — the rate-limit or queue storage does not answer a ping — or
  when chapter 07's :class:`~agentops.resilience.HealthMonitor` says ``unhealthy``: every circuit open,
  most recent model calls failing; the body lists the reasons), and ``GET /metrics`` (Prometheus text).

Graceful shutdown: :meth:`AgentService.drain` refuses new work with 503, lets in-flight requests finish
for ``grace_s`` and cancels the rest, which answer 503 ``{"error": "cancelled"}``. Cancelling a turn
cancels its model call, so a :class:`~agentops.budgets.BudgetMiddleware` releases its reservation.
:func:`agentops.serve.server.serve` runs the drain before uvicorn closes connections.

Why hand-written: Starlette routes requests, uvicorn serves them, ``limits`` counts, prometheus_client
exports, ``ag2.a2a`` speaks A2A; what is left is wiring them around one agent with clear refusals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, ConfigError, MissingDependencyError, ProviderError, RefusalError
from agentops.serve.auth import KeyStore, RateLimit
from agentops.serve.queue import QueueFull

__all__ = ["AgentService", "build_app", "default_skills"]

log = logging.getLogger("agentops.serve")

Pick = Callable[[str], tuple[str, Any]]
"""Chooses ``(version, agent)`` for a conversation id (see :mod:`agentops.serve.canary`)."""


def default_skills(agent: Any, tags: Sequence[str] = ("agentops",)) -> list[Any]:
    """One A2A skill describing ``agent``, with tags (a card without tags is not spec-compliant)."""
    from a2a.types import AgentSkill

    raw = getattr(agent, "_system_prompt", "") or ""
    prompt = " ".join(" ".join(map(str, raw)) if isinstance(raw, (list, tuple)) else str(raw)).split()[:40]
    prompt = " ".join(prompt)[:200]
    return [
        AgentSkill(
            id=agent.name,
            name=agent.name,
            description=prompt or f"Ask the {agent.name} agent.",
            tags=list(tags),
            examples=[],
        )
    ]


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status, headers=headers)


def _presented_key(headers: Any) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


class AgentService:
    """The state behind one app: keys, limits, metrics, in-flight turns and the drain switch.

    Args:
        agent: the ``ag2.Agent`` served (its middleware runs on every request).
        keys: API keys (:class:`KeyStore`); every REST and A2A RPC request must present one.
        url: the public base URL (goes into the A2A card), e.g. ``http://127.0.0.1:8080``.
        rate_limit: per-key limit (:class:`RateLimit`), shared through Redis across replicas.
        pick: optional ``conversation_id -> (version, agent)`` router (canary rollouts).
        version: version label reported for ``agent`` when there is no router.
        max_body_bytes / max_prompt_chars: request size limits (413 / 422 above them).
        ask_timeout_s: a turn taking longer is cancelled and answered 504.
        ready: extra readiness check returning ``(ok, detail)``.
        health: a :class:`~agentops.resilience.HealthMonitor` (default: the one in the agent's
            middleware, if any) or a callable returning a :class:`~agentops.resilience.Health`.
        breakers: :class:`~agentops.resilience.Breakers` whose states feed the health verdict.
        queue: an :class:`~agentops.serve.queue.AdmissionQueue` bounding concurrent turns (bursts wait
            by priority, a full line answers 503 with ``Retry-After``).
        priorities: key name → queue priority (default ``normal``); a request may lower its own with
            the ``X-Priority`` header, never raise it.
        skills: A2A skills for the card (default: one skill with tags from the agent).
    """

    def __init__(
        self,
        agent: Any,
        *,
        keys: KeyStore,
        url: str,
        rate_limit: RateLimit | None = None,
        pick: Pick | None = None,
        version: str = "v1",
        max_body_bytes: int = 16_384,
        max_prompt_chars: int = 4_000,
        ask_timeout_s: float = 60.0,
        ready: Callable[[], tuple[bool, str]] | None = None,
        skills: Sequence[Any] | None = None,
        health: Any = None,
        breakers: Any = None,
        queue: Any = None,
        priorities: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(keys, KeyStore):
            raise ConfigError("keys must be a KeyStore: KeyStore.from_env() or KeyStore({'name': 'key'})")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must be the service's http(s) base URL, got {url!r}")
        for name, value in (("max_body_bytes", max_body_bytes), ("max_prompt_chars", max_prompt_chars)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number ≥ 1, got {value!r}")
        self.agent, self.keys, self.url = agent, keys, url.rstrip("/")
        self.rate_limit, self.pick, self.version = rate_limit, pick, version
        self.max_body_bytes, self.max_prompt_chars = max_body_bytes, max_prompt_chars
        self.ask_timeout_s, self._ready, self.skills = ask_timeout_s, ready, skills
        self.health = health if health is not None else _find_monitor(agent)
        self.breakers, self.queue = breakers, queue
        self.priorities = dict(priorities or {})
        for priority in self.priorities.values():
            if queue is None:
                raise ConfigError("priorities need a queue: pass queue=AdmissionQueue(...)")
            queue.check_priority(priority)
        self.draining = False
        self.inflight: set[asyncio.Task[Any]] = set()
        self._cancelled: set[asyncio.Task[Any]] = set()
        self.metrics = _Metrics()

    # -- checks ----------------------------------------------------------------------------------
    def authorize(self, headers: Any, route: str) -> tuple[str | None, Any]:
        """``(key name, None)`` when the request may pass, else ``(None, refusal response)``."""
        presented = _presented_key(headers)
        if presented is None:
            self.metrics.refused(route, "missing_key")
            body = {"error": "missing_api_key", "detail": "send the key as 'Authorization: Bearer <key>' or X-API-Key"}
            return None, _json(body, 401, {"WWW-Authenticate": "Bearer"})
        name = self.keys.identify(presented)
        if name is None:
            self.metrics.refused(route, "invalid_key")
            return None, _json({"error": "invalid_api_key", "detail": "the API key is not recognised"}, 403)
        if self.rate_limit is not None:
            decision = self.rate_limit.hit(name)
            if not decision.allowed:
                self.metrics.refused(route, "rate_limited")
                wait = max(0, int(decision.reset_at - time.time()) + 1)
                body = {"error": "rate_limited", "detail": f"key {name!r} is over {self.rate_limit.rate}"}
                return None, _json(body, 429, {"Retry-After": str(wait)})
        return name, None

    def readiness(self) -> tuple[bool, str]:
        """``(ready, detail)``; :meth:`readiness_report` has the reasons and the health verdict."""
        report = self.readiness_report()
        return report["ready"], report["detail"]

    def readiness_report(self) -> dict[str, Any]:
        """``{"ready", "detail", "reasons", "health"}``: draining, dependencies down, health unhealthy."""
        reasons: list[str] = []
        if self.draining:
            reasons.append("draining: shutting down")
        for name, store in (("rate-limit storage", self._limit_storage()), ("queue storage", self.queue)):
            if store is not None and not _pings(store):
                reasons.append(f"dependency down: {name} unreachable")
        verdict = self._health_verdict()
        if verdict is not None and not verdict.ready:
            reasons.extend(verdict.reasons or ("health: unhealthy",))
        if not reasons and self._ready is not None:
            ok, detail = self._ready()
            if not ok:
                reasons.append(detail)
        detail = "; ".join(reasons) if reasons else "ok"
        health = verdict.to_dict() if verdict is not None else None
        return {"ready": not reasons, "detail": detail, "reasons": reasons, "health": health}

    def _limit_storage(self) -> Any:
        return self.rate_limit.storage if self.rate_limit is not None else None

    def _health_verdict(self) -> Any:
        if self.health is None:
            return None
        states = _breaker_states(self.breakers)
        check = getattr(self.health, "check", None)
        try:
            return check(states) if check is not None else self.health()
        except Exception as exc:  # a broken check must not crash the probe; it makes the replica unready
            from agentops.resilience import Health

            reason = f"health check failed: {type(exc).__name__}"
            return Health("unhealthy", (reason,), True, False, 0, None, None, None, states)

    # -- turns -----------------------------------------------------------------------------------
    def priority_for(self, who: str | None, asked: str | None = None) -> str:
        """The key's priority (``priorities``, default ``normal``); a request may ask for a *lower* one."""
        own = self.priorities.get(who or "", "normal")
        if self.queue is None or not asked or asked not in self.queue.aging:
            return own
        return asked if self.queue.aging[asked] >= self.queue.aging.get(own, 0) else own

    async def _turn(self, agent: Any, prompt: str, priority: str) -> Any:
        if self.queue is None:
            return await agent.ask(prompt)
        async with self.queue.slot(priority):
            return await agent.ask(prompt)

    async def ask(self, prompt: str, conversation_id: str, priority: str = "normal") -> tuple[int, dict[str, Any]]:
        """Run one turn (after the admission queue, if any); ``(status, body)`` with a clear error body
        on refusal, overload (503 with ``retry_after_s``), failure or cancel."""
        version, agent = self.pick(conversation_id) if self.pick else (self.version, self.agent)
        task = asyncio.ensure_future(self._turn(agent, prompt, priority))
        self.inflight.add(task)
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), self.ask_timeout_s)
            return 200, {"answer": reply.body or "", "version": version, "conversation_id": conversation_id}
        except asyncio.TimeoutError:
            task.cancel()
            return 504, {"error": "timeout", "detail": f"no answer within {self.ask_timeout_s:g} s"}
        except asyncio.CancelledError:
            if task in self._cancelled:
                return 503, {"error": "cancelled", "detail": "the server is shutting down; retry on another replica"}
            task.cancel()
            raise
        except QueueFull as exc:
            self.metrics.refused("/v1/ask", "overloaded")
            body = {"error": "overloaded", "detail": str(exc), "retry_after_s": exc.retry_after_s}
            return 503, body
        except RefusalError as exc:
            return 429, {"error": "refused", "kind": type(exc).__name__, "detail": str(exc)}
        except ProviderError as exc:
            return 502, {"error": "provider_error", "kind": type(exc).__name__, "retryable": bool(exc.retryable)}
        except AgentOpsError as exc:
            return 400, {"error": "bad_request", "kind": type(exc).__name__, "detail": str(exc)}
        except Exception as exc:  # an unexpected failure still gets a JSON body a client can read
            log.error("turn failed: %s", type(exc).__name__, exc_info=exc)
            return 500, {"error": "internal_error", "kind": type(exc).__name__}
        finally:
            self.inflight.discard(task)

    async def drain(self, grace_s: float = 5.0) -> dict[str, int]:
        """Refuse new work, wait up to ``grace_s`` for in-flight turns, cancel the rest.

        Returns ``{"finished": n, "cancelled": m}`` (turns in flight when the drain started).
        """
        self.draining = True
        pending = set(self.inflight)
        if not pending:
            return {"finished": 0, "cancelled": 0}
        _done, late = await asyncio.wait(pending, timeout=grace_s)
        for task in late:
            self._cancelled.add(task)
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
            await asyncio.sleep(0)  # let the handlers answer 503 before connections close
        return {"finished": len(pending) - len(late), "cancelled": len(late)}


def _find_monitor(agent: Any) -> Any:
    """The :class:`~agentops.resilience.HealthMonitor` among the agent's middleware, if any."""
    health = sys.modules.get("agentops.resilience.health")
    if health is None:  # not imported: no monitor can exist (and importing it costs the guardrails)
        return None
    HealthMonitor = health.HealthMonitor

    for item in getattr(agent, "_middleware", None) or ():
        for candidate in (item, getattr(item, "factory", None)):
            if isinstance(candidate, HealthMonitor):
                return candidate
    return None


def _breaker_states(breakers: Any) -> dict[str, str]:
    if breakers is None:
        return {}
    states = breakers.states() if hasattr(breakers, "states") else breakers()
    return dict(states)


def _pings(store: Any) -> bool:
    """Whether a storage answers (``limits`` storages have ``check()``, the queue has ``ping()``)."""
    probe = getattr(store, "check", None) or getattr(store, "ping", None)
    try:
        return bool(probe()) if probe is not None else True
    except Exception:
        return False


class _Metrics:
    """Prometheus metrics of one service, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "agentops_serve_requests", "Requests by route and status", ["route", "status"], registry=self.registry
        )
        self.refusals = Counter(
            "agentops_serve_refusals", "Refused requests by reason", ["route", "reason"], registry=self.registry
        )
        self.latency = Histogram("agentops_serve_request_seconds", "Request latency", ["route"], registry=self.registry)
        self.in_flight = Gauge("agentops_serve_in_flight", "Turns in flight", registry=self.registry)

    def refused(self, route: str, reason: str) -> None:
        self.refusals.labels(route, reason).inc()

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


async def _read_body(request: Any, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _validate(svc: AgentService, raw: bytes) -> tuple[str, str] | dict[str, Any]:
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        return {"error": "invalid_json", "detail": "the body must be a JSON object"}
    if not isinstance(data, dict):
        return {"error": "invalid_request", "detail": "the body must be a JSON object with a 'prompt'"}
    extra = sorted(set(data) - {"prompt", "conversation_id"})
    if extra:
        return {"error": "invalid_request", "detail": f"unknown field(s) {extra}; allowed: prompt, conversation_id"}
    prompt, conv = data.get("prompt"), data.get("conversation_id", "")
    if not isinstance(prompt, str) or not prompt.strip():
        return {"error": "invalid_request", "detail": "'prompt' must be a non-empty string"}
    if len(prompt) > svc.max_prompt_chars:
        return {"error": "prompt_too_long", "detail": f"'prompt' is over {svc.max_prompt_chars} characters"}
    if not isinstance(conv, str) or len(conv) > 128:
        return {"error": "invalid_request", "detail": "'conversation_id' must be a string of ≤ 128 characters"}
    return prompt, conv


def _routes(svc: AgentService) -> list[Any]:
    from starlette.responses import Response
    from starlette.routing import Route

    async def ask(request: Any) -> Any:
        start = time.perf_counter()
        status, response = await _ask(request)
        svc.metrics.observe("/v1/ask", status, time.perf_counter() - start)
        return response

    async def _ask(request: Any) -> tuple[int, Any]:
        if svc.draining:
            return 503, _json({"error": "shutting_down", "detail": "retry on another replica"}, 503)
        who, refusal = svc.authorize(request.headers, "/v1/ask")
        if refusal is not None:
            return refusal.status_code, refusal
        raw = await _read_body(request, svc.max_body_bytes)
        if raw is None:
            return 413, _json(
                {"error": "body_too_large", "detail": f"the body is over {svc.max_body_bytes} bytes"}, 413
            )
        parsed = _validate(svc, raw)
        if isinstance(parsed, dict):
            return 422, _json(parsed, 422)
        prompt, conv = parsed
        svc.metrics.in_flight.inc()
        try:
            priority = svc.priority_for(who, request.headers.get("x-priority"))
            status, body = await svc.ask(prompt, conv or who or "", priority)
        finally:
            svc.metrics.in_flight.dec()
        retry = {"Retry-After": str(body["retry_after_s"])} if "retry_after_s" in body else None
        return status, _json(body, status, retry)

    async def healthz(request: Any) -> Any:  # liveness only: never looks at dependencies
        return _json({"status": "ok"})

    async def readyz(request: Any) -> Any:
        report = await asyncio.to_thread(svc.readiness_report)  # storage pings block
        body = {"status": "ready" if report["ready"] else "not_ready", "detail": report["detail"]}
        if report["health"] is not None:
            body["health"] = report["health"]["status"]
        return _json(body, 200 if report["ready"] else 503)

    async def metrics(request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/v1/ask", ask, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _guarded(svc: AgentService, inner: Any) -> Any:
    """ASGI wrapper: the A2A card is public; every other A2A request needs a key and passes the limit."""
    from starlette.datastructures import Headers

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not (scope["method"] == "GET" and "/.well-known/" in scope["path"]):
            if svc.draining:
                await _json({"error": "shutting_down", "detail": "retry on another replica"}, 503)(scope, receive, send)
                return
            headers = Headers(scope=scope)
            who, refusal = svc.authorize(headers, "/a2a")
            if refusal is not None:
                svc.metrics.observe("/a2a", refusal.status_code, 0.0)
                await refusal(scope, receive, send)
                return
            if svc.queue is not None and scope["method"] == "POST":
                await _queued(svc, svc.priority_for(who, headers.get("x-priority")), inner, scope, receive, send)
                return
        await inner(scope, receive, send)

    return app


async def _queued(svc: AgentService, priority: str, inner: Any, scope: Any, receive: Any, send: Any) -> None:
    """Run an A2A request inside an admission slot; a full line answers 503 with ``Retry-After``."""
    try:
        async with svc.queue.slot(priority):
            await inner(scope, receive, send)
    except QueueFull as exc:
        svc.metrics.refused("/a2a", "overloaded")
        body = {"error": "overloaded", "detail": str(exc), "retry_after_s": exc.retry_after_s}
        await _json(body, 503, {"Retry-After": str(exc.retry_after_s)})(scope, receive, send)


def _a2a_app(svc: AgentService) -> Any:
    try:
        from ag2.a2a import A2AServer, build_card
        from starlette.applications import Starlette  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "the agent service needs the serve extra: pip install 'ag2-agentops[serve]' (a2a-sdk[http-server], uvicorn)"
        ) from exc
    url = svc.url + "/a2a/"
    skills = list(svc.skills) if svc.skills is not None else default_skills(svc.agent)
    card = build_card(svc.agent, url=url, skills=skills, version=svc.version.lstrip("v") or "1.0.0")
    return A2AServer(svc.agent).build_jsonrpc(url=url, card=card, rpc_url="/")


def build_app(agent: Any, **options: Any) -> Any:
    """The ASGI app serving ``agent``: REST ``/v1/ask``, A2A under ``/a2a``, health and metrics.

    ``options`` are :class:`AgentService` arguments (``keys`` and ``url`` are required). The service is
    at ``app.state.service`` (for :meth:`AgentService.drain` and metrics).
    """
    from starlette.applications import Starlette
    from starlette.routing import Mount

    svc = options.pop("service", None) or AgentService(agent, **options)
    app = Starlette(routes=[*_routes(svc), Mount("/a2a", app=_guarded(svc, _a2a_app(svc)))])
    app.state.service = svc
    return app
