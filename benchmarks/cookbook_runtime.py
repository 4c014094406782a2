"""How long each chapter takes under papermill, against the floor measured in the same run.

The floor is a one-cell notebook that only imports ``ag2`` and ``agentops.models`` — kernel start,
imports and papermill's own overhead, which no chapter can avoid. A ratio of 3.0 means the chapter costs
three floors. With ``--whole``, it then times what ``make run`` does — ``python -m agentops run`` over the
same chapters with the default number of jobs (one more than the cores, offline), HTML included — which is the
cookbook's budget: under 60 s on 2 cores.
Usage: ``python benchmarks/cookbook_runtime.py [--repeat N] [--whole] [CHAPTER ...]``.
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
    parser.add_argument("--whole", action="store_true", help="also time the whole run as `make run` does it")
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
    if args.whole:
        _whole([c.name for c in chapters], total)


def _whole(names: list[str], sequential: float) -> None:
    from agentops.cookbook import run
    from agentops.cookbook._runner import default_jobs

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run(names, {}, Path(tmp) / "reports", progress=False)
        wall = time.perf_counter() - start
    jobs = default_jobs(find_chapters(names, discover()), {n: {} for n in names})
    status = "ok" if report.ok else f"{len(report.failures)} chapter(s) failed"
    print(
        f"whole run ({jobs} at a time, HTML included): {wall:.1f} s wall, {sequential / wall:.2f}x faster "
        f"than the chapters one by one; budget 60 s: {'met' if wall < 60 else 'NOT met'} ({status})"
    )


if __name__ == "__main__":
    main()
