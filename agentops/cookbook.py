"""Run the cookbook's chapters with papermill and write a readable report index.

``run(["00_quickstart"], {"seed": "7"})`` validates the parameters against each chapter's
``parameters`` cell *before* executing anything (unknown name, wrong type or a value outside the
documented choices is a :class:`~agentops.errors.ParameterError` listing the valid parameters), then
executes each chapter into ``reports/`` and writes ``reports/index.md`` and ``reports/index.html``:
status, duration, parameters used, backend and model, and package versions.

Execution is papermill's Python API; discovery of parameters is ``papermill.inspect_notebook``. What is
ours is the validation (papermill injects whatever it is given) and the index.

A parameter's allowed values are read from its comment in the notebook, e.g.
``llm_backend = "offline"  # one of: offline, openai, azure`` — so the notebook stays the single source.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ChapterFailed, ConfigError, ParameterError

__all__ = [
    "CLASSIC_TO_V1",
    "Chapter",
    "ChapterResult",
    "Parameter",
    "RunReport",
    "classic_mapping",
    "coerce_parameters",
    "compare_reports",
    "discover",
    "find_chapters",
    "refresh",
    "run",
]

DEFAULT_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_CHOICES = re.compile(r"one of:\s*(?P<values>[\w\-.]+(?:\s*,\s*[\w\-.]+)*)", re.IGNORECASE)
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
VERSIONED_PACKAGES = (
    "ag2",
    "ag2-agentops-cookbook",
    "papermill",
    "nbval",
    "pandas",
    "matplotlib",
    "opentelemetry-sdk",
    "prometheus-client",
)


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


def discover(notebooks_dir: str | Path | None = None) -> list[Chapter]:
    """All chapters (``NN_name.ipynb``) in order, with their parameters."""
    root = Path(notebooks_dir or os.environ.get("AGENTOPS_NOTEBOOKS") or DEFAULT_NOTEBOOKS)
    if not root.is_dir():
        raise ConfigError(f"notebooks directory {root} does not exist; pass --notebooks DIR")
    return [_load_chapter(p) for p in sorted(root.glob("[0-9][0-9]_*.ipynb"))]


def find_chapters(names: Sequence[str], chapters: Sequence[Chapter]) -> list[Chapter]:
    """Select chapters by full name (``01_architecture``), number (``01``) or title word (``architecture``)."""
    if not names:
        return list(chapters)
    picked: list[Chapter] = []
    for name in names:
        match = [c for c in chapters if name in (c.name, c.name[:2], c.name[3:])]
        if len(match) != 1:
            raise ParameterError(
                f"unknown chapter {name!r}; available: {', '.join(c.name for c in chapters) or '(none)'}"
            )
        if match[0] not in picked:
            picked.append(match[0])
    return picked


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
            raise ParameterError(
                f"parameter {p.name!r} of chapter {chapter!r} must be {p.type} (default {p.default!r}), "
                f"got {raw!r}"
            ) from None
    else:
        value = raw
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ParameterError(
                f"parameter {p.name!r} of chapter {chapter!r} must be {p.type} (default {p.default!r}), "
                f"got {type(raw).__name__} {raw!r}"
            )
    if p.choices and str(value) not in p.choices:
        raise ParameterError(
            f"parameter {p.name!r} of chapter {chapter!r} must be one of {', '.join(p.choices)}; got {value!r}"
        )
    return value


def _describe(chapter: Chapter) -> str:
    return ", ".join(f"{p.name} ({p.type}, default {p.default!r})" for p in chapter.parameters.values())


def coerce_parameters(chapters: Sequence[Chapter], raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate and type parameters for each chapter; raises before anything runs.

    A parameter applies to every selected chapter that declares it; a name no selected chapter
    declares is an error listing each chapter's valid parameters.
    """
    out: dict[str, dict[str, Any]] = {c.name: {} for c in chapters}
    for name, value in raw.items():
        declared = [c for c in chapters if name in c.parameters]
        if not declared:
            valid = "; ".join(f"{c.name}: {_describe(c)}" for c in chapters)
            raise ParameterError(f"unknown parameter {name!r}. Valid parameters — {valid}")
        for c in declared:
            out[c.name][name] = _coerce(c.parameters[name], value, c.name)
    return out


@dataclass
class ChapterResult:
    """Outcome of one chapter execution."""

    chapter: str
    status: str
    seconds: float
    parameters: dict[str, Any]
    output: Path
    failed_cell: int | None = None
    error: str | None = None


