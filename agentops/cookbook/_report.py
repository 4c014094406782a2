"""The run report: each executed chapter rendered to HTML, and an index (``index.md`` + ``index.html``).

Rendering is nbconvert's ``HTMLExporter`` (figures embedded, so one ``.html`` file is the whole chapter);
what is ours is the index: status, duration, the parameters given and used, backend, model and the
package versions, with failing-cell text passed through :func:`agentops.guardrails.redact` first.
"""

from __future__ import annotations

import functools
import html
import platform
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from agentops.cookbook._chapters import short
from agentops.cookbook._output import INDEX_TITLE
from agentops.errors import ChapterFailed

VERSIONED_PACKAGES = (
    "ag2",
    "ag2-agentops-cookbook",
    "papermill",
    "nbval",
    "nbconvert",
    "pandas",
    "matplotlib",
    "opentelemetry-sdk",
    "prometheus-client",
)
_ERROR_CHARS = 300


@dataclass
class ChapterResult:
    """Outcome of one chapter: ``passed``, ``failed``, ``interrupted`` or ``not run``."""

    chapter: str
    status: str
    seconds: float
    parameters: dict[str, Any]
    output: Path
    failed_cell: int | None = None
    error: str | None = None
    html: Path | None = None
    given: dict[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass
class RunReport:
    """All chapter results plus the environment they ran in."""

    results: list[ChapterResult]
    versions: dict[str, str]
    index_md: Path
    index_html: Path
    failures: list[ChapterResult] = field(default_factory=list)
    interrupted_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.interrupted_by is None

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


def clean_error(text: str) -> str:
    """Failing-cell text fit for an index: secrets and PII redacted, one line, at most 300 characters.

    >>> clean_error("ValueError: bad key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\\n  more")
    'ValueError: bad key [SECRET] more'
    """
    from agentops.guardrails import redact

    one_line = " ".join(redact(text).split())
    return one_line if len(one_line) <= _ERROR_CHARS else one_line[: _ERROR_CHARS - 1] + "…"


# nbconvert's lab template runs every code cell's highlighted source through bleach (``clean_html``), which is
# 40% of rendering a chapter; Pygments already escapes the source it highlights, so this block drops that pass.
# Every other use of ``clean_html`` (raw cells, SVG, and HTML/markdown when sanitizing) is kept, and the pages
# come out byte for byte the same (nbconvert re-serializes the whole page afterwards).
_TEMPLATE = "agentops_report.html.j2"
_TEMPLATE_SOURCE = """{%- extends 'index.html.j2' -%}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
     <div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
     </div>
</div>
{%- endblock input %}
"""


@functools.cache
def _exporter() -> Any:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    # loading its template is most of the cost: one per process
    return HTMLExporter(extra_loaders=[DictLoader({_TEMPLATE: _TEMPLATE_SOURCE})], template_file=_TEMPLATE)


def render_html(notebook: Path) -> Path | None:
    """Render an executed notebook to a self-contained ``.html`` beside it; ``None`` (and a warning) on failure."""
    try:
        body, _ = _exporter().from_filename(str(notebook))
        target = notebook.with_suffix(".html")
        target.write_text(body, encoding="utf-8")
        return target
    except Exception as exc:  # a report must still be written when one chapter cannot be rendered
        warnings.warn(f"could not render {notebook.name} to HTML: {type(exc).__name__}: {exc}", stacklevel=2)
        return None


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={short(v, 40)}" for k, v in params.items()) or "defaults"


def _status(r: ChapterResult) -> str:
    return r.status + (f" (cell {r.failed_cell})" if r.failed_cell is not None else "")


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]


def _summary(results: Sequence[ChapterResult], interrupted_by: str | None) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "interrupted", "not run")}
    parts = [f"Chapters: {len(results)}"] + [f"{s}: {n}" for s, n in counts.items() if n or s in ("passed", "failed")]
    return " · ".join(parts) + (f" · stopped by {interrupted_by}" if interrupted_by else "")


def _write_md(results: Sequence[ChapterResult], versions: Mapping[str, str], out: Path, stopped: str | None) -> Path:
    rows = [
        (
            r.chapter,
            _status(r),
            f"{r.seconds:.1f}",
            r.parameters.get("llm_backend", "-"),
            r.parameters.get("model", "-"),
            _params_text(r.given),
            (r.html or r.output).name if (r.html or r.output).exists() else "-",
        )
        for r in results
    ]
    errors = [f"- **{r.chapter}** cell {r.failed_cell}: `{r.error}`" for r in results if r.error]
    md = [
        f"# {INDEX_TITLE}",
        "",
        _summary(results, stopped),
        "",
        *_md_table(("chapter", "status", "seconds", "backend", "model", "parameters", "report"), rows),
        "",
        *(["## Failures", "", *errors, ""] if errors else []),
        "## Environment",
        "",
        *_md_table(("package", "version"), sorted(versions.items())),
        "",
    ]
    path = out / "index.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
    "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    ".passed{color:#1a7f37}.failed,.interrupted{color:#cf222e;font-weight:bold}.not{color:#777}"
    "details{margin:.2em 0}code{font-size:90%}"
)


def _html_row(r: ChapterResult) -> str:
    e = html.escape
    link = f"<a href='{e(r.html.name)}'>{e(r.chapter)}</a>" if r.html else e(r.chapter)
    every = "".join(f"<li><code>{e(k)} = {e(short(v, 80))}</code></li>" for k, v in r.parameters.items())
    cells = (
        f"{link}<br><small>{e(r.title)}</small>",
        f"<span class='{e(r.status.split()[0])}'>{e(_status(r))}</span>",
        f"{r.seconds:.1f}",
        e(str(r.parameters.get("llm_backend", "-"))),
        e(str(r.parameters.get("model", "-"))),
        f"{e(_params_text(r.given))}<details><summary>all</summary><ul>{every}</ul></details>",
        f"<a href='{e(r.output.name)}'>{e(r.output.name)}</a>" if r.output.exists() else "-",
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _write_html(results: Sequence[ChapterResult], versions: Mapping[str, str], out: Path, stopped: str | None) -> Path:
    e = html.escape
    head = ("chapter", "status", "seconds", "backend", "model", "parameters", "notebook")
    failures = "".join(
        f"<li><b>{e(r.chapter)}</b> cell {r.failed_cell}: <code>{e(r.error)}</code></li>" for r in results if r.error
    )
    page = (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{e(INDEX_TITLE)}</title>"
        f"<style>{_CSS}</style><h1>{e(INDEX_TITLE)}</h1><p>{e(_summary(results, stopped))}</p>"
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(_html_row(r) for r in results)
        + "</table>"
        + (f"<h2>Failures</h2><ul>{failures}</ul>" if failures else "")
        + "<h2>Environment</h2><table><tr><th>package</th><th>version</th></tr>"
        + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in sorted(versions.items()))
        + "</table></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_index(
    results: Sequence[ChapterResult], versions: Mapping[str, str], out: Path, stopped: str | None = None
) -> tuple[Path, Path]:
    """Write ``index.md`` and ``index.html`` into ``out``; ``stopped`` names the signal that ended the run."""
    return _write_md(results, versions, out, stopped), _write_html(results, versions, out, stopped)
