"""Kernels forked from the pre-warmed zygote: same folder, environment and outputs as a normal launch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from kernel_support import gone, probe_book

import agentops.cookbook._runner as runner_module
from agentops.cookbook import run
from agentops.cookbook._forkserver import OPT_OUT_ENV, ForkedProcess, ForkServer, fork_enabled, fork_provisioner

ROOT = Path(__file__).resolve().parent.parent
ZYGOTE = "_forkserver import main"
ZYGOTE_ARGV = "agentops.cookbook._zygote"  # in the zygote's command line
PROBE = [  # folder, environment, pandas and matplotlib set-up, a figure, who the parent is
    "import os, sys, pandas as pd, matplotlib\nprint(os.getcwd())\nprint(os.environ.get('AO_MARK'), "
    "os.environ.get('MPLBACKEND'))",
    "print(pd.get_option('display.max_columns'), matplotlib.get_backend())",
    "import matplotlib.pyplot as plt\n_ = plt.plot([1, 2])\nplt.show()",
    "import opentelemetry.sdk.metrics._internal.export as otel  # binds sys.stdout at import\n"
    "_ = otel.stdout.write(f'into the notebook, tty={otel.stdout.isatty()}\\n')",
    "import pathlib\nparent = pathlib.Path(f'/proc/{os.getppid()}/cmdline').read_bytes()\n"
    f"print({ZYGOTE_ARGV!r}.encode() in parent, os.getppid(), os.getpgid(0) == os.getpid())",
]


def _book(tmp_path: Path) -> Path:
    return probe_book(tmp_path, PROBE)


def _outputs(out: Path) -> list[list[dict]]:
    cells = json.loads((out / "00_probe.ipynb").read_text())["cells"]
    return [c["outputs"] for c in cells if c["cell_type"] == "code"]


def _last_line(outputs: list[dict]) -> list[str]:
    return "".join(outputs[0]["text"]).split()


def test_fork_enabled_reads_the_argument_then_the_opt_out_variable(monkeypatch):
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    assert fork_enabled() is True and fork_enabled(False) is False
    for off in ("0", "false", "No", " off "):
        monkeypatch.setenv(OPT_OUT_ENV, off)
        assert fork_enabled() is False and fork_enabled(True) is True
    monkeypatch.setenv(OPT_OUT_ENV, "1")
    assert fork_enabled() is True
    monkeypatch.setattr(sys, "platform", "darwin")
    assert fork_enabled(True) is False  # fork without exec is Linux-only here


def test_forked_kernel_matches_a_normal_launch_and_leaves_no_process(tmp_path, monkeypatch):
    book = _book(tmp_path)
    monkeypatch.setenv("AO_MARK", "passed-through")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # dropped for every kernel: figures use the inline backend
    run([], {}, tmp_path / "fork", notebooks_dir=book, progress=False).raise_for_failures()
    monkeypatch.setenv(OPT_OUT_ENV, "0")
    run([], {}, tmp_path / "normal", notebooks_dir=book, progress=False).raise_for_failures()
    forked, normal = _outputs(tmp_path / "fork"), _outputs(tmp_path / "normal")
    cwd, env = "".join(forked[1][0]["text"]).splitlines()
    assert cwd == str(book.resolve()) and env == "passed-through module://matplotlib_inline.backend_inline"
    assert _last_line(forked[2]) == ["20", "module://matplotlib_inline.backend_inline"]
    assert "image/png" in forked[3][0]["data"] and forked[:4] == normal[:4]  # the same figure, byte for byte
    assert forked[4] == normal[4] and _last_line(forked[4]) == ["into", "the", "notebook,", "tty=False"]
    is_forked, zygote, own_group = _last_line(forked[5])
    assert (is_forked, own_group) == ("True", "True") and gone(int(zygote))
    assert _last_line(normal[5])[::2] == ["False", "True"]
    assert os.environ["MPLBACKEND"] == "Agg"


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "raise SystemExit(3)"],
        [sys.executable, "-c", "import threading, time; threading.Thread(target=time.sleep, args=(60,), daemon=True)"
         f".start(); from agentops.cookbook.{ZYGOTE}; main()"],
    ],
    ids=["exits", "threads"],
)  # fmt: skip
def test_a_zygote_that_cannot_fork_falls_back_to_the_normal_launch(tmp_path, monkeypatch, command):
    monkeypatch.setattr(runner_module, "ForkServer", lambda: ForkServer(command=command))
    run([], {}, tmp_path / "out", notebooks_dir=_book(tmp_path), progress=False).raise_for_failures()
    assert _last_line(_outputs(tmp_path / "out")[5])[::2] == ["False", "True"]


@pytest.fixture(scope="module")
def server():
    server = ForkServer().start()
    yield server
    server.close()


def _connection_file(tmp: Path) -> list[str]:
    from jupyter_client.connect import write_connection_file

    path, _ = write_connection_file(str(tmp / "k.json"), ip=str(tmp / "sock"), transport="ipc", key=b"k")
    return [sys.executable, "-m", "ipykernel_launcher", "-f", path]


def test_a_forked_kernel_is_a_popen_in_its_own_session_and_folder(server, tmp_path):
    tmp = Path(tempfile.mkdtemp(prefix="ao-", dir="/tmp"))  # short: the sockets live under it
    try:
        process = server.launch(_connection_file(tmp), dict(server.env), tmp_path)
        assert isinstance(process, ForkedProcess) and process.poll() is None
        assert os.getpgid(process.pid) == process.pid  # setsid() ran before launch() returned
        deadline = time.monotonic() + 30
        while os.readlink(f"/proc/{process.pid}/cwd") != str(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.readlink(f"/proc/{process.pid}/cwd") == str(tmp_path)
        stat = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[1]) == server.pid  # the zygote is the parent, and reaps it
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
        process.terminate()
        assert process.wait(timeout=30) == -signal.SIGTERM == process.returncode
        process.kill()  # already gone: nothing to signal, no error
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def test_launches_the_zygote_cannot_reproduce_return_none(server, tmp_path):
    cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", str(tmp_path / "k.json")]
    assert server.launch([sys.executable, "-m", "other_kernel", "-f", "x"], dict(server.env), tmp_path) is None
    assert server.launch(["/usr/bin/python9", *cmd[1:]], dict(server.env), tmp_path) is None
    assert server.launch(cmd, {**server.env, "PYTHONHASHSEED": "7"}, tmp_path) is None  # imports saw another env
    assert server.launch(cmd, dict(server.env), tmp_path, stdout=subprocess.PIPE) is None
    assert server.usable(cmd, {**server.env, "JPY_PARENT_PID": "1", "MPLBACKEND": "Agg"}, {})  # set per kernel


def test_the_provisioner_is_jupyter_clients_local_one():
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    assert issubclass(fork_provisioner(), LocalProvisioner) and fork_provisioner() is fork_provisioner()


def test_a_signal_kills_forked_kernels_and_the_zygote_and_writes_the_index(tmp_path):
    d = tmp_path / "slow"
    d.mkdir()
    body = "import os, pathlib, time\npathlib.Path(marker).write_text(f'{os.getpid()} {os.getppid()}')\ntime.sleep(300)"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f"marker = {str(tmp_path / 'k.pid')!r}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, d / "00_slow.ipynb")
    marker, out = tmp_path / "k.pid", tmp_path / "out"
    cmd = [sys.executable, "-m", "agentops", "run", "--notebooks", str(d), "--output", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(OPT_OUT_ENV, None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        pids = [int(p) for p in marker.read_text().split()]
        assert ZYGOTE_ARGV in Path(f"/proc/{pids[1]}/cmdline").read_text()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        for pid in pids:
            if not gone(pid, 0):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert "| 00_slow | interrupted |" in (out / "index.md").read_text()
    assert all(gone(pid) for pid in pids), "a kernel or the zygote outlived the run"


def test_a_runner_killed_outright_takes_the_zygote_with_it():
    runner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from agentops.cookbook._forkserver import ForkServer; "
         "s = ForkServer().start(); s._ready.wait(120); print(s.pid, flush=True); time.sleep(300)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        zygote = int(runner.stdout.readline())
    finally:
        runner.kill()
        runner.wait()
    assert gone(zygote, 30)


@pytest.mark.parametrize(("argv", "fork"), [([], None), (["--no-fork"], False)])
def test_the_no_fork_flag_reaches_run(monkeypatch, tmp_path, argv, fork):
    import types

    import agentops.cookbook._cli as cli
    from agentops.__main__ import main

    seen = {}
    report = types.SimpleNamespace(results=[], failures=[], ok=True, index_html=tmp_path / "i.html", index_md=Path("i"))
    monkeypatch.setattr(cli, "run", lambda *_a, **kw: seen.update(kw) or report)
    assert main(["run", "00", "--output", str(tmp_path / "o"), "-q", *argv]) == 0
    assert seen["fork_kernels"] is fork
