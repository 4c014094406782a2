"""The cookbook's commands: ``list``, ``run``, ``refresh`` and ``compare`` (registered by ``agentops.__main__``)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from agentops.cookbook._chapters import ParameterWarning, discover
from agentops.cookbook._compare import compare_reports
from agentops.cookbook._providers import LOCAL_PLACEHOLDER, local_key, local_model_parameters
from agentops.cookbook._report import RunReport
from agentops.cookbook._runner import preflight, refresh, run
from agentops.errors import ParameterError


def _cmd_list(args: argparse.Namespace) -> int:
    for chapter in discover(args.notebooks):
        print(f"{chapter.name} — {chapter.title}")
        for p in chapter.parameters.values():
            help_text = f"  # {p.help}" if p.help else ""
            print(f"    -p {p.name} <{p.type}>  (default {p.default!r}){help_text}")
    return 0


def _show_warning(message: Any, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _run_real(args: argparse.Namespace, params: dict[str, Any], options: dict[str, Any]) -> RunReport:
    if {"llm_backend", "base_url", "model"} & set(params):
        raise ParameterError("--real chooses llm_backend, base_url and model itself: drop those -p values")
    with local_key():  # everything is checked before the local server starts
        preflight(
            args.chapters, params | LOCAL_PLACEHOLDER, args.output, notebooks_dir=args.notebooks, force=args.force
        )
    warnings.simplefilter("ignore", ParameterWarning)  # already shown by the preflight
    with local_model_parameters() as real:
        return run(args.chapters, params | real, args.output, **options)


def _cmd_run(args: argparse.Namespace) -> int:
    params = dict(args.param or [])
    options = {
        "notebooks_dir": args.notebooks,
        "progress": not args.quiet,
        "force": args.force,
        "render": not args.no_html,
        "jobs": args.jobs,
        "fork_kernels": False if args.no_fork else None,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("always", ParameterWarning)
        warnings.showwarning = _show_warning
        report = _run_real(args, params, options) if args.real else run(args.chapters, params, args.output, **options)
    for r in report.results:
        print(f"{r.status:>7}  {r.chapter:<24} {r.seconds:6.1f} s  → {r.html or r.output}")
    print(f"index: {report.index_html} ({report.index_md.name})")
    for f in report.failures:
        where = f"cell {f.failed_cell}" if f.failed_cell is not None else "before any cell ran"
        print(f"error: chapter {f.chapter!r} failed at {where} of {f.output}: {f.error}", file=sys.stderr)
    return 0 if report.ok else 1


def _cmd_refresh(args: argparse.Namespace) -> int:
    for path in refresh(args.chapters, notebooks_dir=args.notebooks):
        print(f"executed in place: {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    differing = 0
    for chapter, cells in compare_reports(args.first, args.second, sanitize=args.sanitize).items():
        print(f"{'same' if not cells else 'DIFFERS':>7}  {chapter}" + (f"  (cells {cells})" if cells else ""))
        differing += bool(cells)
    return 1 if differing else 0


def register_cli(sub: Any) -> None:
    """Add ``list``, ``run``, ``refresh`` and ``compare`` to an argparse ``subparsers`` object."""
    p_list = sub.add_parser("list", help="list chapters and their parameters")
    p_list.add_argument("--notebooks", help="notebooks directory (default: the checkout's notebooks/)")
    p_list.set_defaults(func=_cmd_list)

    p_run = sub.add_parser("run", help="execute chapters into a report directory (notebooks, HTML, index)")
    p_run.add_argument(
        "chapters", nargs="*", help="chapter names or numbers; 02 runs every part of 02, 02b one part (default: all)"
    )
    p_run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter (validated before anything runs)",
    )
    p_run.add_argument(
        "--output", default="reports", help="report directory: new, empty or an earlier report (default: reports)"
    )
    p_run.add_argument("--force", action="store_true", help="write into a non-empty directory that is not a report")
    p_run.add_argument(
        "--real",
        action="store_true",
        help="start the local real model (agentops.local_model) and run every chapter against it",
    )
    p_run.add_argument("--no-html", action="store_true", help="skip rendering the chapters to HTML")
    p_run.add_argument("--notebooks", help="notebooks directory")
    p_run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_run.add_argument(
        "-j",
        "--jobs",
        type=int,
        help="chapters executed at once (default: one more than the cores, at most 4, offline; 1 with a real model)",
    )
    p_run.add_argument(
        "--no-fork",
        action="store_true",
        help="start every kernel as its own process instead of forking it from one that imported AG2 once",
    )
    p_run.set_defaults(func=_cmd_run)

    p_refresh = sub.add_parser("refresh", help="re-execute chapters in place (maintainers, before committing)")
    p_refresh.add_argument("chapters", nargs="*")
    p_refresh.add_argument("--notebooks", help="notebooks directory")
    p_refresh.set_defaults(func=_cmd_refresh)

    p_cmp = sub.add_parser("compare", help="check two report directories give the same outputs (after sanitizing)")
    p_cmp.add_argument("first")
    p_cmp.add_argument("second")
    p_cmp.add_argument("--sanitize", help="sanitize file (default: notebooks/nbval.cfg)")
    p_cmp.set_defaults(func=_cmd_compare)
