"""Find the JSON object in a model's prose: one extractor for routers, judges and planners.

Models asked for JSON answer with prose around it, Markdown code fences, single-quoted
(Python-literal) objects or a truncated tail. :func:`find_json_objects` returns every object it can
read honestly, fenced ones first; :func:`parse_json_object` returns the first one (optionally the
first that validates against a pydantic model) or raises a clear error.

>>> find_json_objects('Sure! ```json\\n{"route": "billing"}\\n``` and {\\'score\\': 8}')
[{'route': 'billing'}, {'score': 8}]
>>> parse_json_object("no json here")
Traceback (most recent call last):
...
agentops.errors.MalformedOutputError: no JSON object in the answer: 'no json here'

Why hand-written: ``json.JSONDecoder.raw_decode`` decodes from a known start, and trying it at every
``{`` is quadratic on hostile text (a reply of 100k ``{``); repair libraries rewrite the text and can
invent values a judge never gave. Here one linear pass pairs braces (ignoring braces inside quoted
strings), then only balanced spans are decoded, outermost first; a span that fails to decode lets its
children be tried, down to three failed ancestors, so no character is decoded more than four times.
If an unbalanced quote inside braces swallowed everything, the pass is repeated treating only double
quotes, then no quotes, as strings — at most three linear passes.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentops.errors import ConfigError, EmptyOutputError, MalformedOutputError

__all__ = ["CUT_OFF_HINT", "cut_off", "find_json_objects", "parse_json_object", "unfence"]

M = TypeVar("M", bound=BaseModel)

# What a JSON answer that opens an object and never closes it most likely means, and the fix
CUT_OFF_HINT = "cut off before its end (the model likely ran out of max_tokens: raise max_tokens)"
_MAX_FAILED_ANCESTORS = 3
_QUOTE_MODES = ("\"'", '"', "")
_LANGUAGE_TAG = re.compile(r"[A-Za-z0-9_+.-]*")


def find_json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON (or Python-literal) object in ``text``, those inside code fences first.

    Objects nested in an object that decoded are part of it, not listed again. Runs in linear time.

    >>> find_json_objects('a {"x": {"y": 1}} b {broken} c {"z": 2}')
    [{'x': {'y': 1}}, {'z': 2}]
    """
    if not isinstance(text, str) or "{" not in text:
        return []
    fences = _fenced_ranges(text)
    for quotes in _QUOTE_MODES:
        found = _objects(text, quotes)
        if found:
            pairs = list(zip(found, _inside(found, fences), strict=True))
            return [o for (_, o), fenced in pairs if fenced] + [o for (_, o), fenced in pairs if not fenced]
    return []


def cut_off(text: str | None) -> bool:
    """Whether ``text`` opens more JSON objects than it closes: an answer stopped mid-object (by max_tokens).

    >>> cut_off('{"route": "billing", "rea'), cut_off("no json here"), cut_off('{"a": 1}')
    (True, False, False)
    """
    return isinstance(text, str) and text.count("{") > text.count("}")


def parse_json_object(text: str | None, model: type[M] | None = None) -> Any:
    """The first object in ``text`` (the first that validates against ``model`` when given).

    Raises:
        EmptyOutputError: the text is empty.
        MalformedOutputError: no object, or none that validates (the message gives the first problem).

    >>> parse_json_object('Route: {"route": "billing", "confidence": 0.9}')["route"]
    'billing'
    """
    if text is None or not str(text).strip():
        raise EmptyOutputError("the model returned no text; expected a JSON object")
    objects = find_json_objects(str(text))
    if not objects and cut_off(str(text)):
        raise MalformedOutputError(f"the JSON object in the answer is {CUT_OFF_HINT}: {_snippet(str(text))!r}")
    if not objects:
        raise MalformedOutputError(f"no JSON object in the answer: {_snippet(str(text))!r}")
    if model is None:
        return objects[0]
    problems: list[str] = []
    for obj in objects:
        try:
            return model.model_validate(obj)
        except (ValidationError, ConfigError) as exc:
            problems.append(_first_problem(exc))
    raise MalformedOutputError(
        f"no JSON object in the answer is a valid {model.__name__} ({problems[0]}): {_snippet(str(text))!r}"
    )


def unfence(text: str) -> str:
    r"""The content of the first Markdown code fence (without its language tag), else ``text`` stripped.

    >>> unfence("Here:\n```json\n[1, 2]\n```")
    '[1, 2]'
    """
    parts = text.split("```")
    if len(parts) < 3:
        return text.strip()
    tag, newline, body = parts[1].partition("\n")
    if newline and _LANGUAGE_TAG.fullmatch(tag.strip()):
        return body.strip()
    return parts[1].strip()


# --------------------------------------------------------------------------------------------------
# The scanner
# --------------------------------------------------------------------------------------------------


def _spans(text: str, quotes: str) -> list[list[int]]:
    """Balanced ``{...}`` spans as ``[start, end, parent]`` in start order (``end`` -1 if unclosed).

    Quote characters open a string only inside braces, so apostrophes in prose never matter.
    """
    spans: list[list[int]] = []
    stack: list[int] = []
    quote, escaped = "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch == "{":
            spans.append([i, -1, stack[-1] if stack else -1])
            stack.append(len(spans) - 1)
        elif ch == "}":
            if stack:
                spans[stack.pop()][1] = i + 1
        elif stack and ch in quotes:
            quote = ch
    return spans


def _objects(text: str, quotes: str) -> list[tuple[int, dict[str, Any]]]:
    spans = _spans(text, quotes)
    failed = [0] * len(spans)  # failed, closed ancestors of each span (inclusive once it fails)
    done_until = -1  # end of the last object decoded: spans starting before it are inside it
    found: list[tuple[int, dict[str, Any]]] = []
    for k, (start, end, parent) in enumerate(spans):
        inherited = failed[parent] if parent >= 0 else 0
        failed[k] = inherited
        if end < 0 or start < done_until or inherited > _MAX_FAILED_ANCESTORS:
            continue
        obj = _decode(text[start:end])
        if isinstance(obj, dict):
            found.append((start, obj))
            done_until = end
        else:
            failed[k] = inherited + 1
    return found


def _decode(fragment: str) -> Any:
    """Strict JSON first, then a Python literal (single quotes, True/None); ``None`` if neither."""
    try:
        return json.loads(fragment)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(fragment)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _fenced_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges inside Markdown code fences (between an odd and the next ```` ``` ````)."""
    ranges, pos, inside = [], 0, False
    for part in text.split("```"):
        if inside:
            ranges.append((pos, pos + len(part)))
        pos += len(part) + 3
        inside = not inside
    return ranges


def _inside(found: list[tuple[int, Any]], ranges: list[tuple[int, int]]) -> list[bool]:
    """For each found object (in start order), whether it starts inside a fence (one merge walk)."""
    out, r = [], 0
    for start, _ in found:
        while r < len(ranges) and ranges[r][1] <= start:
            r += 1
        out.append(r < len(ranges) and ranges[r][0] <= start)
    return out


def _snippet(text: str, n: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        return f"{loc}: {err.get('msg', '')}" if loc else str(err.get("msg", ""))
    return str(exc)
