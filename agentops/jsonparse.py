"""Find the JSON object inside a model's answer — the one extractor every parser in the package uses.

Real models wrap JSON in prose, Markdown code fences or Python-literal quoting, especially when the
server cannot constrain the output (``response_format`` rejected, or a prompt-only request). This
module reads them all the same way: fenced blocks first, then inline objects, each decoded as JSON or,
failing that, as a Python literal (``{'route': 'billing'}``). It has no AG2 dependency, so routers,
judges, structured-output fallbacks and tests share it.

Hand-written because no maintained library extracts *embedded* objects from prose: ``json`` and
``json5`` decode a whole document; ``json-repair`` rewrites text it cannot prove is JSON.

Example:
    >>> json_objects('Sure! ```json\\n{"route": "billing"}\\n``` hope that helps')
    [{'route': 'billing'}]
    >>> first_json_object("The verdict: {'score': 8} (out of 10)")
    {'score': 8}
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from agentops.errors import MalformedOutputError

__all__ = ["first_json_object", "json_objects", "parse_json_as"]

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_MAX_TEXT = 200_000  # longer answers are cut: no model reply worth parsing is this long

T = TypeVar("T")


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the ``}`` closing the ``{`` at ``start`` (quotes respected), or None."""
    depth, quote, esc = 0, "", False
    for j in range(start, len(text)):
        c = text[j]
        if quote:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def _decode_at(chunk: str, i: int, decoder: json.JSONDecoder) -> tuple[Any, int]:
    """The object starting at ``chunk[i]`` (JSON, else a Python literal) and where it ends."""
    try:
        return decoder.raw_decode(chunk, i)
    except ValueError:
        pass
    end = _balanced_end(chunk, i)
    if end is None:
        return None, i + 1
    try:
        obj = ast.literal_eval(chunk[i:end])
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None, i + 1
    return (obj, end) if isinstance(obj, dict) else (None, i + 1)


def json_objects(text: str | None) -> list[dict[str, Any]]:
    """Every JSON (or Python-literal) object in ``text``: fenced blocks first, then inline, in order.

    Objects nested inside a found object are not listed separately. Non-str input gives ``[]``.
    """
    if not isinstance(text, str) or "{" not in text:
        return []
    text = text[:_MAX_TEXT]
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for chunk in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        i = chunk.find("{")
        while i != -1:
            obj, end = _decode_at(chunk, i, decoder)
            if isinstance(obj, dict):
                key = json.dumps(obj, sort_keys=True, default=str)
                if key not in seen:  # a fenced object is also found again inline
                    seen.add(key)
                    found.append(obj)
                i = chunk.find("{", end)
            else:
                i = chunk.find("{", i + 1)
    return found


def first_json_object(text: str | None) -> dict[str, Any]:
    """The first object in ``text``; :class:`MalformedOutputError` (retryable) when there is none."""
    objs = json_objects(text)
    if not objs:
        preview = (text or "").strip().replace("\n", " ")[:80]
        raise MalformedOutputError(f"expected a JSON object in the model's answer, got {preview!r}")
    return objs[0]


def parse_json_as(text: str | None, build: Callable[[dict[str, Any]], T], *, what: str = "the answer") -> T:
    """The first object in ``text`` that ``build`` accepts (e.g. ``Model.model_validate``).

    Every object is tried in order; the error lists why each one was refused.

    Raises:
        MalformedOutputError: no object at all, or none that ``build`` accepts.
    """
    objs = json_objects(text)
    if not objs:
        preview = (text or "").strip().replace("\n", " ")[:80]
        raise MalformedOutputError(f"{what}: no JSON object in the model's answer {preview!r}")
    problems = []
    for obj in objs:
        try:
            return build(obj)
        except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
            problems.append(f"{json.dumps(obj, default=str)[:60]}: {str(exc).splitlines()[0][:120]}")
    raise MalformedOutputError(f"{what}: no JSON object in the answer fits ({'; '.join(problems)})")
