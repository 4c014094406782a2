"""Assertions: the closed set of deterministic checks a case may make on what it produced.

Each assertion is a frozen :class:`agentops.config.Spec`, so a bad one (``Regex(pattern="(")``)
raises :class:`~agentops.errors.ConfigError` whether it is built in code or loaded from a suite file.
``check(seen)`` grades one case's :class:`Observed` output and never raises.

>>> a = ContainsAny(values=["paris"])
>>> a.check(Observed("Paris is the capital.")).passed
True
>>> Regex(pattern="(")
Traceback (most recent call last):
...
agentops.errors.ConfigError: invalid Regex: invalid regex '(': missing ), unterminated subpattern ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentops.config import Spec
from agentops.evals.errors import EvalError
from agentops.jsonparse import unfence

__all__ = [
    "ASSERTION_TYPES",
    "Assertion",
    "AssertionResult",
    "ContainsAll",
    "ContainsAny",
    "Equals",
    "JsonValid",
    "MaxCost",
    "MaxLatency",
    "MaxTokens",
    "NotContains",
    "NotRegex",
    "Observed",
    "Regex",
    "ScorerRef",
    "ToolCalled",
    "ToolNotCalled",
]


@dataclass(frozen=True)
class Observed:
    """What one case produced, as the assertions see it."""

    text: str
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None
    cost_error: str | None = None


@dataclass(frozen=True)
class AssertionResult:
    """The outcome of one assertion on one case: ``label`` names it, ``detail`` says why."""

    type: str
    label: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored in the run file)."""
        return {"type": self.type, "label": self.label, "passed": self.passed, "detail": self.detail}


_Spec = Spec  # nested specs keep their error locations (see agentops.config.Spec)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


class _AssertionBase(_Spec):
    def check(self, seen: Observed) -> AssertionResult:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def label(self) -> str:
        """``type[argument]`` (``equals[Paris]``, ``max_cost_usd[0.01]``), or the type alone."""
        kind = str(getattr(self, "type", "assertion"))
        arg = self._label_arg()
        return kind if arg is None else f"{kind}[{arg}]"

    def _label_arg(self) -> str | None:
        return None

    def _result(self, passed: bool, detail: str) -> AssertionResult:
        return AssertionResult(str(getattr(self, "type", "")), self.label, bool(passed), detail)


class Equals(_AssertionBase):
    """The whole output equals ``value`` (whitespace-stripped unless ``strip=False``)."""

    type: Literal["equals"] = "equals"
    value: str
    ignore_case: bool = False
    strip: bool = True

    def _label_arg(self) -> str:
        return _short(self.value, 30)

    def check(self, seen: Observed) -> AssertionResult:
        a, b = seen.text, self.value
        if self.strip:
            a, b = a.strip(), b.strip()
        if self.ignore_case:
            a, b = a.casefold(), b.casefold()
        return self._result(a == b, "exact match" if a == b else f"got {_short(seen.text)!r}")


class _Phrases(_AssertionBase):
    values: list[str] = Field(min_length=1)
    ignore_case: bool = True

    @field_validator("values")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not s for s in v):
            raise ValueError("values must be non-empty strings")
        return v

    def _found(self, text: str) -> list[str]:
        hay = text.casefold() if self.ignore_case else text
        return [v for v in self.values if (v.casefold() if self.ignore_case else v) in hay]

    def _label_arg(self) -> str:
        return ",".join(self.values)


class ContainsAny(_Phrases):
    """At least one of ``values`` appears in the output."""

    type: Literal["contains_any"] = "contains_any"

    def check(self, seen: Observed) -> AssertionResult:
        found = self._found(seen.text)
        return self._result(bool(found), f"found {found}" if found else "none found")


class ContainsAll(_Phrases):
    """Every one of ``values`` appears in the output."""

    type: Literal["contains_all"] = "contains_all"

    def check(self, seen: Observed) -> AssertionResult:
        found = self._found(seen.text)
        missing = [v for v in self.values if v not in found]
        return self._result(not missing, f"missing {missing}" if missing else "all found")


class NotContains(_Phrases):
    """None of ``values`` appears in the output."""

    type: Literal["not_contains"] = "not_contains"

    def check(self, seen: Observed) -> AssertionResult:
        found = self._found(seen.text)
        return self._result(not found, f"found forbidden {found}" if found else "none present")


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


