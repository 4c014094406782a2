"""Helpers shared by the runner's kernel tests: a one-chapter notebook folder, and waiting for a process to end."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat


def probe_book(tmp_path: Path, cells: Sequence[str]) -> Path:
    """A notebooks folder with one chapter, ``00_probe.ipynb``: a parameters cell (``x = 1``), then ``cells``."""
    d = tmp_path / "nb"
    d.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Probe"), params, *map(nbformat.v4.new_code_cell, cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, d / "00_probe.ipynb")
    return d


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process ``pid`` has ended, waiting up to ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
