"""Resilience: a local OpenAI-compatible server with wire-level faults (and, built on it, retries,
circuit breakers, fallbacks and health checks)."""

from __future__ import annotations

from agentops import _identity  # noqa: F401
from agentops.resilience.server import FAULT_KINDS, FaultServer, HTTPFaults, build_app

__all__ = ["FAULT_KINDS", "FaultServer", "HTTPFaults", "build_app"]
