"""Command line: ``python -m agentops {list,run,refresh,compare,eval} ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError


def _cmd_list(args: argparse.Namespace) -> int:
    from agentops.cookbook import discover

    for chapter in discover(args.notebooks):
        print(f"{chapter.name} — {chapter.title}")
        for p in chapter.parameters.values():
            help_text = f"  # {p.help}" if p.help else ""
            print(f"    -p {p.name} <{p.type}>  (default {p.default!r}){help_text}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from agentops.cookbook import run

    params = dict(args.param or [])
    report = run(args.chapters, params, args.output, notebooks_dir=args.notebooks, progress=not args.quiet)
    for r in report.results:
        print(f"{r.status:>6}  {r.chapter:<24} {r.seconds:6.1f} s  → {r.output}")
    print(f"index: {report.index_md} ({report.index_html.name})")
    if not report.ok:
        for f in report.failures:
            where = f"cell {f.failed_cell}" if f.failed_cell is not None else "before any cell ran"
            print(f"error: chapter {f.chapter!r} failed at {where} of {f.output}: {f.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    from agentops.cookbook import refresh

    for path in refresh(args.chapters, notebooks_dir=args.notebooks):
        print(f"executed in place: {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from agentops.cookbook import compare_reports

    differing = 0
    for chapter, cells in compare_reports(args.first, args.second, sanitize=args.sanitize).items():
        print(f"{'same' if not cells else 'DIFFERS':>7}  {chapter}" + (f"  (cells {cells})" if cells else ""))
        differing += bool(cells)
    return 1 if differing else 0


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The CLI parser; the ``eval`` subcommand is registered only when asked for (it imports AG2)."""
    parser = argparse.ArgumentParser(prog="python -m agentops", description="Run and check the AG2 AgentOps Cookbook.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="list chapters and their parameters")
    p_list.add_argument("--notebooks", help="notebooks directory (default: the checkout's notebooks/)")
    p_list.set_defaults(func=_cmd_list)

    p_run = sub.add_parser("run", help="execute chapters with papermill into a report directory")
    p_run.add_argument("chapters", nargs="*", help="chapter names or numbers (default: all)")
    p_run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="set a notebook parameter (validated before anything runs)")
    p_run.add_argument("--output", default="reports", help="report directory (default: reports)")
    p_run.add_argument("--notebooks", help="notebooks directory")
    p_run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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

    if argv[:1] == ["eval"]:
        from agentops.evals import register_cli

        register_cli(sub)
    else:
        sub.add_parser("eval", help="run an eval suite and gate on a baseline (see `eval --help`)")
    if argv[:1] == ["serve-model"]:  # imports AG2 and uvicorn: only when asked for
        from agentops.resilience.server import register_cli as register_serve_model

        register_serve_model(sub)
    else:
        sub.add_parser("serve-model", help="serve the offline model over HTTP with injected faults (see `--help`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AgentOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
