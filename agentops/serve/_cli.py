"""``python -m agentops serve module:factory`` — serve an agent on uvicorn (loopback unless --public).

The factory is called once (with ``redis_url=`` when it accepts it) and must return an ``ag2.Agent``.
API keys come from ``--keys-file`` or ``AGENTOPS_API_KEYS``; they are never printed.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["load_factory", "register_cli"]


def load_factory(target: str) -> Any:
    """Import ``module:attr`` and return the callable (a ConfigError names what is wrong)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"target {target!r} must be module:factory, e.g. agentops.scenarios.deployment:support_agent")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} ({exc}); check the name and PYTHONPATH") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{module_name!r} has no callable {attr!r}; point at a function returning an ag2.Agent")
    return factory


def _agent(factory: Any, redis_url: str | None) -> Any:
    params = inspect.signature(factory).parameters
    agent = factory(redis_url=redis_url) if "redis_url" in params else factory()
    if not hasattr(agent, "ask") or not hasattr(agent, "name"):
        raise ConfigError(f"the factory returned {type(agent).__name__}, not an ag2.Agent")
    return agent


def _queue(args: Any) -> Any:
    """The admission queue (``--queue-capacity`` > 0): Redis-shared when ``--redis-url`` is given."""
    if not args.queue_capacity:
        return None
    from agentops.serve.queue import AdmissionQueue, RedisQueueStore

    store = None
    if args.redis_url:
        from redis import Redis

        store = RedisQueueStore(Redis.from_url(args.redis_url), namespace=args.queue_namespace)
    return AdmissionQueue(
        store, capacity=args.queue_capacity, max_waiting=args.queue_waiting, max_wait_s=args.queue_wait_s
    )


def _run(args: Any) -> int:
    from agentops.serve.app import build_app
    from agentops.serve.auth import KeyStore, RateLimit
    from agentops.serve.server import run_forever

    keys = KeyStore.from_file(args.keys_file) if args.keys_file else KeyStore.from_env()
    storage = args.redis_url or "memory://"
    limit = RateLimit(args.rate, storage_url=storage) if args.rate else None
    agent = _agent(load_factory(args.target), args.redis_url)
    queue = _queue(args)
    if args.check:
        print(f"ok: {agent.name} with {len(keys.names)} key(s), limit {args.rate or 'none'}")
        return 0

    def make_app(url: str) -> Any:
        return build_app(agent, keys=keys, url=url, rate_limit=limit, version=args.version, queue=queue)

    drained = run_forever(make_app, host=args.host, port=args.port, grace_s=args.grace_s, allow_public=args.public)
    print(f"stopped; drained {drained or {'finished': 0, 'cancelled': 0}}", flush=True)
    return 0


def register_cli(sub: Any) -> None:
    """Add ``serve`` to the ``python -m agentops`` sub-command parser."""
    p = sub.add_parser(
        "serve",
        help="serve an agent (REST /v1/ask + A2A + health + metrics) on uvicorn",
        description="Serve the ag2.Agent returned by module:factory until SIGINT/SIGTERM, then drain.",
    )
    p.add_argument(
        "target", help="module:factory returning an ag2.Agent (e.g. agentops.scenarios.deployment:support_agent)"
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    p.add_argument("--port", type=int, default=8080, help="port (0 = any free port; default 8080)")
    p.add_argument("--public", action="store_true", help="allow a non-loopback --host (e.g. 0.0.0.0 in a container)")
    p.add_argument("--keys-file", default=None, help="file of name=key lines (default: AGENTOPS_API_KEYS)")
    p.add_argument("--rate", default="60/minute", help="per-key rate limit ('' for none; default 60/minute)")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("AGENTOPS_SERVE_REDIS_URL"),
        help="Redis shared by replicas: rate limits, budgets (default: AGENTOPS_SERVE_REDIS_URL)",
    )
    p.add_argument("--grace-s", type=float, default=10.0, help="seconds in-flight requests get on shutdown")
    p.add_argument("--queue-capacity", type=int, default=0, help="turns at once, across replicas (0 = no queue)")
    p.add_argument("--queue-waiting", type=int, default=32, help="requests that may wait; more get 503")
    p.add_argument("--queue-wait-s", type=float, default=30.0, help="longest wait for a slot before 503")
    p.add_argument(
        "--queue-namespace",
        default=os.environ.get("AGENTOPS_SERVE_QUEUE", "agentops-serve-queue"),
        help="Redis key prefix replicas of one service share (default: AGENTOPS_SERVE_QUEUE)",
    )
    p.add_argument("--version", default="v1", help="version label reported in answers and the A2A card")
    p.add_argument("--check", action="store_true", help="load keys and the agent, print a summary, exit")
    p.set_defaults(func=_run)