@dataclass
class RunReport:
    """All chapter results plus the environment they ran in."""

    results: list[ChapterResult]
    versions: dict[str, str]
    index_md: Path
    index_html: Path
    failures: list[ChapterResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raise :class:`ChapterFailed` for the first failed chapter (naming the cell)."""
        if self.failures:
            f = self.failures[0]
            raise ChapterFailed(f.chapter, f.failed_cell, f.error or "unknown error")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a report depends on."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@contextmanager
def _ipc_kernels() -> Iterator[type]:
    """A kernel-manager class whose kernels talk over IPC sockets in a private temporary directory.

    Local kernels need no TCP port; over IPC nothing listens on the network and ipykernel does not
    warn (once per chapter) that TCP traffic is unencrypted. The directory is removed afterwards.
    """
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    root = Path(tempfile.mkdtemp(prefix="agentops-kernels-"))
    counter = iter(range(1_000_000))

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(root / f"kernel-{next(counter)}")

    try:
        yield IPCKernelManager
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _kernel_env() -> Iterator[None]:
    """Kernels inherit the environment: drop ``MPLBACKEND`` so figures use the inline backend.

    With ``MPLBACKEND=Agg`` (common on CI machines) ``plt.show()`` displays nothing, and a report or
    nbval run would silently lose every figure.
    """
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


def _execute(
    chapter: Chapter, params: dict[str, Any], output: Path, kernel: str, manager: type | None = None
) -> ChapterResult:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    merged = {name: p.default for name, p in chapter.parameters.items()} | params
    start = time.perf_counter()
    try:
        with _kernel_env():
            pm.execute_notebook(
                str(chapter.path),
                str(output),
                parameters=params,
                kernel_name=kernel,
                cwd=str(chapter.path.parent),
                progress_bar=False,
                log_output=False,
                **({"kernel_manager_class": manager} if manager is not None else {}),
            )
    except PapermillExecutionError as exc:
        # cell_index counts every cell of the executed report (papermill's injected-parameters cell
        # included), so it points at the right cell of the notebook the reader opens in reports/.
        return ChapterResult(
            chapter.name, "failed", time.perf_counter() - start, merged, output,
            failed_cell=exc.cell_index, error=f"{exc.ename}: {exc.evalue}",
        )
    except Exception as exc:  # kernel died, bad notebook, ...
        return ChapterResult(
            chapter.name, "failed", time.perf_counter() - start, merged, output,
            error=f"{type(exc).__name__}: {exc}",
        )
    return ChapterResult(chapter.name, "passed", time.perf_counter() - start, merged, output)


def _write_index(results: list[ChapterResult], versions: dict[str, str], out_dir: Path) -> tuple[Path, Path]:
    import pandas as pd

    rows = []
    for r in results:
        params = {k: v for k, v in r.parameters.items() if k not in ("llm_backend", "model")}
        rows.append(
            {
                "chapter": r.chapter,
                "status": r.status + (f" (cell {r.failed_cell})" if r.failed_cell is not None else ""),
                "seconds": round(r.seconds, 1),
                "backend": r.parameters.get("llm_backend", "-"),
                "model": r.parameters.get("model", "-"),
                "parameters": ", ".join(f"{k}={v!r}" for k, v in params.items()),
                "report": r.output.name,
            }
        )
    table = pd.DataFrame(rows)
    vtable = pd.DataFrame(sorted(versions.items()), columns=["package", "version"])
    errors = [f"- **{r.chapter}** cell {r.failed_cell}: `{r.error}`" for r in results if r.error]
    md = [
        "# AG2 AgentOps Cookbook — run report",
        "",
        f"Chapters: {len(results)} · passed: {sum(r.status == 'passed' for r in results)} · "
        f"failed: {sum(r.status != 'passed' for r in results)}",
        "",
        _plain_md(table),
        "",
        *(["## Failures", "", *errors, ""] if errors else []),
        "## Environment",
        "",
        _plain_md(vtable),
        "",
    ]
    index_md = out_dir / "index.md"
    index_md.write_text("\n".join(md), encoding="utf-8")
    html = (
        "<!doctype html><meta charset='utf-8'><title>AG2 AgentOps Cookbook — run report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
        "<h1>AG2 AgentOps Cookbook — run report</h1>"
        + table.assign(report=[f"<a href='{n}'>{n}</a>" for n in table["report"]]).to_html(index=False, escape=False)
        + ("<h2>Failures</h2><ul>" + "".join(f"<li>{_esc(e[2:])}</li>" for e in errors) + "</ul>" if errors else "")
        + "<h2>Environment</h2>" + vtable.to_html(index=False)
    )
    index_html = out_dir / "index.html"
    index_html.write_text(html, encoding="utf-8")
    return index_md, index_html


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def _plain_md(df: Any) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def run(
    names: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | Path = "reports",
    *,
    notebooks_dir: str | Path | None = None,
    kernel: str = "python3",
    progress: bool = True,
) -> RunReport:
    """Validate parameters, execute the chapters into ``output_dir`` and write the index.

    Raises:
        ParameterError: an unknown chapter or parameter, or a badly typed value — nothing executed.
    """
    from tqdm.auto import tqdm

    chapters = find_chapters(names, discover(notebooks_dir))
    if not chapters:
        raise ParameterError("no chapters found to run")
    typed = coerce_parameters(chapters, parameters or {})
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[ChapterResult] = []
    bar = tqdm(chapters, desc="chapters", unit="chapter", disable=not progress, file=sys.stderr)
    with _ipc_kernels() as manager:
        for chapter in bar:
            bar.set_postfix_str(chapter.name)
            results.append(_execute(chapter, typed[chapter.name], out_dir / chapter.path.name, kernel, manager))
    versions = package_versions()
    md, html_path = _write_index(results, versions, out_dir)
    return RunReport(results, versions, md, html_path, [r for r in results if r.status != "passed"])


def refresh(names: Sequence[str] = (), *, notebooks_dir: str | Path | None = None, timeout: int = 600) -> list[Path]:
    """Re-execute chapters in place with default parameters (for maintainers before committing outputs)."""
    import nbclient
    import nbformat

    paths = []
    for chapter in find_chapters(names, discover(notebooks_dir)):
        nb = nbformat.read(chapter.path, as_version=4)
        with _ipc_kernels() as manager, _kernel_env():
            client = nbclient.NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                kernel_manager_class=manager,
                resources={"metadata": {"path": str(chapter.path.parent)}},
            )
            client.execute()
        nb.metadata.pop("papermill", None)
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        tmp = chapter.path.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(chapter.path)  # atomic: a failed run never leaves a half-written notebook
        paths.append(chapter.path)
    return paths


def _sanitizers(cfg_path: Path) -> list[tuple[re.Pattern[str], str]]:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(cfg_path, encoding="utf-8")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def _text_outputs(path: Path) -> list[tuple[int, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for index, cell in enumerate(nb.get("cells", [])):
        for o in cell.get("outputs", []):
            data = {k: v for k, v in o.get("data", {}).items() if not k.startswith("image/")}
            text = o.get("text", "")
            if o.get("output_type") == "error":
                text = f"{o.get('ename')}: {o.get('evalue')}"
            out.append((index, json.dumps([data, text], ensure_ascii=False, sort_keys=True)))
    return out


def compare_reports(
    first: str | Path, second: str | Path, *, sanitize: str | Path | None = None
) -> dict[str, list[int]]:
    """Compare the text outputs of the chapters two report runs share, after the nbval sanitize file.

    Figures are not compared (like nbval); durations marked with ⏱ and memory addresses are
    normalised. Returns chapter → indexes of cells whose outputs differ (empty lists: reproducible).

    Raises:
        ConfigError: a directory holds no executed chapters, or the two hold different chapters.
    """
    a, b = Path(first), Path(second)
    subs = _sanitizers(Path(sanitize) if sanitize else DEFAULT_NOTEBOOKS / "nbval.cfg")
    names_a = sorted(p.name for p in a.glob("[0-9][0-9]_*.ipynb"))
    names_b = sorted(p.name for p in b.glob("[0-9][0-9]_*.ipynb"))
    if not names_a or names_a != names_b:
        raise ConfigError(f"{a} and {b} must hold the same executed chapters; got {names_a} and {names_b}")

    def norm(text: str) -> str:
        for pattern, replacement in subs:
            text = pattern.sub(replacement, text)
        return text

    result: dict[str, list[int]] = {}
    for name in names_a:
        left, right = _text_outputs(a / name), _text_outputs(b / name)
        cells = {i for (i, x), (_, y) in zip(left, right, strict=False) if norm(x) != norm(y)}
        if len(left) != len(right):  # an output missing on one side: name the cell it belongs to
            longer = left if len(left) > len(right) else right
            cells.add(longer[min(len(left), len(right))][0])
        result[Path(name).stem] = sorted(cells)
    return result


# --------------------------------------------------------------------------------------------------
# The classic-to-v1 map shown in the README and the quickstart chapter
# --------------------------------------------------------------------------------------------------

CLASSIC_TO_V1: tuple[tuple[str, str, str], ...] = (
    ("ConversableAgent / AssistantAgent + LLMConfig", "ag2.Agent(name, prompt, config=ModelConfig)",
     "agentops.models.model_config · ch. 00"),
    ("initiate_chat(max_turns=...)", "await agent.ask(...) then reply.ask(...)", "ch. 00"),
    ("GroupChat + GroupChatManager", "ag2.network Hub + TransitionGraph (workflow)",
     "agentops.graph (enforced edges, router) · ch. 01"),
    ("nested chats / register_nested_chats", "child.as_tool() / TaskConfig subtasks",
     "agentops.workflows · ch. 01"),
    ("UserProxyAgent (human_input_mode)", "hitl_hook + approval_required() / ctx.input()",
     "agentops.workflows approvals · agentops.tools · ch. 01–02"),
    ("register_reply / hooks", "middleware: on_turn, on_llm_call, on_tool_execution, on_human_input",
     "agentops.guardrails, agentops.budgets · ch. 02"),
    ("runtime_logging", "TelemetryMiddleware, MetricsMiddleware, LoggingMiddleware",
     "agentops.telemetry · ch. 04"),
    ("Cache (disk / redis)", "none built in: record/replay ModelConfig wrapper",
     "offline model for reproducible runs · ch. 00"),
    ("eval scripts", "ag2.eval (Suite, scorers, run_agent, diff)", "agentops.evals · ch. 03"),
)


def classic_mapping() -> Any:
    """The classic-API → AG2 v1 → agentops map as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(list(CLASSIC_TO_V1), columns=["classic API", "AG2 v1", "agentops / chapter"])
