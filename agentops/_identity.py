"""Fail fast when another distribution named ``agentops`` owns the package.

The AgentOps SDK on PyPI is also imported as ``agentops``. Installed into the same environment, its
``__init__`` replaces ours while our submodules stay on disk, so ``import agentops.models`` would run
against a foreign package. Every public module imports this one, which checks the marker our
``__init__`` sets and raises one clear error naming the fix.
"""

from __future__ import annotations

import sys

_FIX = (
    "another distribution named `agentops` (probably the AgentOps SDK) is installed over the "
    "AG2 AgentOps Cookbook. Fix: `pip uninstall -y agentops` then `pip install -e .` from the "
    "cookbook checkout (or use a fresh virtual environment)."
)


def ensure_cookbook_package() -> None:
    """Raise ImportError if the imported top-level ``agentops`` is not this cookbook's package."""
    pkg = sys.modules.get("agentops")
    if pkg is None or getattr(pkg, "__cookbook__", False) is not True:
        origin = getattr(pkg, "__file__", "<unknown>")
        raise ImportError(f"`agentops` imported from {origin} is not the cookbook package: {_FIX}")


ensure_cookbook_package()
