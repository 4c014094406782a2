"""Command line: ``python -m agentops <command> ...`` (``python -m agentops --help`` lists them).

Each command lives in a module that exposes ``register_cli(subparsers)``, which adds its parser(s)
and sets ``func`` (returning the exit code). :data:`SUBCOMMANDS` maps each name to that module; only
the module of the command being run is imported, so ``--help`` stays fast and ``eval`` alone pays for
importing AG2. Adding a command is one entry here plus ``register_cli`` in its module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": ("agentops.cookbook._cli", "list chapters and their parameters"),
    "run": ("agentops.cookbook._cli", "execute chapters into a report directory (notebooks, HTML, index)"),
    "refresh": ("agentops.cookbook._cli", "re-execute chapters in place (maintainers, before committing)"),
    "compare": ("agentops.cookbook._cli", "check two report directories give the same outputs (after sanitizing)"),
    "eval": ("agentops.evals.cli", "run an eval suite and gate on a baseline (see `eval --help`)"),
    "local-model": ("agentops.local_model", "start, stop or check the local real model server (loopback)"),
    "serve-model": ("agentops.resilience.server", "serve the offline model over HTTP with injected faults"),
    "serve": ("agentops.serve._cli", "serve an agent over REST + A2A on uvicorn (see `serve --help`)"),
}
"""Command name → (module defining ``register_cli``, one-line help shown by ``--help``)."""


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The CLI parser: the requested command's module registers its parser(s); the rest are listed only."""
    parser = argparse.ArgumentParser(prog="python -m agentops", description="Run and check the AG2 AgentOps Cookbook.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    wanted = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    if wanted is not None:
        importlib.import_module(SUBCOMMANDS[wanted][0]).register_cli(sub)
    for name, (_module, help_text) in SUBCOMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2: bad input, nothing done; 128+N: stopped by signal N)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args.func(args) or 0)
    except AgentOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{exc or 'interrupted'}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))


if __name__ == "__main__":
    sys.exit(main())
