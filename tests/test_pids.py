"""agentops._pids.pid_exists: a live process, a finished one, and one we may not signal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agentops import _pids
from agentops._pids import pid_exists


def test_a_running_process_exists_and_a_reaped_one_does_not() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_exists(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not pid_exists(proc.pid)


def test_a_process_we_may_not_signal_counts_as_existing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_pid: int, _sig: int) -> None:
        raise PermissionError

    monkeypatch.setattr(_pids.os, "kill", refuse)
    assert pid_exists(os.getpid() + 1)
