"""Cases and suites as validated data: :class:`EvalCase`, :class:`EvalSuite`, :func:`load_suite`.

A suite file is data, never code: its ``target`` names a target registered in code
(:func:`agentops.evals.register_target`), not an import path. Every spec here is an
:class:`agentops.config.Spec`, so a bad case raises :class:`~agentops.errors.ConfigError` when built
in code, and :func:`suite_from_dict` / :func:`load_suite` raise :class:`SuiteError` naming the case.

>>> EvalCase(id="hello", prompt="Hi!")
Traceback (most recent call last):
...
agentops.errors.ConfigError: invalid EvalCase: a case needs at least one assertion or graded: true (it would ...
>>> case = {"id": "hi", "prompt": "Hi!", "assert": [{"type": "contains_any", "values": ["hello"]}]}
>>> suite_from_dict({"cases": [case]}).cases[0].assertions[0].label
'contains_any[hello]'
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ag2.eval import Suite, Task
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from agentops.config import check_unique
from agentops.errors import ConfigError
from agentops.evals.assertions import (
    _ASSERTION_CLASSES,
    Assertion,
    _AssertionBase,
    _check_assertion_types,
    _Spec,
)
from agentops.evals.errors import SuiteError, UnknownKeyError

__all__ = [
    "RUBRIC",
    "SCALE",
    "EvalCase",
    "EvalSuite",
    "JudgeSettings",
    "SuiteDefaults",
    "load_suite",
    "suite_from_dict",
]

RUBRIC: tuple[str, ...] = ("correctness", "helpfulness", "clarity", "safety", "completeness", "overall")
"""The judge's rubric dimensions, each scored 0–10."""

SCALE: tuple[float, float] = (0.0, 10.0)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MAX_PROBLEMS = 20
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


def _check_registered_name(name: str | None, what: str, register: str) -> str | None:
    """A suite names its target and judge by a name registered in code, never by an import path."""
    if name is None or _NAME.match(name):
        return name
    shape = " looks like an import path, and" if any(c in name for c in ":/\\") else ""
    raise ValueError(
        f"{what} {name!r}{shape} is not a registered name: a suite file is data and may only name a "
        f"{what} registered in code ({register}('name', factory)); to run other code, pass it on the "
        f"command line (--agent / --judge module:factory)"
    )


def _check_thresholds(v: Mapping[str, float] | None) -> dict[str, float] | None:
    if v is None:
        return None
    out: dict[str, float] = {}
    for k, t in v.items():
        if k not in RUBRIC:
            raise ValueError(f"unknown rubric dimension {k!r} in thresholds; valid: {', '.join(RUBRIC)}")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not SCALE[0] <= t <= SCALE[1]:
            raise ValueError(f"threshold for {k!r} must be a number in {SCALE[0]:g}–{SCALE[1]:g}, got {t!r}")
        out[k] = float(t)
    return out