class _Pattern(_AssertionBase):
    pattern: str
    flags: str = ""

    @model_validator(mode="after")
    def _compiles(self) -> _Pattern:
        bad = set(self.flags) - set(_FLAGS)
        if bad:
            raise ValueError(f"unknown regex flag(s) {sorted(bad)}; valid: i, m, s")
        try:
            self._compiled()
        except re.error as exc:
            raise ValueError(f"invalid regex {self.pattern!r}: {exc}") from None
        return self

    def _compiled(self) -> re.Pattern[str]:
        f = 0
        for c in self.flags:
            f |= _FLAGS[c]
        return re.compile(self.pattern, f)

    def _label_arg(self) -> str:
        return _short(self.pattern, 30)


class Regex(_Pattern):
    """The output matches ``pattern`` (``re.search``)."""

    type: Literal["regex"] = "regex"

    def check(self, seen: Observed) -> AssertionResult:
        m = self._compiled().search(seen.text)
        return self._result(m is not None, f"matched {m.group(0)!r}" if m else "no match")


class NotRegex(_Pattern):
    """The output does not match ``pattern`` (e.g. an SSN or card-number shape)."""

    type: Literal["not_regex"] = "not_regex"

    def check(self, seen: Observed) -> AssertionResult:
        m = self._compiled().search(seen.text)
        return self._result(m is None, f"forbidden match {m.group(0)!r}" if m else "no match")


class JsonValid(_AssertionBase):
    """The output is valid JSON (optionally inside a code fence with ``extract``) and, when
    ``schema`` is given, validates against that JSON schema."""

    type: Literal["json"] = "json"
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    extract: bool = False

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("json_schema")
    @classmethod
    def _schema_ok(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(v).check_schema(v)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"invalid JSON schema: {exc.message}") from None
        return v

    def _label_arg(self) -> str | None:
        return "schema" if self.json_schema else None

    def check(self, seen: Observed) -> AssertionResult:
        text = unfence(seen.text) if self.extract else seen.text.strip()
        try:
            value = json.loads(text)
        except ValueError as exc:
            return self._result(False, f"not JSON: {exc.args[0] if exc.args else exc}")
        if self.json_schema is not None:
            import jsonschema

            errors = sorted(
                jsonschema.validators.validator_for(self.json_schema)(self.json_schema).iter_errors(value),
                key=lambda e: list(e.path),
            )
            if errors:
                e = errors[0]
                where = "/".join(str(p) for p in e.path) or "(root)"
                return self._result(False, f"schema violation at {where}: {e.message}")
        return self._result(True, "valid JSON" + (" matching schema" if self.json_schema else ""))


