"""How long each chapter takes under papermill, against the floor measured in the same run.

The floor is a one-cell notebook that only imports ``ag2`` and ``agentops.models`` — kernel start,
imports and papermill's own overhead, which no chapter can avoid. A ratio of 3.0 means the chapter costs
three floors. With ``--whole``, it then times what ``make run`` does — ``python -m agentops run`` over the
same chapters with the default number of jobs (one more than the cores, offline), HTML included — which is the
cookbook's budget: under 60 s on 2 cores (target 50 s) — with kernels forked from one pre-warmed process, then
(``--ab``) started the usual way, back to back. Each line gives wall time and CPU-seconds (the run and every
process it waited for: kernels, the fork server): on a loaded machine, CPU-seconds / cores estimates the quiet
wall time. ``--jobs 2,3,4`` times the whole run once per value instead of the default; ``--only-whole`` skips
the per-chapter timings.
Usage: ``python benchmarks/cookbook_runtime.py [--repeat N] [--whole [--ab] [--jobs 2,3] [--only-whole]] [NN ...]``.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    parser.add_argument("--ab", action="store_true", help="with --whole: also time it with kernels not forked")
    parser.add_argument("--jobs", help="with --whole: comma-separated job counts to time (default: the default)")
    parser.add_argument("--only-whole", action="store_true", help="skip the per-chapter timings")
    args = parser.parse_args()

    chapters = find_chapters(args.chapters, discover())
    if args.only_whole:
        _whole([c.name for c in chapters], None, args.ab, args.jobs)
        return
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
        _whole([c.name for c in chapters], total, args.ab, args.jobs)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _whole(names: list[str], sequential: float | None, ab: bool, jobs_list: str | None) -> None:
    from agentops.cookbook import run
    from agentops.cookbook._runner import default_jobs

    default = default_jobs(find_chapters(names, discover()), {n: {} for n in names})
    counts = [int(j) for j in jobs_list.split(",")] if jobs_list else [default]
    cores = os.cpu_count() or 1
    for jobs in counts:
        for fork in (True, False) if ab else (True,):
            with tempfile.TemporaryDirectory() as tmp:
                start, cpu = time.perf_counter(), _cpu()
                report = run(names, {}, Path(tmp) / "reports", progress=False, jobs=jobs, fork_kernels=fork)
                wall, cpu = time.perf_counter() - start, _cpu() - cpu
            status = "ok" if report.ok else f"{len(report.failures)} chapter(s) failed"
            versus = f", {sequential / wall:.2f}x faster than the chapters one by one" if sequential else ""
            print(
                f"whole run ({jobs} at a time, kernels {'forked' if fork else 'started normally'}, HTML included): "
                f"{wall:.1f} s wall, {cpu:.1f} CPU-s (/{cores} cores = {cpu / cores:.1f} s){versus}; "
                f"budget 60 s: {'met' if wall < 60 else 'NOT met'}, target 50 s: {'met' if wall < 50 else 'NOT met'}"
                f" ({status})"
            )


if __name__ == "__main__":
    main()
