"""Chapters and their parameters: discovery from the ``parameters`` cell, selection and validation.

Discovery is ``papermill.inspect_notebook``; what is ours is the validation (papermill injects whatever
it is given). A parameter's allowed values are read from its comment in the notebook, e.g.
``llm_backend = "offline"  # one of: offline, openai, azure`` — so the notebook stays the single source.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentops.errors import ConfigError, ParameterError

DEFAULT_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_CHOICES = re.compile(r"one of:\s*(?P<values>[\w\-.]+(?:\s*,\s*[\w\-.]+)*)", re.IGNORECASE)
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
# A chapter file: two digits, an optional part letter, "_", a name (``02_guardrails``, ``02b_governance``).
_CHAPTER_NAME = re.compile(r"(?P<number>\d\d)(?P<part>[a-z]?)_(?P<topic>\w.*)")


class ParameterWarning(UserWarning):
    """A ``-p`` value applies to only some of the chapters being run (the others run without it)."""


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long it was: safe to echo in a message.

    >>> short("x" * 5000, limit=20)
    "'xxxxxxxxxxxxxxxx… (5002 characters)"
    >>> short(3)
    '3'
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}… ({len(text)} characters)"


@dataclass(frozen=True)
class Parameter:
    """One knob of a chapter's ``parameters`` cell."""

    name: str
    type: str
    default: Any
    help: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chapter:
    """A notebook under ``notebooks/`` and the parameters it accepts."""

    name: str
    path: Path
    title: str
    parameters: dict[str, Parameter]

    def values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value for a run: the defaults overridden by ``given``."""
        return {name: p.default for name, p in self.parameters.items()} | dict(given)


def _title(nb: Mapping[str, Any], fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def _load_chapter(path: Path) -> Chapter:
    import ast

    import papermill as pm

    nb = json.loads(path.read_text(encoding="utf-8"))
    params: dict[str, Parameter] = {}
    for name, info in pm.inspect_notebook(str(path)).items():
        try:
            default = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            default = info["default"]
        type_name = info.get("inferred_type_name") or type(default).__name__
        if type_name == "None":
            type_name = type(default).__name__
        help_text = info.get("help") or ""
        m = _CHOICES.search(help_text)
        choices = tuple(v.strip() for v in m.group("values").split(",")) if m else ()
        params[name] = Parameter(name, type_name, default, help_text, choices)
    return Chapter(path.stem, path, _title(nb, path.stem), params)


def notebooks_root(notebooks_dir: str | Path | None = None) -> Path:
    """The notebooks directory: the argument, else ``$AGENTOPS_NOTEBOOKS``, else the checkout's ``notebooks/``."""
    return Path(notebooks_dir or os.environ.get("AGENTOPS_NOTEBOOKS") or DEFAULT_NOTEBOOKS)


def chapter_files(root: str | Path) -> list[Path]:
    """The chapter notebooks in ``root``, in reading order: ``NN_name.ipynb`` and its parts ``NNb_name.ipynb``.

    A chapter split in parts keeps its number; the part letter sorts after the unlettered first part
    (``02_guardrails`` < ``02b_governance`` < ``03_evaluations``).
    """
    paths = [p for p in Path(root).glob("[0-9][0-9]*_*.ipynb") if _CHAPTER_NAME.fullmatch(p.stem)]
    return sorted(paths, key=lambda p: p.name)


def discover(notebooks_dir: str | Path | None = None) -> list[Chapter]:
    """All chapters (``NN_name.ipynb``, parts ``NNb_name.ipynb``) in order, with their parameters."""
    root = notebooks_root(notebooks_dir)
    if not root.is_dir():
        raise ConfigError(f"notebooks directory {root} does not exist; pass --notebooks DIR")
    return [_load_chapter(p) for p in chapter_files(root)]


def _keys(name: str) -> tuple[str, ...]:
    m = _CHAPTER_NAME.fullmatch(name)
    return (name,) if m is None else (name, m["number"] + m["part"], m["topic"])


def find_chapters(names: Sequence[str], chapters: Sequence[Chapter]) -> list[Chapter]:
    """Select chapters by full name (``01_architecture``), number (``01``) or title word (``architecture``).

    A bare number selects every part of that chapter (``02`` → ``02_guardrails`` and ``02b_governance``);
    number and letter (``02b``) select one part.
    """
    if not names:
        return list(chapters)
    picked: list[Chapter] = []
    for name in names:
        if re.fullmatch(r"\d\d", name):
            match = [c for c in chapters if c.name[:2] == name]
        else:
            match = [c for c in chapters if name in _keys(c.name)]
        if not match or (len(match) > 1 and not re.fullmatch(r"\d\d", name)):
            raise ParameterError(
                f"unknown chapter {short(name)}; available: {', '.join(c.name for c in chapters) or '(none)'}"
            )
        picked.extend(c for c in match if c not in picked)
    return picked


def _type_error(p: Parameter, raw: Any, chapter: str, kind: str = "") -> ParameterError:
    return ParameterError(
        f"parameter {p.name!r} of chapter {chapter!r} must be {p.type} (default {p.default!r}), got {kind}{short(raw)}"
    )


def _coerce(p: Parameter, raw: Any, chapter: str) -> Any:
    kind = _TYPES.get(p.type)
    if kind is None:  # lists, dicts, None: accept JSON/Python literals from the command line
        return raw
    if isinstance(raw, str) and kind is not str:
        text = raw.strip()
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: Any = lowered in ("true", "1", "yes")
            else:
                value = kind(text)
        except ValueError:
            raise _type_error(p, raw, chapter) from None
    else:
        value = raw
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise _type_error(p, raw, chapter, f"{type(raw).__name__} ")
    if p.choices and str(value) not in p.choices:
        raise ParameterError(
            f"parameter {p.name!r} of chapter {chapter!r} must be one of {', '.join(p.choices)}; got {short(value)}"
        )
    return value


def _describe(chapter: Chapter) -> str:
    return ", ".join(f"{p.name} ({p.type}, default {p.default!r})" for p in chapter.parameters.values())


def coerce_parameters(chapters: Sequence[Chapter], raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate and type parameters for each chapter; raises before anything runs.

    A parameter applies to every selected chapter that declares it (see :func:`undeclared_parameters`
    for the others); a name no selected chapter declares is an error listing each chapter's valid
    parameters.
    """
    out: dict[str, dict[str, Any]] = {c.name: {} for c in chapters}
    for name, value in raw.items():
        declared = [c for c in chapters if name in c.parameters]
        if not declared:
            valid = "; ".join(f"{c.name}: {_describe(c)}" for c in chapters)
            raise ParameterError(f"unknown parameter {short(name)}. Valid parameters — {valid}")
        for c in declared:
            out[c.name][name] = _coerce(c.parameters[name], value, c.name)
    return out


def undeclared_parameters(chapters: Sequence[Chapter], names: Sequence[str]) -> dict[str, list[str]]:
    """For each name that some but not all ``chapters`` declare, the chapters that do not declare it."""
    out = {}
    for name in names:
        missing = [c.name for c in chapters if name not in c.parameters]
        if missing and len(missing) < len(chapters):
            out[name] = missing
    return out


def partial_parameter_message(name: str, chapters: Sequence[Chapter], missing: Sequence[str]) -> str:
    """One line saying which chapters take ``-p name`` and which run without it."""
    applies = [c.name for c in chapters if c.name not in missing]
    return (
        f"-p {short(name, 40)} applies to {', '.join(applies)} only; {', '.join(missing)} "
        f"{'does' if len(missing) == 1 else 'do'} not declare it and run{'s' if len(missing) == 1 else ''} without it"
    )
