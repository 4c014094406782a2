"""Where a run may write: a directory that is new, empty, an earlier report of ours, or confirmed.

Every refusal is one line naming the path, what is wrong and the fix, raised before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from agentops.errors import ConfigError

INDEX_TITLE = "AG2 AgentOps Cookbook — run report"
"""First heading of every ``index.md`` the runner writes: how a directory is recognised as ours."""


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` holds an ``index.md`` written by this runner."""
    index = path / "index.md"
    try:
        with index.open(encoding="utf-8") as fh:
            return fh.readline().strip() == f"# {INDEX_TITLE}"
    except (OSError, UnicodeDecodeError):
        return False


def _shown(path: str | Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:77]}…"


def check_output_dir(
    output: str | Path, *, force: bool = False, protect: Sequence[Path] = (), create: bool = True
) -> Path:
    """Validate (and, with ``create``, create) the report directory; returns it resolved.

    Accepted: a new directory, an empty one, one holding an earlier report of ours, or any other
    directory when ``force`` is true. Never ``/`` or another filesystem root, a file, or one of
    ``protect`` (the notebooks directory: its chapters would be overwritten by their reports).

    Raises:
        ConfigError: one line naming the path, the problem and the fix.
    """
    raw = _shown(output)
    path = Path(output).expanduser()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"--output {raw} cannot be resolved ({exc}); pass a writable directory such as reports"
        ) from None
    if resolved == Path(resolved.anchor):
        raise ConfigError(
            f"--output {raw} is a filesystem root; pass a directory for the report, e.g. --output reports"
        )
    if any(resolved == Path(p).resolve() for p in protect):
        raise ConfigError(
            f"--output {raw} is the notebooks directory (reports would overwrite the chapters); "
            "pass another directory, e.g. --output reports"
        )
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(
            f"--output {raw} is a file, not a directory; pass a directory for the report, e.g. --output reports"
        )
    if resolved.is_dir():
        if not os.access(resolved, os.W_OK | os.X_OK):
            raise ConfigError(f"--output {raw} is not writable; pass a directory you can write to")
        if not force and any(resolved.iterdir()) and not is_report_dir(resolved):
            raise ConfigError(
                f"--output {raw} is not empty and holds no cookbook report; pass a new or empty directory, "
                "or add --force to write into it"
            )
        return resolved
    if not create:
        parent = next(p for p in resolved.parents if p.exists())
        if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
            raise ConfigError(f"--output {raw} cannot be created in {_shown(parent)}; pass a writable directory")
        return resolved
    try:
        resolved.mkdir(parents=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"--output {raw} cannot be created ({reason}); pass a writable directory such as reports"
        ) from None
    return resolved