def _args_match(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    for k, v in expected.items():
        if k not in actual:
            return False
        got = actual[k]
        if isinstance(v, str) and isinstance(got, str):
            if v.casefold() != got.casefold():
                return False
        elif v != got:
            return False
    return True


class ToolCalled(_AssertionBase):
    """The agent called tool ``name`` (``times`` exactly, else at least once); with ``arguments``,
    at least one call carries those arguments (a subset match; strings compare case-insensitively)."""

    type: Literal["tool_called"] = "tool_called"
    name: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None
    times: int | None = Field(default=None, ge=0)

    def _label_arg(self) -> str:
        args = f"({json.dumps(self.arguments, sort_keys=True)})" if self.arguments else ""
        return f"{self.name}{args}"

    def check(self, seen: Observed) -> AssertionResult:
        calls = [args for name, args in seen.tool_calls if name == self.name]
        names = [n for n, _ in seen.tool_calls]
        if self.times is not None and len(calls) != self.times:
            return self._result(False, f"called {len(calls)}× (expected {self.times}); calls: {names}")
        if not calls and (self.times is None or self.times > 0):
            return self._result(False, f"not called; calls: {names or 'none'}")
        if self.arguments and not any(_args_match(self.arguments, a) for a in calls):
            got = [json.dumps(dict(a), sort_keys=True) for a in calls]
            return self._result(False, f"no call with {json.dumps(self.arguments, sort_keys=True)}; got {got}")
        return self._result(True, f"called {len(calls)}×")


class ToolNotCalled(_AssertionBase):
    """The agent never called tool ``name`` (or any tool when ``name`` is ``"*"``)."""

    type: Literal["tool_not_called"] = "tool_not_called"
    name: str = Field(min_length=1)

    def _label_arg(self) -> str:
        return self.name

    def check(self, seen: Observed) -> AssertionResult:
        hits = [n for n, _ in seen.tool_calls if self.name in ("*", n)]
        return self._result(not hits, f"called {hits}" if hits else "not called")


class MaxTokens(_AssertionBase):
    """Tokens used by the case (``total``, ``prompt`` or ``completion``, from reported usage) ≤ value.

    A target that reports no usage fails this check — it is never estimated from words."""

    type: Literal["max_tokens"] = "max_tokens"
    value: int = Field(ge=0)
    count: Literal["total", "prompt", "completion"] = "total"

    def _label_arg(self) -> str:
        return f"{self.count}≤{self.value}"

    def check(self, seen: Observed) -> AssertionResult:
        if seen.prompt_tokens is None or seen.completion_tokens is None:
            return self._result(False, "the target reported no token usage; cannot check max_tokens")
        n = {
            "total": seen.prompt_tokens + seen.completion_tokens,
            "prompt": seen.prompt_tokens,
            "completion": seen.completion_tokens,
        }[self.count]
        return self._result(n <= self.value, f"{n} {self.count} tokens (limit {self.value})")


class MaxLatency(_AssertionBase):
    """The case finished within ``value`` seconds (wall clock around the target call)."""

    type: Literal["max_latency_s"] = "max_latency_s"
    value: float = Field(gt=0)

    def _label_arg(self) -> str:
        return f"{self.value:g}"

    def check(self, seen: Observed) -> AssertionResult:
        ok = seen.latency_s <= self.value
        return self._result(ok, "within limit" if ok else f"over the {self.value:g} s limit")


class MaxCost(_AssertionBase):
    """The case's model spend (USD, priced from reported usage) ≤ ``value``."""

    type: Literal["max_cost_usd"] = "max_cost_usd"
    value: float = Field(ge=0)

    def _label_arg(self) -> str:
        return f"{self.value:g}"

    def check(self, seen: Observed) -> AssertionResult:
        if seen.cost_usd is None:
            return self._result(False, f"cost unknown: {seen.cost_error or 'no usage reported'}")
        ok = seen.cost_usd <= self.value
        return self._result(ok, f"${seen.cost_usd:.6f} (limit ${self.value:g})")


class ScorerRef(_AssertionBase):
    """Run a named ``ag2.eval`` scorer (built-in or passed to :func:`run_suite` via ``scorers=``).

    Passes iff it returned at least one boolean feedback and every boolean feedback is ``True``;
    a scorer that raised or returned no boolean is a failure, never a silent pass."""

    type: Literal["scorer"] = "scorer"
    name: str = Field(min_length=1)

    def _label_arg(self) -> str:
        return self.name

    def check(self, seen: Observed) -> AssertionResult:  # graded by the runner (needs the trace)
        raise EvalError("scorer assertions are graded by run_suite")


Assertion = Annotated[
    Union[  # noqa: UP007  (pydantic discriminated union)
        Equals,
        ContainsAny,
        ContainsAll,
        NotContains,
        Regex,
        NotRegex,
        JsonValid,
        ToolCalled,
        ToolNotCalled,
        MaxTokens,
        MaxLatency,
        MaxCost,
        ScorerRef,
    ],
    Field(discriminator="type"),
]

_ASSERTION_CLASSES: dict[str, type[_AssertionBase]] = {
    c.model_fields["type"].annotation.__args__[0]: c  # type: ignore[union-attr]
    for c in get_args(get_args(Assertion)[0])
}
ASSERTION_TYPES: tuple[str, ...] = tuple(sorted(_ASSERTION_CLASSES))
"""Every assertion ``type`` a case may use."""


def _check_assertion_types(items: Any, where: str) -> Any:
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{where} must be a list of assertions, got {type(items).__name__}")
    for i, a in enumerate(items):
        if isinstance(a, BaseModel):
            continue
        if not isinstance(a, Mapping) or "type" not in a:
            raise ValueError(
                f"{where} #{i + 1} must be a mapping with a 'type'; valid types: {', '.join(ASSERTION_TYPES)}"
            )
        if a["type"] not in _ASSERTION_CLASSES:
            raise ValueError(
                f"{where} #{i + 1}: unknown assertion type {a['type']!r}; valid types: {', '.join(ASSERTION_TYPES)}"
            )
    return items
