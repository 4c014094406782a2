"""Validation at both ends of a model call: the user's input at the edge, the model's output as a fault.

**Input.** A request that is too large, carries control characters, is not valid UTF-8 or has no visible
text is refused before any model is paid for, with one :class:`InputRejected` naming the problem and
the fix (:func:`check_input`, and :class:`InputGuard` as AG2 middleware on the turn). "Visible text" is
decided by the guardrails normaliser (:func:`agentops.guardrails.normalize`: NFKC, zero-width characters
removed, whitespace folded), not by a second implementation. The text the agent receives is never
rewritten here: a refusal is clear, a silent rewrite is not.

**Output.** An answer with no text and no tool calls, a tool call whose arguments are not a JSON
object (:func:`agentops.toolguard.check_tool_calls`: checked first, so a call cut at the token limit
is named as such, before AG2 would run the tool), one cut at the token limit (finish reason
``length``), a stream that ended without a finish reason, or structured output that does not parse is
not a success: :func:`check_output` raises the matching :class:`~agentops.errors.OutputError`
(retryable, so :class:`~agentops.resilience.RetryPolicy` asks again). Structured output is *repaired*
first when the JSON object can be read honestly from the answer (prose or code fences around it,
single quotes) with the shared extractor :mod:`agentops.jsonparse`; the repaired answer is the
canonical JSON of the validated object.

Example::

    check_input("hello\\x00")       # InputRejected: control character U+0000 at position 5 ...
    agent = ag2.Agent("a", "...", config=model, middleware=[InputGuard(InputLimits(max_chars=4000))])
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from ag2.events import BaseEvent, ModelMessage, ModelRequest, ModelResponse, TextInput
from ag2.middleware import BaseMiddleware
from pydantic import Field

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import (
    EmptyOutputError,
    GuardrailBlocked,
    MalformedOutputError,
    OutputError,
    TruncatedOutputError,
)
from agentops.listeners import GUARDRAIL_FINDING, Listener, checked_listeners, notify
from agentops.usage import keep_served_before

__all__ = ["InputGuard", "InputLimits", "InputRejected", "check_input", "check_output"]

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class InputRejected(GuardrailBlocked):
    """The request was refused at the edge; ``reason`` is a short code, the message says how to fix it.

    Reasons: ``encoding``, ``too_large``, ``too_long``, ``control_characters``, ``bidi_controls``, ``empty``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InputLimits(Spec):
    """What a request may contain.

    Args:
        max_chars: characters after decoding.
        max_bytes: UTF-8 bytes (what the wire and the provider's limits count).
        allowed_controls: control characters that are text (tab, newline, carriage return).
        reject_bidi_controls: refuse bidirectional overrides, which make text read differently from
            what the model receives ("Trojan Source").
    """

    max_chars: int = Field(8_000, ge=1)
    max_bytes: int = Field(32_000, ge=1)
    allowed_controls: str = "\t\n\r"
    reject_bidi_controls: bool = True


