"""Deploy an AG2 agent as a service: REST + A2A, API keys, per-key limits, health, metrics, canaries.

See :func:`build_app` (the ASGI app), :class:`ServiceThread` (serve it in the background) and
``python -m agentops serve module:factory`` (serve it in the foreground on uvicorn).
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401
from agentops.serve.app import AgentService, build_app, default_skills
from agentops.serve.auth import ENV_KEYS, KeyStore, RateLimit, RateLimitDecision
from agentops.serve.queue import AdmissionQueue, MemoryQueueStore, QueueFull, RedisQueueStore
from agentops.serve.server import ServiceThread, bind

__all__ = [
    "ENV_KEYS",
    "AdmissionQueue",
    "AgentService",
    "KeyStore",
    "MemoryQueueStore",
    "QueueFull",
    "RateLimit",
    "RateLimitDecision",
    "RedisQueueStore",
    "ServiceThread",
    "bind",
    "build_app",
    "default_skills",
]
