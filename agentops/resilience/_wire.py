"""OpenAI chat-completions wire format <-> AG2 events, for the fault server (private).

The server turns a request's ``messages`` into the events an AG2 ``LLMClient`` reads, and the offline
model's ``ModelResponse`` back into a completion (or the chunks of a streamed one), cut at
``max_tokens`` with finish reason ``length`` as a provider would.
"""

from __future__ import annotations

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

from agentops.models import count_tokens


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def to_events(messages: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
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
            result = ToolResult(TextInput(_text_of(msg.get("content"))))
            pending.append(ToolResultEvent(parent_id=call_id, name=names.get(call_id), result=result))
        else:
            raise ValueError(f"unknown message role {role!r}")
    if pending:
        events.append(ToolResultsEvent(pending))
    return system, events


def tool_schemas(tools: list[dict[str, Any]] | None) -> list[Any]:
    out = []
    for t in tools or []:
        fn = (t or {}).get("function") or {}
        if fn.get("name"):
            out.append(SimpleNamespace(function=SimpleNamespace(name=fn["name"])))
    return out


def response_schema(body: dict[str, Any]) -> Any:
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


def completion(response: ModelResponse, body: dict[str, Any], rid: str) -> dict[str, Any]:
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


def chunks(done: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
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
