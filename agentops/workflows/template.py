"""Workflow templates: stages with dependencies, gates, parallel groups and parameters, validated once.

A template is data. Build it in code, from a dict, or from YAML; a bad value raises
:class:`~agentops.errors.ConfigError` (:class:`WorkflowError` from the loaders) naming the field and
the fix, and nothing runs.

>>> t = WorkflowTemplate.from_dict({"name": "tiny", "stages": [{"name": "a"}, {"name": "b", "depends_on": ["a"]}]})
>>> [s.name for s in t.stages], t.ancestors("b")
(['a', 'b'], {'a'})
>>> Stage(name="slow", timeout_s=0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agentops.errors.ConfigError: invalid Stage: timeout_s: must be > 0 seconds ...
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from agentops import _identity  # noqa: F401
from agentops.config import Spec, check_unique
from agentops.errors import ConfigError

__all__ = ["Stage", "WorkflowError", "WorkflowTemplate"]

_STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_MAX_RETRIES = 20


class WorkflowError(ConfigError):
    """A workflow template or run argument is invalid; the message names the stage and the fix."""


def _check_timeout(v: float | None, *, optional: bool) -> float | None:
    if v is None and optional:
        return v
    if v is None or not v > 0:
        unset = " or leave it unset to use the template's default_timeout_s" if optional else ""
        raise ValueError(f"must be > 0 seconds (got {v!r}); give a positive number of seconds{unset}")
    return v


def _check_retries(v: int | None, *, optional: bool) -> int | None:
    if v is None and optional:
        return v
    if v is None or not 0 <= v <= _MAX_RETRIES:
        raise ValueError(f"must be between 0 and {_MAX_RETRIES} (got {v!r}); retries after the first attempt")
    return v


class Stage(Spec):
    """One stage of a workflow.

    Args:
        name: identifier (letters, digits, ``_``), unique in the template.
        instructions: the stage agent's system prompt; may use ``{parameter}`` placeholders.
        depends_on: stages whose outputs this stage receives and waits for.
        timeout_s: time limit of each model-call attempt (default: the template's ``default_timeout_s``).
        max_retries: call-level retries after the first attempt (default: ``default_max_retries``).
        approval: ask the approver before the stage runs.
        model: name of the model slot to use (a key of ``models``); default: the stage name, then
            ``"default"``.
    """

    name: str
    instructions: str = ""
    depends_on: tuple[str, ...] = ()
    timeout_s: float | None = None
    max_retries: int | None = None
    approval: bool = False
    model: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _STAGE_NAME.match(v):
            raise ValueError(f"{v!r} is not a stage name; use letters, digits and _ (start with a letter, ≤ 40)")
        return v

    @field_validator("timeout_s")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        return _check_timeout(v, optional=True)

    @field_validator("max_retries")
    @classmethod
    def _retries(cls, v: int | None) -> int | None:
        return _check_retries(v, optional=True)


def _cycle(by_name: Mapping[str, Stage]) -> list[str]:
    """Stages in dependency order; raises ``ValueError`` naming a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = [*trail[trail.index(n) :], n]
            raise ValueError(f"dependency cycle {' → '.join(cycle)}; remove one of these depends_on entries")
        state[n] = 1
        for d in by_name[n].depends_on:
            visit(d, [*trail, n])
        state[n] = 2
        order.append(n)

    for n in by_name:
        visit(n, [])
    return order


class WorkflowTemplate(Spec):
    """A validated, reusable workflow: stages, dependencies, gates, parallel groups and parameters.

    Raises:
        ConfigError: (``WorkflowError`` from :meth:`from_dict`/:meth:`from_yaml`) no stages, duplicate
            stages, unknown dependencies, cycles, unknown or overlapping parallel groups, or
            dependent stages in one parallel group.
    """

    name: str
    description: str = ""
    stages: tuple[Stage, ...]
    parallel_groups: tuple[tuple[str, ...], ...] = ()
    default_timeout_s: float = 60.0
    default_max_retries: int = 1
    retry_backoff_s: float = Field(0.0, description="first wait between retries; doubles each retry")
    approval_timeout_s: float | None = 30.0
    parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TEMPLATE_NAME.match(v):
            raise ValueError(f"{v!r} is not a template name; use letters, digits, _ . - (start with a letter)")
        return v

    @field_validator("stages")
    @classmethod
    def _has_stages(cls, v: tuple[Stage, ...]) -> tuple[Stage, ...]:
        if not v:
            raise ValueError("a workflow needs at least one stage; add one under stages")
        check_unique([s.name for s in v], "stage names")
        return v

    @field_validator("default_timeout_s")
    @classmethod
    def _default_timeout(cls, v: float) -> float:
        return _check_timeout(v, optional=False)  # type: ignore[return-value]

    @field_validator("approval_timeout_s")
    @classmethod
    def _approval_timeout(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(f"must be > 0 seconds or null to wait forever (got {v!r})")
        return v

    @field_validator("default_max_retries")
    @classmethod
    def _default_retries(cls, v: int) -> int:
        return _check_retries(v, optional=False)  # type: ignore[return-value]

    @field_validator("retry_backoff_s")
    @classmethod
    def _backoff(cls, v: float) -> float:
        if not v >= 0:
            raise ValueError(f"must be ≥ 0 seconds (got {v!r}); 0 retries at once")
        return v

    @field_validator("parallel_groups")
    @classmethod
    def _groups_have_two(cls, groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for g in groups:
            if len(g) < 2:
                raise ValueError(f"parallel group {list(g)} needs at least two stages; drop it or add a stage")
        return groups

    @model_validator(mode="after")
    def _check_graph(self) -> WorkflowTemplate:
        names = [s.name for s in self.stages]
        for s in self.stages:
            for d in s.depends_on:
                if d == s.name:
                    raise ValueError(f"stage {s.name!r} depends on itself; remove it from its depends_on")
                if d not in names:
                    raise ValueError(f"stage {s.name!r} depends on unknown stage {d!r}; stages: {names}")
        _cycle(self.stage_map)
        self._check_groups(set(names))
        return self

    def _check_groups(self, known: set[str]) -> None:
        seen: set[str] = set()
        for group in self.parallel_groups:
            for n in group:
                if n not in known:
                    raise ValueError(f"parallel group {list(group)} names unknown stage {n!r}")
                if n in seen:
                    raise ValueError(f"stage {n!r} is in two parallel groups; put it in one")
                seen.add(n)
            for a, b in itertools.permutations(group, 2):
                if a in self.ancestors(b):
                    raise ValueError(
                        f"stages {b!r} and {a!r} cannot run in parallel: {b!r} depends on {a!r}; "
                        "take one of them out of the group"
                    )

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowTemplate:
        """Validate a plain mapping (e.g. parsed YAML/JSON); errors become :class:`WorkflowError`."""
        try:
            return cls.model_validate(data)  # type: ignore[no-any-return]
        except ConfigError as exc:
            raise WorkflowError(str(exc).replace("invalid WorkflowTemplate", "invalid workflow template", 1)) from None

    @classmethod
    def from_yaml(cls, source: str | Path) -> WorkflowTemplate:
        """Load from YAML text or a ``.yaml``/``.yml`` file path."""
        import yaml

        text = (
            Path(source).read_text() if isinstance(source, Path) or str(source).endswith((".yaml", ".yml")) else source
        )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise WorkflowError(f"workflow template is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise WorkflowError("a workflow template must be a YAML mapping with name and stages")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> WorkflowTemplate:
        """A validated copy with some fields changed, e.g. ``template.replace(default_timeout_s=300)``
        for a slow local model."""
        return self.from_dict({**self.model_dump(), **changes})

    # -- graph helpers -------------------------------------------------------------------------
    @property
    def stage_map(self) -> dict[str, Stage]:
        """Stages by name."""
        return {s.name: s for s in self.stages}

    def ancestors(self, name: str) -> set[str]:
        """Every stage ``name`` depends on, directly or not."""
        by_name = self.stage_map
        out: set[str] = set()
        todo = list(by_name[name].depends_on)
        while todo:
            d = todo.pop()
            if d not in out:
                out.add(d)
                todo.extend(by_name[d].depends_on)
        return out

    def order(self) -> list[str]:
        """Stage names in a dependency order (each after everything it depends on)."""
        return _cycle(self.stage_map)

    def group_of(self, name: str) -> int | None:
        """Index of the parallel group holding ``name`` (``None`` if it runs alone)."""
        for i, g in enumerate(self.parallel_groups):
            if name in g:
                return i
        return None

    def placeholders(self) -> set[str]:
        """Parameter names used by the stage instructions."""
        names = set()
        for s in self.stages:
            for _, field_name, _, _ in string.Formatter().parse(s.instructions):
                if field_name:
                    names.add(field_name.split(".")[0].split("[")[0])
        return names

    def timeout_for(self, stage: Stage) -> float:
        """Effective timeout of a stage."""
        return stage.timeout_s if stage.timeout_s is not None else self.default_timeout_s

    def retries_for(self, stage: Stage) -> int:
        """Effective retry budget of a stage."""
        return stage.max_retries if stage.max_retries is not None else self.default_max_retries

    def frame(self) -> Any:
        """The template's stages as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {
                "stage": s.name,
                "depends on": ", ".join(s.depends_on) or "—",
                "parallel group": "—" if self.group_of(s.name) is None else self.group_of(s.name),
                "timeout s": self.timeout_for(s),
                "retries": self.retries_for(s),
                "approval": "yes" if s.approval else "",
                "model slot": s.model or "default",
            }
            for s in self.stages
        ]
        return pd.DataFrame(rows).set_index("stage")
