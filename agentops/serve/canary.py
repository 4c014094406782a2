"""Versioned releases and canary rollouts: a sticky traffic split, then promote or roll back.

A :class:`Release` names everything that shapes an answer — the system prompt, the model, the workflow
template — under a version label, and its :attr:`~Release.digest` changes whenever any of them does, so
"v2" cannot silently mean two things. :class:`CanaryRouter` sends a fraction ``share`` of conversations
to the candidate: the choice is a hash of ``(salt, conversation_id)``, so a conversation stays on one
version for its whole life and the split needs no shared state between replicas. :func:`decide` turns
chapter 03's eval gate (:func:`agentops.evals.gate`) and chapter 04's SLOs (:class:`agentops.slo.SLO`)
into one decision: promote, roll back, or hold while there is too little canary traffic.

Why hand-written: the split is ten lines of hashing; feature-flag services do this remotely, and the
decision rules are this cookbook's own gate and SLO types.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import ConfigError

__all__ = ["CanaryRouter", "Decision", "Release", "decide", "slo_report"]


class Release(Spec):
    """One version of the service: prompt, model and workflow template, under a label.

    >>> Release(version="v1", system_prompt="Be brief.", model="gpt-4o-mini").digest
    '7724c2f6a2b0'
    """

    version: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    system_prompt: str = Field(min_length=1)
    model: str = Field(min_length=1)
    workflow: str | None = None

    @property
    def digest(self) -> str:
        """12 hex characters over everything but the label: two releases with one label must agree."""
        blob = "\x1f".join((self.system_prompt, self.model, self.workflow or ""))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _unit(salt: str, key: str) -> float:
    h = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


class CanaryRouter:
    """Route conversations between a stable and a candidate release (sticky, seeded by ``salt``).

    Args:
        stable, candidate: ``(Release, agent)`` pairs; the agent is what serves that release.
        share: fraction of conversations sent to the candidate (0 ≤ share ≤ 1).
        salt: changes which conversations land in the canary slice (keep it fixed during a rollout).

    Usable as ``AgentService(pick=router.pick)``: returns ``(version, agent)`` per conversation id.
    """

    def __init__(
        self, stable: tuple[Release, Any], candidate: tuple[Release, Any], *, share: float = 0.1, salt: str = "canary"
    ) -> None:
        for name, pair in (("stable", stable), ("candidate", candidate)):
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], Release)):
                raise ConfigError(f"{name} must be a (Release, agent) pair")
        if stable[0].version == candidate[0].version:
            raise ConfigError(
                f"stable and candidate share the version {stable[0].version!r}: give the candidate a new one"
            )
        self._check_share(share)
        self.stable, self.candidate, self.share, self.salt = stable, candidate, float(share), salt
        self.state: Literal["canary", "promoted", "rolled_back"] = "canary"
        self.served: Counter[str] = Counter()
        self._lock = threading.Lock()

    @staticmethod
    def _check_share(share: float) -> None:
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ConfigError(f"share must be a fraction between 0 and 1 (0.1 = 10 %), got {share!r}")

    def route(self, conversation_id: str) -> Release:
        """The release serving ``conversation_id`` (same answer every time for one id and state)."""
        if not isinstance(conversation_id, str) or not conversation_id:
            raise ConfigError("conversation_id must be a non-empty string (the split is sticky per conversation)")
        if self.state == "promoted":
            return self.candidate[0]
        if self.state == "rolled_back":
            return self.stable[0]
        return self.candidate[0] if _unit(self.salt, conversation_id) < self.share else self.stable[0]

    def pick(self, conversation_id: str) -> tuple[str, Any]:
        """``(version, agent)`` for a conversation; counts what was served."""
        release = self.route(conversation_id)
        agent = self.candidate[1] if release is self.candidate[0] else self.stable[1]
        with self._lock:
            self.served[release.version] += 1
        return release.version, agent

    def set_share(self, share: float) -> None:
        """Widen or narrow the canary slice (conversations already in it stay while share only grows)."""
        self._check_share(share)
        self.share = float(share)

    def apply(self, decision: Decision) -> None:
        """Act on a decision: promote sends everything to the candidate, rollback to the stable release."""
        if decision.action == "promote":
            self.state = "promoted"
        elif decision.action == "rollback":
            self.state = "rolled_back"


@dataclass(frozen=True)
class Decision:
    """``promote``, ``rollback`` or ``hold``, with the reasons (one line each)."""

    action: Literal["promote", "rollback", "hold"]
    reasons: tuple[str, ...]


def slo_report(slo: Any, *, events: int, bad: int) -> Any:
    """Chapter 04's :class:`agentops.slo.SLOReport` for ``events`` of which ``bad`` missed (e.g. canary traffic)."""
    from agentops.slo import SLOReport

    if events < 0 or not 0 <= bad <= max(events, 0):
        raise ConfigError(f"need 0 ≤ bad ≤ events, got events={events}, bad={bad}")
    allowed = events * (1 - slo.target)
    sli = None if events == 0 else 1 - bad / events
    return SLOReport(
        slo=slo.name,
        objective=slo.kind,
        target=slo.target,
        events=events,
        bad=bad,
        sli=sli,
        allowed_bad=allowed,
        budget_remaining=None if events == 0 else 1 - bad / allowed,
        burn_rate=None if events == 0 else (bad / events) / (1 - slo.target),
        met=None if sli is None else sli >= slo.target,
    )


def decide(gate_result: Any, slo_reports: Iterable[Any], *, min_events: int = 20) -> Decision:
    """Promote when the eval gate passed and every SLO is met on at least ``min_events`` canary events.

    Roll back as soon as the gate failed or an SLO with enough events is missed; otherwise hold.
    ``gate_result`` is :func:`agentops.evals.gate`'s result (anything with ``passed`` and ``reasons``).
    """
    reports = list(slo_reports)
    bad: list[str] = []
    if not getattr(gate_result, "passed", bool(gate_result)):
        bad += [f"eval gate failed: {r}" for r in getattr(gate_result, "reasons", ()) or ("regressions",)]
    thin = [r for r in reports if r.events < min_events]
    for r in reports:
        if r.events >= min_events and r.met is False:
            bad.append(f"SLO {r.slo} missed: SLI {r.sli:.3f} < target {r.target:.3f} over {r.events} events")
    if bad:
        return Decision("rollback", tuple(bad))
    if thin:
        return Decision("hold", tuple(f"SLO {r.slo}: {r.events} canary events < {min_events}" for r in thin))
    ok = ["eval gate passed"] + [f"SLO {r.slo} met: SLI {r.sli:.3f} ≥ {r.target:.3f}" for r in reports]
    return Decision("promote", tuple(ok))
