"""Whether a process id is in use, without signalling it (``kill(pid, 0)``)."""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """True when a process with ``pid`` exists; one we may not signal (another user's) counts as existing.

    Example:
        >>> pid_exists(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
