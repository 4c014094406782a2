"""Approvals through AG2's human-in-the-loop seam, and a scripted approver for notebooks and tests.

:func:`request_approval` asks a question the way an AG2 tool asks its human: a one-turn
``ag2.Agent`` whose ``hitl_hook`` is the approver calls ``context.input(question, timeout=...)``
from its turn middleware (no model is called). AG2 then wraps the hook, enforces the timeout
(``HumanInputTimeoutError``) and classifies a hook that raises (``HumanInputError``) exactly as for
any agent, through its public API only.

>>> import asyncio
>>> ask = ApprovalRequest("stage", "release/deploy", "Deploy to production?")
>>> asyncio.run(request_approval(ScriptedApprover(True), ask)).status
'approved'
>>> asyncio.run(request_approval(ScriptedApprover(), ask)).status   # past the script: the default, no
'rejected'
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ag2
from ag2.config import LLMClient, ModelConfig
from ag2.events import ModelMessage, ModelResponse
from ag2.exceptions import HumanInputError, HumanInputTimeoutError
from ag2.middleware import BaseMiddleware, Middleware

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["ApprovalRequest", "ApprovalResult", "Approver", "ScriptedApprover", "request_approval"]


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approver is asked: a question plus the structured facts behind it.

    Attributes:
        kind: ``"stage"`` (a workflow approval stage) or ``"escalation"`` (a human-review handler).
        subject: what is being approved, e.g. ``"code_review/deploy"`` or ``"cost_over"``.
        question: the sentence a human would read.
        details: facts for a programmatic approver (cost, confidence, severity, ...).
    """

    kind: str
    subject: str
    question: str
    details: Mapping[str, Any] = field(default_factory=dict)


Approver = Callable[[ApprovalRequest], "bool | str | Awaitable[bool | str]"]
"""A sync or async callable answering an :class:`ApprovalRequest` with a bool or a yes/no string."""

_YES = frozenset({"y", "yes", "1", "true", "approve", "approved", "ok"})


@dataclass(frozen=True)
class ApprovalResult:
    """The outcome of :func:`request_approval`: ``status`` is approved, rejected, timeout or error."""

    status: Literal["approved", "rejected", "timeout", "error"]
    answer: str = ""
    error: str = ""

    @property
    def approved(self) -> bool:
        """True only for an explicit yes."""
        return self.status == "approved"


def _normalise_answer(answer: Any) -> str:
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    return str(answer).strip()


class _NoModel(ModelConfig):
    """The approval agent's model slot: never called, because the turn middleware answers."""

    provider = "agentops"
    model = "approval"

    def copy(self, **_: Any) -> _NoModel:
        return self

    def create(self) -> LLMClient:
        async def refuse(*_: Any, **__: Any) -> ModelResponse:
            raise RuntimeError("the approval agent never calls a model")

        return refuse  # type: ignore[return-value]


class _AskHuman(BaseMiddleware):
    """Turn middleware: the turn's answer is the human's, asked through the agent's ``hitl_hook``."""

    def __init__(self, event: Any, context: Any, *, question: str, timeout_s: float | None) -> None:
        super().__init__(event, context)
        self.question, self.timeout_s = question, timeout_s

    async def on_turn(self, call_next: Any, event: Any, context: Any) -> ModelResponse:
        answer = await context.input(self.question, timeout=self.timeout_s)
        return ModelResponse(ModelMessage(answer))


async def request_approval(
    approver: Approver,
    request: ApprovalRequest,
    *,
    timeout_s: float | None = None,
) -> ApprovalResult:
    """Ask ``approver`` through AG2's human-in-the-loop machinery and classify the answer.

    Only ``True`` or a yes-word (yes, y, approve, ok, 1) approves.

    Args:
        approver: sync or async callable receiving the :class:`ApprovalRequest`.
        request: what to ask.
        timeout_s: seconds to wait for an answer (``None`` waits forever).

    Returns:
        An :class:`ApprovalResult`; this function never raises for a slow or broken approver.

    Raises:
        ConfigError: ``timeout_s`` is not positive.
    """
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"approval timeout_s must be > 0 or None, got {timeout_s!r}")

    async def hook(event: Any) -> str:
        answer = approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return _normalise_answer(answer)

    asker = ag2.Agent(
        "approval",
        config=_NoModel(),
        hitl_hook=hook,
        middleware=[Middleware(_AskHuman, question=request.question, timeout_s=timeout_s)],
    )
    try:
        reply = await asker.ask(request.subject)
    except HumanInputTimeoutError:
        return ApprovalResult("timeout", error=f"no answer within {timeout_s:g} s")
    except HumanInputError as exc:
        cause = exc.__cause__ or exc
        return ApprovalResult("error", error=f"{type(cause).__name__}: {cause}")
    answer = _normalise_answer(reply.body)
    return ApprovalResult("approved" if answer.lower() in _YES else "rejected", answer)


Answer = bool | str | None


class ScriptedApprover:
    """An approver that answers from a script — for notebooks and tests, never stdin.

    Each answer is ``True``/``False``, a string (``"yes"``, ``"no"``), or ``None`` meaning *never
    answer* (the call waits until the approval times out). Every request is kept in :attr:`asked`.

    A real model can raise more (or fewer) escalations than a script expects, so answers can be tied
    to what is asked instead of to the order of asking: ``by_subject`` answers every request with
    that subject (``"cost_over"``, ``"code_review/deploy"``) and wins over the script. Once the
    script is used up, every further request gets ``default`` — **no** unless you say otherwise,
    so a run never continues past a gate nobody scripted.

    Args:
        *answers: answers in the order requests arrive.
        default: the answer after the script (``False`` by default; ``None`` never answers).
        by_subject: answers by :attr:`ApprovalRequest.subject`, used every time that subject is asked.
    """

    def __init__(
        self, *answers: Answer, default: Answer = False, by_subject: Mapping[str, Answer] | None = None
    ) -> None:
        self._answers = list(answers)
        self._default = default
        self._by_subject = dict(by_subject or {})
        self._lock = threading.Lock()
        self.asked: list[ApprovalRequest] = []
        self.defaulted = 0
        """How many requests were answered with ``default`` because the script was used up."""

    def _next(self, request: ApprovalRequest) -> Answer:
        with self._lock:
            self.asked.append(request)
            if request.subject in self._by_subject:
                return self._by_subject[request.subject]
            if self._answers:
                return self._answers.pop(0)
            self.defaulted += 1
            return self._default

    async def __call__(self, request: ApprovalRequest) -> bool | str:
        answer = self._next(request)
        if answer is None:
            await asyncio.Event().wait()  # never answers: the caller's timeout decides
        return answer  # type: ignore[return-value]

    def frame(self) -> Any:
        """The requests received so far as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            [{"kind": r.kind, "subject": r.subject, "question": r.question} for r in self.asked],
            columns=["kind", "subject", "question"],
        )
