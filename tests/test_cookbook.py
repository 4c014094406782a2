from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from agentops.__main__ import main
from agentops.cookbook import (
    CLASSIC_TO_V1,
    classic_mapping,
    coerce_parameters,
    discover,
    find_chapters,
    refresh,
    run,
)
from agentops.errors import ChapterFailed, ConfigError, ParameterError

ROOT = Path(__file__).resolve().parent.parent


PARAMS = 'greeting = "hi"  # one of: hi, hello\ncount = 2\nratio = 0.5\nloud = False'


def make_notebook(path: Path, body: str, params: str = PARAMS) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Title of {path.stem}"), p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def book(tmp_path: Path) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    make_notebook(d / "00_ok.ipynb", "print(greeting * count, ratio, loud)")
    make_notebook(d / "01_boom.ipynb", "x = 1\nraise ValueError('planned failure')")
    (d / "README.ipynb").write_text("not a chapter")  # ignored: no NN_ prefix
    return d


def test_discover_reads_parameters_types_choices_and_title(book):
    chapters = discover(book)
    assert [c.name for c in chapters] == ["00_ok", "01_boom"]
    ok = chapters[0]
    assert ok.title == "Title of 00_ok"
    assert {n: (p.type, p.default) for n, p in ok.parameters.items()} == {
        "greeting": ("str", "hi"), "count": ("int", 2), "ratio": ("float", 0.5), "loud": ("bool", False)
    }
    assert ok.parameters["greeting"].choices == ("hi", "hello")


def test_find_chapters_by_name_number_or_suffix(book):
    chapters = discover(book)
    assert [c.name for c in find_chapters(["01"], chapters)] == ["01_boom"]
    assert [c.name for c in find_chapters(["ok", "00_ok"], chapters)] == ["00_ok"]
    with pytest.raises(ParameterError, match="unknown chapter 'nope'; available: 00_ok, 01_boom"):
        find_chapters(["nope"], chapters)


def test_coerce_parameters_types_and_errors(book):
    chapters = discover(book)[:1]
    typed = coerce_parameters(chapters, {"count": "3", "ratio": "1", "loud": "yes", "greeting": "hello"})
    assert typed == {"00_ok": {"count": 3, "ratio": 1.0, "loud": True, "greeting": "hello"}}
    assert coerce_parameters(chapters, {"ratio": 2})["00_ok"]["ratio"] == 2.0
    with pytest.raises(ParameterError, match="'count' of chapter '00_ok' must be int"):
        coerce_parameters(chapters, {"count": "many"})
    with pytest.raises(ParameterError, match="must be int"):
        coerce_parameters(chapters, {"count": True})
    with pytest.raises(ParameterError, match="must be bool"):
        coerce_parameters(chapters, {"loud": "maybe"})
    with pytest.raises(ParameterError, match="must be one of hi, hello; got 'yo'"):
        coerce_parameters(chapters, {"greeting": "yo"})
    with pytest.raises(ParameterError, match=r"unknown parameter 'colour'\. Valid parameters — 00_ok: greeting"):
        coerce_parameters(chapters, {"colour": "red"})


def test_bad_parameter_executes_nothing(book, tmp_path):
    out = tmp_path / "reports"
    with pytest.raises(ParameterError):
        run(["00"], {"count": "notanumber"}, out, notebooks_dir=book, progress=False)
    assert not out.exists()


