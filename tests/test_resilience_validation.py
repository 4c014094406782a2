"""Validation: refusals at the edge (size, controls, encoding, empty) and output faults."""

from __future__ import annotations

import re

import ag2
import pytest
from ag2.events import ModelMessage, ModelResponse, ToolCallEvent, ToolCallsEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agentops.errors import (
    EmptyOutputError,
    GuardrailBlocked,
    MalformedOutputError,
    RefusalError,
    TruncatedOutputError,
    is_retryable,
)
from agentops.listeners import GUARDRAIL_FINDING
from agentops.models import OfflineModel
from agentops.resilience import InputGuard, InputLimits, InputRejected, check_input, check_output


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b"caf\xe9", "encoding", "not valid UTF-8 (byte 3)"),
        ("a\ud800b", "encoding", "unpaired surrogate at position 1"),
        ("x" * 11, "too_long", "11 characters; the limit is 10"),
        ("é" * 9, "too_large", "18 bytes; the limit is 16"),
        ("hi\x00there", "control_characters", "U+0000 at position 2"),
        ("pay \u202eevil", "bidi_controls", "U+202E at position 4"),
        ("\u200b \u200b\n", "empty", "no visible text"),
    ],
)
def test_refusals_name_the_problem_and_the_fix(data, reason, message) -> None:
    with pytest.raises(InputRejected, match=re.escape(message)) as info:
        check_input(data, InputLimits(max_chars=10, max_bytes=16))
    assert info.value.reason == reason and isinstance(info.value, GuardrailBlocked)
    assert isinstance(info.value, RefusalError) and not is_retryable(info.value)


def test_valid_text_is_returned_unchanged() -> None:
    text = "Ｗhere is\tmy order?\r\n  Thanks — Zoë"
    assert check_input(text) is text
    assert check_input(text.encode()) == text
    assert check_input("a\u202eb", InputLimits(reject_bidi_controls=False)) == "a\u202eb"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_any_input_is_accepted_unchanged_or_refused_clearly(data) -> None:
    try:
        out = check_input(data, InputLimits(max_chars=40, max_bytes=80))
    except InputRejected as exc:
        assert exc.reason in {"encoding", "too_large", "too_long", "control_characters", "bidi_controls", "empty"}
        assert str(exc)
    else:
        assert out == (data.decode("utf-8") if isinstance(data, bytes) else data)


async def test_guard_refuses_before_the_model_is_called() -> None:
    seen, model = [], OfflineModel(sleep=False)
    guard = InputGuard(InputLimits(max_chars=20), agent="support", listeners=[lambda k, p: seen.append((k, p))])
    agent = ag2.Agent("support", "Be brief.", config=model, middleware=[guard])
    assert (await agent.ask("short question")).body == "Offline answer to: short question"
    with pytest.raises(InputRejected, match="limit is 20"):
        await agent.ask("a question that is far too long")
    assert model.calls == 1
    assert seen == [
        (GUARDRAIL_FINDING, {"agent": "support", "entity_type": "TOO_LONG", "where": "input", "action": "block"})
    ]


def _response(text=None, finish="stop", calls=()):
    return ModelResponse(
        ModelMessage(text) if text is not None else None,
        tool_calls=ToolCallsEvent(list(calls)),
        finish_reason=finish,
        model="m",
    )


def test_output_faults() -> None:
    with pytest.raises(TruncatedOutputError, match="finish_reason=length"):
        check_output(_response("half an ans", finish="length"))
    with pytest.raises(TruncatedOutputError, match="without a finish reason"):
        check_output(_response("cut", finish=None), require_finish_reason=True)
    assert check_output(_response("fine", finish=None)).message.content == "fine"
    with pytest.raises(EmptyOutputError, match="no text and no tool calls"):
        check_output(_response("   "))
    call = ToolCallEvent("lookup", id="call_1", arguments="{}")
    assert check_output(_response(None, finish="tool_calls", calls=[call])).tool_calls.calls == [call]


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_is_repaired_or_refused() -> None:
    good = '{"score":3,"reason":"ok"}'
    same = _response(good)
    assert check_output(same, schema=Verdict) is same
    repaired = check_output(_response("Here you go:\n```json\n{'score': 3, 'reason': 'ok'}\n```"), schema=Verdict)
    assert repaired.message.content == good and repaired.metadata == {"agentops.repaired": True}
    assert repaired.finish_reason == "stop" and repaired.model == "m"
    with pytest.raises(MalformedOutputError, match="not a valid Verdict"):
        check_output(_response('{"score": "high"}'), schema=Verdict)
    with pytest.raises(MalformedOutputError):
        check_output(_response("no json at all"), schema=Verdict)


def test_check_output_refuses_tool_arguments_that_are_not_a_json_object_before_the_length_check():
    from agentops.errors import is_retryable

    cut = ModelResponse(
        tool_calls=ToolCallsEvent([ToolCallEvent("get_weather", id="c1", arguments='{"city": "Lis')]),
        model="smol",
        finish_reason="length",
    )
    with pytest.raises(MalformedOutputError, match=r"'smol' called tool 'get_weather'.*raise max_tokens") as info:
        check_output(cut)
    assert is_retryable(info.value) and info.value.response is cut
    whole = ModelResponse(
        tool_calls=ToolCallsEvent([ToolCallEvent("get_weather", id="c2", arguments='{"city": "Lisbon"}')]),
        finish_reason="tool_calls",
    )
    assert check_output(whole) is whole


def test_importing_resilience_does_not_import_the_guardrails() -> None:
    """The retry policy, the fallback chain and the breakers load without the guardrails catalogue
    (0.3-0.65 s in a notebook kernel); only check_input, which needs its normaliser, loads it."""
    import subprocess
    import sys

    code = (
        "import sys, agentops.resilience as r\n"
        "import agentops.resilience.retries, agentops.resilience.validation, agentops.resilience.fallback\n"
        "import agentops.resilience.breaker, agentops.resilience.idempotency, agentops.resilience.health\n"
        "assert 'agentops.guardrails' not in sys.modules, sorted(m for m in sys.modules if 'guardrails' in m)\n"
        "assert r.RetryPolicy.__name__ == 'RetryPolicy' and 'agentops.guardrails' not in sys.modules\n"
        "assert r.check_input('hello') == 'hello' and 'agentops.guardrails' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
