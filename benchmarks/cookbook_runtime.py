"""How long each chapter takes under papermill, against the floor measured in the same run.

The floor is a one-cell notebook that only imports ``ag2`` and ``agentops.models`` — kernel start,
imports and papermill's own overhead, which no chapter can avoid. A ratio of 3.0 means the chapter costs
three floors. Usage: ``python benchmarks/cookbook_runtime.py [--repeat N] [CHAPTER ...]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm

from agentops.cookbook import discover, find_chapters


def _time(path: Path, out: Path, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        pm.execute_notebook(
            str(path), str(out), kernel_name="python3", cwd=str(path.parent), progress_bar=False, log_output=False
        )
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*")
    parser.add_argument("--repeat", type=int, default=3, help="runs per notebook; the median is reported")
    args = parser.parse_args()

    chapters = find_chapters(args.chapters, discover())
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        floor_nb = nbformat.v4.new_notebook()
        floor_nb.cells = [nbformat.v4.new_code_cell("import ag2\nimport agentops.models")]
        floor_nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        floor_path = tmpdir / "floor.ipynb"
        nbformat.write(floor_nb, floor_path)
        floor = _time(floor_path, tmpdir / "floor.out.ipynb", args.repeat)
        rows = [(c.name, _time(c.path, tmpdir / c.path.name, args.repeat)) for c in chapters]

    print(f"floor (kernel + import ag2, agentops): {floor:.2f} s  (median of {args.repeat})")
    print(f"{'chapter':<22}{'seconds':>9}{'× floor':>9}")
    for name, secs in rows:
        print(f"{name:<22}{secs:>9.2f}{secs / floor:>9.2f}")
    total = sum(s for _, s in rows)
    print(f"{'total':<22}{total:>9.2f}{total / (floor * len(rows)):>9.2f}  (ratio to {len(rows)} floors)")


if __name__ == "__main__":
    main()