class EvalCase(_Spec):
    """One test case: a prompt, tags, assertions and (optionally) a judge grade.

    YAML example::

        - id: weather_paris
          prompt: What's the weather in Paris?
          tags: [tool_use]
          critical: true
          reference: Sunny in Paris, 21 °C.
          assert:
            - {type: tool_called, name: get_weather, arguments: {city: Paris}}
            - {type: contains_any, values: [sunny]}
          graded: true
          judge_thresholds: {overall: 6}
    """

    model_config = ConfigDict(populate_by_name=True)

    id: str
    prompt: str
    tags: tuple[str, ...] = ()
    critical: bool = False
    reference: str | None = None
    assertions: tuple[Assertion, ...] = Field(default=(), alias="assert")
    graded: bool = False
    judge_thresholds: dict[str, float] | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"case id {v!r} must start with a letter or digit and use only letters, digits, _ . -")
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("assertions", mode="before")
    @classmethod
    def _types(cls, v: Any) -> Any:
        return _check_assertion_types(v, "assertion")

    @field_validator("judge_thresholds")
    @classmethod
    def _thr(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        return _check_thresholds(v)

    @model_validator(mode="after")
    def _has_checks(self) -> EvalCase:
        if not self.assertions and not self.graded:
            raise ValueError("a case needs at least one assertion or graded: true (it would pass vacuously)")
        return self


class JudgeSettings(_Spec):
    """Suite-level judge settings: thresholds per rubric dimension and an optional judge factory."""

    thresholds: dict[str, float] | None = None
    factory: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _thr(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        return _check_thresholds(v)

    @field_validator("factory")
    @classmethod
    def _factory(cls, v: str | None) -> str | None:
        return _check_registered_name(v, "judge", "agentops.evals.targets.register_judge")


class SuiteDefaults(_Spec):
    """Assertions and timeout applied to every case of a suite."""

    model_config = ConfigDict(populate_by_name=True)

    assertions: tuple[Assertion, ...] = Field(default=(), alias="assert")
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("assertions", mode="before")
    @classmethod
    def _types(cls, v: Any) -> Any:
        return _check_assertion_types(v, "default assertion")


class EvalSuite(_Spec):
    """A named, validated collection of :class:`EvalCase` plus what to run it against.

    ``target`` names a target registered in code (:func:`agentops.evals.register_target`; the
    package registers ``demo_agent``) and ``target_options`` are passed to its factory — the CLI
    builds the agent from them. ``judge`` holds the rubric thresholds and, optionally, a registered
    judge factory; ``defaults`` apply to every case.
    """

    name: str = "suite"
    description: str = ""
    target: str | None = None
    target_options: dict[str, Any] = Field(default_factory=dict)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    defaults: SuiteDefaults = Field(default_factory=SuiteDefaults)
    cases: tuple[EvalCase, ...] = Field(min_length=1)
    source: str = "inline"

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        return _check_registered_name(v, "target", "agentops.evals.register_target")

    @model_validator(mode="after")
    def _validate(self) -> EvalSuite:
        check_unique((c.id for c in self.cases), "case ids")
        unset = [c.id for c in self.cases if c.graded and not self.thresholds_for(c)]
        if unset:
            raise ValueError(
                f"graded case(s) {unset} have no judge threshold; set judge.thresholds in the suite "
                f"(e.g. {{overall: 6}}) or judge_thresholds on the case — "
                f"an unset threshold would grade nothing"
            )
        return self

    def with_thresholds(self, thresholds: Mapping[str, float]) -> EvalSuite:
        """A copy with suite-level judge ``thresholds`` (validated; a case's own thresholds still win)."""
        try:
            checked = _check_thresholds(thresholds)
        except ValueError as exc:
            raise UnknownKeyError(str(exc)) from None
        return self.model_copy(update={"judge": self.judge.model_copy(update={"thresholds": checked})})

    def with_latency_limit(self, seconds: float) -> EvalSuite:
        """A copy whose ``max_latency_s`` checks (suite defaults and cases) allow ``seconds``.

        A limit written for a hosted provider does not fit a small local model behind a queue; this
        moves the limit without touching any other check.

        Raises:
            ConfigError: ``seconds`` is not a positive number.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ConfigError(f"latency limit must be a positive number of seconds, got {seconds!r}")

        def moved(assertions: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(
                a.model_copy(update={"value": float(seconds)}) if a.type == "max_latency_s" else a for a in assertions
            )

        cases = tuple(c.model_copy(update={"assertions": moved(c.assertions)}) for c in self.cases)
        defaults = self.defaults.model_copy(update={"assertions": moved(self.defaults.assertions)})
        return self.model_copy(update={"cases": cases, "defaults": defaults})

    def thresholds_for(self, case: EvalCase) -> dict[str, float]:
        """The rubric thresholds that apply to a case (the case's own, else the suite's)."""
        return dict(case.judge_thresholds or self.judge.thresholds or {})

    def assertions_for(self, case: EvalCase) -> tuple[_AssertionBase, ...]:
        """The suite defaults followed by the case's own assertions."""
        return (*self.defaults.assertions, *case.assertions)  # type: ignore[return-value]

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag used by the suite's cases, sorted."""
        return tuple(sorted({t for c in self.cases for t in c.tags}))

    @property
    def graded_cases(self) -> tuple[str, ...]:
        """Ids of the cases the judge grades."""
        return tuple(c.id for c in self.cases if c.graded)

    def select(self, *, tags: Iterable[str] = (), ids: Iterable[str] = ()) -> EvalSuite:
        """A sub-suite of the cases carrying any of ``tags`` or named in ``ids`` (unknown ones raise)."""
        tags, ids = set(tags), set(ids)
        bad_tags, bad_ids = tags - set(self.tags), ids - {c.id for c in self.cases}
        if bad_tags or bad_ids:
            raise UnknownKeyError(
                f"unknown tag(s) {sorted(bad_tags)} / case id(s) {sorted(bad_ids)}; valid tags: {list(self.tags)}"
            )
        cases = tuple(c for c in self.cases if c.id in ids or tags & set(c.tags))
        return self.model_copy(update={"cases": cases})

    def to_ag2(self) -> Suite:
        """This suite as an ``ag2.eval.Suite`` (inputs, reference, tags and case metadata)."""
        return Suite(tuple(_task_for(c) for c in self.cases), name=self.name, source=self.source)

    def frame(self) -> Any:
        """The cases as a pandas DataFrame (id, tags, critical, graded, assertions)."""
        import pandas as pd

        rows = [
            {
                "case": c.id,
                "tags": ", ".join(c.tags),
                "critical": c.critical,
                "graded": c.graded,
                "assertions": ", ".join(a.label for a in c.assertions),
            }
            for c in self.cases
        ]
        return pd.DataFrame(rows).set_index("case")


def _task_for(case: EvalCase) -> Task:
    return Task(
        inputs={"input": case.prompt},
        task_id=case.id,
        reference_outputs={"answer": case.reference} if case.reference is not None else None,
        tags=tuple(case.tags),
        metadata={"critical": case.critical, "graded": case.graded},
    )


def _format_validation(exc: ValidationError, source: str) -> str:
    lines = []
    errors = exc.errors()
    in_cases = any(len(e.get("loc", ())) > 1 and e["loc"][0] == "cases" for e in errors)
    for err in errors:
        loc = list(err.get("loc", ()))
        if in_cases and tuple(loc) == ("cases",) and err.get("type") == "too_short":
            continue  # a side effect of an invalid case, reported on its own line
        where = source
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            where += f": case #{loc[1] + 1}"
            loc = loc[2:]
        path = ".".join(str(p) for p in loc if not (isinstance(p, str) and p in _ASSERTION_CLASSES))
        msg = err.get("msg", "").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r} (check its spelling)"
        elif err.get("type") == "missing":
            msg = f"missing required field {loc[-1]!r}"
        lines.append(f"{where}{' ' + path if path else ''}: {msg}")
    if len(lines) > _MAX_PROBLEMS:  # a systematic mistake repeated over 1,000 cases: show the pattern
        lines = [*lines[:_MAX_PROBLEMS], f"... and {len(lines) - _MAX_PROBLEMS} more problem(s) like these"]
    return "invalid eval suite —\n  " + "\n  ".join(lines)


def suite_from_dict(data: Mapping[str, Any], *, source: str = "inline") -> EvalSuite:
    """Validate a suite given as a mapping (the YAML document's shape); raises :class:`SuiteError`."""
    if not isinstance(data, Mapping):
        raise SuiteError(f"{source}: a suite must be a mapping with 'cases', got {type(data).__name__}")
    try:
        return _suite_adapter().validate_python({**data, "source": source})
    except ValidationError as exc:
        raise SuiteError(_format_validation(exc, source)) from None


@functools.cache
def _suite_adapter() -> TypeAdapter[EvalSuite]:
    """Validates a suite and reports every problem with its location (``cases.2.assert.0``)."""
    return TypeAdapter(EvalSuite)


def load_suite(path: str | Path) -> EvalSuite:
    """Load and validate a suite from YAML (``.yaml``/``.yml``) or JSONL (one case per line).

    Raises:
        SuiteError: the file is missing, unparsable, or any case is invalid (unknown assertion type,
            unknown field, graded without a threshold, duplicate id...). Nothing runs on bad input.
    """
    p = Path(path)
    if not p.is_file():
        raise SuiteError(f"suite file {str(p)!r} not found; pass the path to a .yaml or .jsonl suite")
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SuiteError(f"{p}: not valid YAML: {exc}") from None
        if isinstance(data, list):
            data = {"cases": data}
        if not isinstance(data, Mapping):
            raise SuiteError(f"{p}: the YAML document must be a mapping with 'cases' (or a list of cases)")
        data = {"name": p.stem, **data}
    elif p.suffix.lower() == ".jsonl":
        cases = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise SuiteError(f"{p}: line {i} is not valid JSON: {exc}") from None
            if not isinstance(item, dict):
                raise SuiteError(f"{p}: line {i} must be a JSON object (one case)")
            cases.append(item)
        data = {"name": p.stem, "cases": cases}
    else:
        raise SuiteError(f"{p}: unsupported suite format {p.suffix!r}; use .yaml, .yml or .jsonl")
    return suite_from_dict(data, source=str(p))
