"""The README's tables (chapters; classic API to AG2 v1) name only chapters and helpers that exist."""

import importlib
import re
from pathlib import Path

import ag2

from agentops.cookbook import CLASSIC_TO_V1, classic_mapping
from agentops.cookbook._chapters import chapter_files

ROOT = Path(__file__).resolve().parent.parent
DOTTED = re.compile(r"\bagentops(?:\.\w+)+")


def _readme_row(classic: str) -> str:
    readme = (ROOT / "README.md").read_text()
    return next(line for line in readme.splitlines() if line.startswith(f"| {classic} |"))


def test_every_row_names_a_helper_or_a_chapter_and_none_is_a_placeholder():
    for classic, _v1, helper in CLASSIC_TO_V1:
        assert "ch. " in helper, classic
        assert "no helper" not in helper, classic


def test_nested_chats_map_to_subagent_tools_and_the_delegation_helpers():
    row = dict((c, (v1, h)) for c, v1, h in CLASSIC_TO_V1)["nested chats / register_nested_chats"]
    assert "as_tool()" in row[0] and "run_subtasks" in row[0]
    assert callable(ag2.Agent.as_tool) and hasattr(ag2, "TaskConfig")
    assert "agentops.delegation.Team" in row[1] and "agentops.delegation.Delegator" in row[1]
    assert "ch. 06" in row[1]


def test_cache_maps_to_cassettes_caching_and_the_offline_model():
    helper = dict((c, h) for c, _v1, h in CLASSIC_TO_V1)["Cache (disk / redis)"]
    assert {"agentops.cassettes", "agentops.caching", "agentops.models"} <= set(DOTTED.findall(helper))
    from agentops.caching import ResponseCache, SemanticCache
    from agentops.cassettes import open_cassette

    assert callable(open_cassette) and ResponseCache and SemanticCache


def test_the_readme_rows_name_the_same_helpers_as_the_table():
    assert len(classic_mapping()) == len(CLASSIC_TO_V1)
    for classic, v1, helper in CLASSIC_TO_V1:
        row = _readme_row(classic)
        assert row.startswith(f"| {classic} | {v1} |"), classic
        assert DOTTED.findall(row.replace("`", "")) == DOTTED.findall(helper), classic


def _chapter_rows() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Chapters", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]  # fmt: skip


def test_the_chapter_table_lists_every_notebook_in_order():
    notebooks = [p.stem for p in chapter_files(ROOT / "notebooks")]  # parts too: 02_guardrails, 02b_governance
    assert [row[0].strip("`") for row in _chapter_rows()] == notebooks


def test_every_module_in_the_chapter_table_imports():
    named = [m for _name, _shows, modules in _chapter_rows() for m in re.findall(r"`(\w+)`", modules)]
    assert len(named) >= 20
    for module in named:
        importlib.import_module(f"agentops.{module}")