def test_run_writes_reports_and_index_and_names_failing_cell(book, tmp_path):
    out = tmp_path / "reports"
    report = run([], {"count": "3"}, out, notebooks_dir=book, progress=False)
    assert [r.status for r in report.results] == ["passed", "failed"]
    executed = json.loads((out / "00_ok.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("hihihi 0.5 False" in "".join(o.get("text", "")) for o in outputs)
    failed = report.failures[0]
    assert failed.chapter == "01_boom" and failed.error == "ValueError: planned failure"
    assert failed.failed_cell == 3  # markdown, parameters, injected parameters, failing cell
    with pytest.raises(ChapterFailed, match="chapter '01_boom' failed at cell 3: ValueError: planned failure"):
        report.raise_for_failures()
    index = (out / "index.md").read_text()
    assert "| 00_ok | passed |" in index and "| 01_boom | failed (cell 3) |" in index
    assert "count=3" in index and "| ag2 |" in index and "planned failure" in index
    assert "<table" in (out / "index.html").read_text()


def test_cli_exit_codes(book, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "00_ok", "--notebooks", str(book), "--output", str(out), "-q"]) == 0
    assert main(["run", "01", "--notebooks", str(book), "--output", str(out), "-q"]) == 1
    assert "chapter '01_boom' failed at cell 2" in capsys.readouterr().err  # no -p: no injected cell
    assert main(["run", "--notebooks", str(book), "-p", "count", "x", "--output", str(out)]) == 2
    assert "must be int" in capsys.readouterr().err
    assert main(["list", "--notebooks", str(book)]) == 0
    listing = capsys.readouterr().out
    assert "00_ok — Title of 00_ok" in listing and "-p count <int>  (default 2)" in listing


def test_refresh_executes_in_place_without_papermill_metadata(book):
    refresh(["00"], notebooks_dir=book)
    nb = json.loads((book / "00_ok.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code)
    assert "hihi 0.5 False" in "".join(code[1]["outputs"][0]["text"])
    assert "papermill" not in nb["metadata"]


def test_every_chapter_has_typed_parameters_and_backend_choices():
    chapters = discover(ROOT / "notebooks")
    assert chapters and chapters[0].name == "00_quickstart"
    for c in chapters:
        assert "llm_backend" in c.parameters and "seed" in c.parameters, c.name
        assert "offline" in c.parameters["llm_backend"].choices
        assert c.parameters["llm_backend"].default == "offline"


def test_classic_mapping_matches_readme():
    readme = (ROOT / "README.md").read_text()
    assert len(classic_mapping()) == len(CLASSIC_TO_V1)
    for classic, v1, _helper in CLASSIC_TO_V1:
        assert f"| {classic} | {v1} |" in readme, classic


def test_figures_survive_an_inherited_non_interactive_backend(tmp_path, monkeypatch):
    d = tmp_path / "nb"
    d.mkdir()
    make_notebook(d / "00_plot.ipynb", "import matplotlib.pyplot as plt\n_ = plt.plot([1, 2])\nplt.show()")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run([], {}, tmp_path / "out", notebooks_dir=d, progress=False).raise_for_failures()
    executed = json.loads((tmp_path / "out" / "00_plot.ipynb").read_text())
    mimes = {m for c in executed["cells"] for o in c.get("outputs", []) for m in o.get("data", {})}
    assert "image/png" in mimes
    assert os.environ["MPLBACKEND"] == "Agg"  # restored for the caller


def test_every_parameter_line_of_every_chapter_is_understood():
    """papermill silently skips lines it cannot parse (e.g. an '=' in a comment); `-p` would then reject them."""
    for chapter in discover(ROOT / "notebooks"):
        nb = json.loads(chapter.path.read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        assigned = [
            line.split("=", 1)[0].strip()
            for line in "".join(cell["source"]).splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert assigned == list(chapter.parameters), chapter.name


def test_main_dispatches_the_eval_gate(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert main(["eval", "demo", "--save-baseline", str(baseline), "--no-progress"]) == 0
    assert main(["eval", "demo", "--baseline", str(baseline), "--no-progress"]) == 0
    assert main(["eval", "demo", "--baseline", str(baseline), "--variant", "regressed", "--no-progress"]) == 1
    assert "regression gate FAILED" in capsys.readouterr().out


def test_compare_reports_sanitizes_durations_and_names_differing_cells(book, tmp_path, capsys):
    from agentops.cookbook import compare_reports

    make_notebook(book / "00_ok.ipynb", "print(f'took ⏱ {__import__(\"time\").perf_counter() % 1:.3f} s', greeting)")
    first, second = tmp_path / "a", tmp_path / "b"
    run(["00"], {}, first, notebooks_dir=book, progress=False)
    run(["00"], {}, second, notebooks_dir=book, progress=False)
    assert compare_reports(first, second) == {"00_ok": []}  # only the ⏱ duration differed
    assert main(["compare", str(first), str(second)]) == 0
    run(["00"], {"greeting": "hello"}, second, notebooks_dir=book, progress=False)
    assert compare_reports(first, second) == {"00_ok": [2]}
    assert main(["compare", str(first), str(second)]) == 1
    assert "DIFFERS  00_ok  (cells [2])" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="same executed chapters"):
        compare_reports(first, tmp_path)
