"""Chapters split in parts (``02_guardrails`` + ``02b_governance``): discovery order and selection."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from agentops.cookbook import discover, find_chapters
from agentops.cookbook._chapters import chapter_files
from agentops.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def parts(tmp_path: Path) -> Path:
    for name in ("03_next", "02b_governance", "02_guardrails", "01_first", "02x-draft", "README", "2_short"):
        _notebook(tmp_path / f"{name}.ipynb")
    return tmp_path


def test_parts_sort_after_their_first_part_and_before_the_next_chapter(parts):
    assert [p.stem for p in chapter_files(parts)] == ["01_first", "02_guardrails", "02b_governance", "03_next"]
    assert [c.name for c in discover(parts)] == ["01_first", "02_guardrails", "02b_governance", "03_next"]


def test_a_bare_number_selects_every_part_and_a_lettered_number_one(parts):
    chapters = discover(parts)
    assert [c.name for c in find_chapters(["02"], chapters)] == ["02_guardrails", "02b_governance"]
    assert [c.name for c in find_chapters(["02b"], chapters)] == ["02b_governance"]
    assert [c.name for c in find_chapters(["governance", "02"], chapters)] == ["02b_governance", "02_guardrails"]
    assert [c.name for c in find_chapters(["02_guardrails"], chapters)] == ["02_guardrails"]
    assert [c.name for c in find_chapters(["01"], chapters)] == ["01_first"]
    for bad in ("02a", "04", "2", "_guardrails"):
        with pytest.raises(ParameterError, match=f"unknown chapter '{bad}'; available: 01_first, 02_guardrails"):
            find_chapters([bad], chapters)


def test_the_repository_chapter_names_are_unique_and_ordered():
    names = [p.stem for p in chapter_files(ROOT / "notebooks")]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert {"02_guardrails", "02b_governance"} <= set(names)
    assert len({n.split("_", 1)[1] for n in names}) == len(names)  # every title word selects one chapter