def _decode(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputRejected(
                "encoding", f"the request is not valid UTF-8 (byte {exc.start}); send UTF-8 encoded text"
            ) from None
    if not isinstance(data, str):
        raise InputRejected("encoding", f"the request must be text, got {type(data).__name__}")
    return data


def check_input(data: str | bytes, limits: InputLimits | None = None) -> str:
    """Return the request text unchanged if it may be sent to a model, else raise :class:`InputRejected`."""
    limits = limits or InputLimits()
    text = _decode(data)
    try:
        size = len(data) if isinstance(data, bytes) else len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: not text any encoder can send
        raise InputRejected(
            "encoding", f"the request holds an unpaired surrogate at position {exc.start}; send valid Unicode text"
        ) from None
    if size > limits.max_bytes:
        raise InputRejected(
            "too_large", f"the request is {size:,} bytes; the limit is {limits.max_bytes:,} — shorten it or split it"
        )
    if len(text) > limits.max_chars:
        raise InputRejected(
            "too_long",
            f"the request is {len(text):,} characters; the limit is {limits.max_chars:,} — shorten it or split it",
        )
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cc" and ch not in limits.allowed_controls:
            raise InputRejected(
                "control_characters",
                f"control character U+{ord(ch):04X} at position {i}; remove it (only tab and newlines are text)",
            )
        if limits.reject_bidi_controls and ch in _BIDI_CONTROLS:
            raise InputRejected(
                "bidi_controls",
                f"bidirectional override U+{ord(ch):04X} at position {i}; remove it (it hides what the text says)",
            )
    from agentops.guardrails import normalize  # here, not at import: retries and fallback import this module

    if not normalize(text).strip():
        raise InputRejected("empty", "the request has no visible text; send a question or an instruction")
    return text


class InputGuard:
    """AG2 middleware factory: every text part of the turn's request passes :func:`check_input`.

    A refusal is reported to ``listeners`` as ``guardrail.finding`` (``entity_type`` = the reason in
    capitals, ``where="input"``, ``action="block"``) and raised, so the turn never reaches the model.
    """

    def __init__(self, limits: InputLimits | None = None, *, agent: str = "", listeners: Iterable[Listener] = ()):
        self.limits = limits or InputLimits()
        self.agent = agent
        self.listeners = checked_listeners(listeners, "InputGuard")

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _GuardTurn(event, context, guard=self)


class _GuardTurn(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, *, guard: InputGuard) -> None:
        super().__init__(event, context)
        self.guard = guard

    async def on_turn(self, call_next: Any, event: BaseEvent, context: Any) -> ModelResponse:
        if isinstance(event, ModelRequest):
            for part in event.parts:
                if isinstance(part, TextInput):
                    try:
                        check_input(part.content, self.guard.limits)
                    except InputRejected as exc:
                        payload = {"agent": self.guard.agent, "entity_type": exc.reason.upper()}
                        notify(
                            self.guard.listeners, GUARDRAIL_FINDING, {**payload, "where": "input", "action": "block"}
                        )
                        raise
        return await call_next(event, context)


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def check_output(
    response: ModelResponse,
    *,
    require_finish_reason: bool = False,
    schema: type[Any] | None = None,
    allow_truncated: bool = False,
) -> ModelResponse:
    """Return ``response`` if it can be used as an answer (repaired if ``schema`` allows), else raise.

    Every error raised carries the refused answer as ``exc.response``: the provider served it, so its
    usage is booked (:func:`agentops.usage.served_response`).

    Raises:
        MalformedOutputError: a tool call's arguments are not a JSON object (``exc.problems`` names them).
        TruncatedOutputError: finish reason ``length`` (unless ``allow_truncated``: a caller that caps
            replies on purpose), or none at all with ``require_finish_reason``.
        EmptyOutputError: no text and no tool calls.
        MalformedOutputError: ``schema`` (a pydantic model) given and no object in the text validates.
    """
    try:
        return _checked(response, require_finish_reason, schema, allow_truncated)
    except OutputError as exc:
        if getattr(exc, "response", None) is None:
            exc.response = response  # type: ignore[attr-defined]
        raise


def _checked(
    response: ModelResponse, require_finish_reason: bool, schema: type[Any] | None, allow_truncated: bool
) -> ModelResponse:
    text = response.message.content if response.message is not None else None
    calls = list(response.tool_calls.calls) if response.tool_calls is not None else []
    who = response.model or "the model"
    if calls:
        from agentops.toolguard import check_tool_calls

        check_tool_calls(response)
    if response.finish_reason == "length" and not allow_truncated:
        raise TruncatedOutputError(f"the answer from {who!r} stopped at the token limit (finish_reason=length)")
    if require_finish_reason and response.finish_reason is None:
        raise TruncatedOutputError(f"the answer from {who!r} ended without a finish reason (a cut stream)")
    if not calls and not (text or "").strip():
        raise EmptyOutputError(f"the answer from {who!r} has no text and no tool calls")
    if schema is None or calls:
        return response
    from agentops.jsonparse import parse_json_object

    try:
        obj = parse_json_object(text, schema)
    except (MalformedOutputError, EmptyOutputError) as exc:
        raise MalformedOutputError(f"the answer from {who!r} is not a valid {schema.__name__}: {exc}") from None
    canonical = obj.model_dump_json() if hasattr(obj, "model_dump_json") else text
    if canonical == (text or "").strip():
        return response
    metadata = {**response.metadata, "agentops.repaired": True}
    return _with_message(response, ModelMessage(canonical, metadata=metadata))


def _with_message(response: ModelResponse, message: ModelMessage | None, **changes: Any) -> ModelResponse:
    """A copy of ``response`` with another message (AG2 events are not dataclasses: no ``replace``)."""
    fields = {
        "tool_calls": response.tool_calls,
        "usage": response.usage,
        "response_force": response.response_force,
        "files": response.files,
        "model": response.model,
        "provider": response.provider,
        "finish_reason": response.finish_reason,
        "response_id": response.response_id,
    }
    return keep_served_before(response, ModelResponse(message, **{**fields, **changes}))
