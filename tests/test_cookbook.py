from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from kernel_support import gone

import agentops.cookbook._runner as runner_module
from agentops.__main__ import SUBCOMMANDS, build_parser, main
from agentops.cookbook import (
    CLASSIC_TO_V1,
    PROVIDER_PARAMETERS,
    ParameterWarning,
    check_output_dir,
    classic_mapping,
    coerce_parameters,
    discover,
    find_chapters,
    refresh,
    run,
)
from agentops.errors import ChapterFailed, ConfigError, MissingCredentialsError, MissingDependencyError, ParameterError

ROOT = Path(__file__).resolve().parent.parent

PARAMS = 'greeting = "hi"  # one of: hi, hello\ncount = 2\nratio = 0.5\nloud = False'
PROVIDER = "\n".join(
    [
        'llm_backend = "offline"  # one of: offline, openai, compatible, replay',
        'model = "offline-1"',
        'base_url = ""',
        "max_tokens = 0",
        "price_input_per_1k = 0.0",
        "price_output_per_1k = 0.0",
        'cassette = ""',
    ]
)
CANARY = "AKIAIOSFODNN7REALKEY"


def make_notebook(path: Path, body: str, params: str = PARAMS) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Title of {path.stem}"), p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def book(tmp_path: Path) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    make_notebook(d / "00_ok.ipynb", "print(greeting * count, ratio, loud)")
    boom = f"x = 1\nraise ValueError('planned failure key={CANARY}')"
    make_notebook(d / "01_boom.ipynb", boom, PARAMS.replace("ratio = 0.5\n", ""))
    (d / "README.ipynb").write_text("not a chapter")  # ignored: no NN_ prefix
    return d


@pytest.fixture()
def provider_book(tmp_path: Path) -> Path:
    d = tmp_path / "provider_notebooks"
    d.mkdir()
    show = "import os\nprint(llm_backend, model, base_url, os.environ.get('OPENAI_API_KEY'))"
    make_notebook(d / "00_provider.ipynb", show, PROVIDER)
    return d


# --------------------------------------------------------------------------------------------------
# Chapters and parameters
# --------------------------------------------------------------------------------------------------


def test_discover_reads_parameters_types_choices_and_title(book):
    chapters = discover(book)
    assert [c.name for c in chapters] == ["00_ok", "01_boom"]
    ok = chapters[0]
    assert ok.title == "Title of 00_ok"
    assert {n: (p.type, p.default) for n, p in ok.parameters.items()} == {
        "greeting": ("str", "hi"),
        "count": ("int", 2),
        "ratio": ("float", 0.5),
        "loud": ("bool", False),
    }
    assert ok.parameters["greeting"].choices == ("hi", "hello")


def test_find_chapters_by_name_number_or_suffix(book):
    chapters = discover(book)
    assert [c.name for c in find_chapters(["01"], chapters)] == ["01_boom"]
    assert [c.name for c in find_chapters(["ok", "00_ok"], chapters)] == ["00_ok"]
    with pytest.raises(ParameterError, match="unknown chapter 'nope'; available: 00_ok, 01_boom"):
        find_chapters(["nope"], chapters)


def test_coerce_parameters_types_and_errors(book):
    chapters = discover(book)[:1]
    typed = coerce_parameters(chapters, {"count": "3", "ratio": "1", "loud": "yes", "greeting": "hello"})
    assert typed == {"00_ok": {"count": 3, "ratio": 1.0, "loud": True, "greeting": "hello"}}
    assert coerce_parameters(chapters, {"ratio": 2})["00_ok"]["ratio"] == 2.0
    with pytest.raises(ParameterError, match="'count' of chapter '00_ok' must be int"):
        coerce_parameters(chapters, {"count": "many"})
    with pytest.raises(ParameterError, match="must be int"):
        coerce_parameters(chapters, {"count": True})
    with pytest.raises(ParameterError, match="must be bool"):
        coerce_parameters(chapters, {"loud": "maybe"})
    with pytest.raises(ParameterError, match="must be one of hi, hello; got 'yo'"):
        coerce_parameters(chapters, {"greeting": "yo"})
    with pytest.raises(ParameterError, match=r"unknown parameter 'colour'\. Valid parameters — 00_ok: greeting"):
        coerce_parameters(chapters, {"colour": "red"})


def test_long_values_are_truncated_in_messages(book, capsys):
    chapters = discover(book)[:1]
    for params in ({"count": "9" * 5000}, {"greeting": "y" * 5000}, {"z" * 5000: "1"}):
        with pytest.raises(ParameterError) as info:
            coerce_parameters(chapters, params)
        assert len(str(info.value)) < 400 and "(5002 characters)" in str(info.value)
    assert main(["run", "x" * 5000, "--notebooks", str(book)]) == 2
    err = capsys.readouterr().err
    assert len(err) < 300 and err.count("\n") == 1


def test_bad_parameter_executes_nothing(book, tmp_path):
    out = tmp_path / "reports"
    with pytest.raises(ParameterError):
        run(["00"], {"count": "notanumber"}, out, notebooks_dir=book, progress=False)
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# Execution, the report website and the CLI
# --------------------------------------------------------------------------------------------------


def test_run_writes_reports_html_and_index_and_names_failing_cell(book, tmp_path):
    out = tmp_path / "reports"
    params = {"count": "3", "ratio": "1", "greeting": "hello"}
    with pytest.warns(ParameterWarning, match=r"-p 'ratio' applies to 00_ok only; 01_boom does not declare it"):
        report = run([], params, out, notebooks_dir=book, progress=False)
    assert [r.status for r in report.results] == ["passed", "failed"]
    executed = json.loads((out / "00_ok.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("hellohellohello 1.0 False" in "".join(o.get("text", "")) for o in outputs)
    failed = report.failures[0]
    assert failed.chapter == "01_boom" and failed.error == "ValueError: planned failure key=[SECRET]"
    assert failed.failed_cell == 3  # markdown, parameters, injected parameters, failing cell
    with pytest.raises(ChapterFailed, match=r"chapter '01_boom' failed at cell 3: ValueError: planned failure"):
        report.raise_for_failures()
    index = (out / "index.md").read_text()
    assert index.startswith("# AG2 AgentOps Cookbook — run report\n")
    assert "| 00_ok | passed |" in index and "| 01_boom | failed (cell 3) |" in index
    assert "count=3" in index and "| ag2 |" in index and "| nbconvert |" in index
    assert "planned failure key=[SECRET]" in index and CANARY not in index
    # the website: every chapter rendered to HTML and linked from index.html with status and parameters
    assert [r.html.name for r in report.results] == ["00_ok.html", "01_boom.html"]
    assert "hellohellohello" in (out / "00_ok.html").read_text()
    page = (out / "index.html").read_text()
    assert "href='00_ok.html'" in page and "href='01_boom.ipynb'" in page and "Title of 00_ok" in page
    assert "failed (cell 3)" in page and "count=3" in page and "nbconvert" in page and CANARY not in page


def test_cli_exit_codes_and_redacted_errors(book, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "00_ok", "--notebooks", str(book), "--output", str(out), "-q", "-p", "greeting", "<b>"]) == 2
    assert "must be one of hi, hello" in capsys.readouterr().err
    assert main(["run", "00_ok", "--notebooks", str(book), "--output", str(out), "-q", "--no-html"]) == 0
    assert not (out / "00_ok.html").exists() and (out / "00_ok.ipynb").exists()
    assert main(["run", "01", "--notebooks", str(book), "--output", str(out), "-q"]) == 1  # same dir: ours
    err = capsys.readouterr().err
    assert "chapter '01_boom' failed at cell 2" in err  # no -p: no injected cell
    assert "key=[SECRET]" in err and CANARY not in err
    assert main(["run", "--notebooks", str(book), "-p", "count", "x", "--output", str(out)]) == 2
    assert "must be int" in capsys.readouterr().err
    assert main(["list", "--notebooks", str(book)]) == 0
    listing = capsys.readouterr().out
    assert "00_ok — Title of 00_ok" in listing and "-p count <int>  (default 2)" in listing


def test_refresh_executes_in_place_without_papermill_metadata(book):
    refresh(["00"], notebooks_dir=book)
    nb = json.loads((book / "00_ok.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code)
    assert "hihi 0.5 False" in "".join(code[1]["outputs"][0]["text"])
    assert "papermill" not in nb["metadata"]


def test_figures_survive_an_inherited_non_interactive_backend(tmp_path, monkeypatch):
    d = tmp_path / "nb"
    d.mkdir()
    make_notebook(d / "00_plot.ipynb", "import matplotlib.pyplot as plt\n_ = plt.plot([1, 2])\nplt.show()")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run([], {}, tmp_path / "out", notebooks_dir=d, progress=False, render=False).raise_for_failures()
    executed = json.loads((tmp_path / "out" / "00_plot.ipynb").read_text())
    mimes = {m for c in executed["cells"] for o in c.get("outputs", []) for m in o.get("data", {})}
    assert "image/png" in mimes
    assert os.environ["MPLBACKEND"] == "Agg"  # restored for the caller


def test_compare_reports_sanitizes_durations_and_names_differing_cells(book, tmp_path, capsys):
    from agentops.cookbook import compare_reports

    make_notebook(book / "00_ok.ipynb", "print(f'took ⏱ {__import__(\"time\").perf_counter() % 1:.3f} s', greeting)")
    first, second = tmp_path / "a", tmp_path / "b"
    run(["00"], {}, first, notebooks_dir=book, progress=False, render=False)
    run(["00"], {}, second, notebooks_dir=book, progress=False, render=False)
    assert compare_reports(first, second) == {"00_ok": []}  # only the ⏱ duration differed
    assert main(["compare", str(first), str(second)]) == 0
    run(["00"], {"greeting": "hello"}, second, notebooks_dir=book, progress=False, render=False)
    assert compare_reports(first, second) == {"00_ok": [2]}
    assert main(["compare", str(first), str(second)]) == 1
    assert "DIFFERS  00_ok  (cells [2])" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="same executed chapters"):
        compare_reports(first, tmp_path)


def test_compare_reports_ignores_how_the_kernel_chunked_a_stream(tmp_path):
    from agentops.cookbook import compare_reports

    def report(name: str, *chunks: str) -> Path:
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("print('a'); print('b')")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=c) for c in chunks]
        nb.cells = [cell]
        (tmp_path / name).mkdir()
        nbformat.write(nb, tmp_path / name / "00_x.ipynb")
        return tmp_path / name

    one, two, other = report("one", "a\nb\n"), report("two", "a\n", "b\n"), report("other", "a\n", "c\n")
    assert compare_reports(one, two) == {"00_x": []}
    assert compare_reports(one, other) == {"00_x": [0]}


# --------------------------------------------------------------------------------------------------
# The output directory
# --------------------------------------------------------------------------------------------------


def test_output_dir_must_be_new_empty_ours_or_forced(book, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    refusals = {
        str(a_file): "is a file, not a directory; pass a directory for the report",
        "/": "is a filesystem root; pass a directory for the report",
        "/dev/null": "is a file, not a directory",
        "/proc/agentops-report": "cannot be created",
        str(book): "is the notebooks directory (reports would overwrite the chapters)",
    }
    for path, message in refusals.items():
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            check_output_dir(path, force=True, protect=[book])
        assert "\n" not in str(info.value)
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(ConfigError, match=r"is not empty and holds no cookbook report; .* or add --force"):
        check_output_dir(foreign)
    assert check_output_dir(foreign, force=True) == foreign.resolve()
    (foreign / "thesis.tex").unlink()
    (foreign / "index.md").write_text("# My notes\n")  # someone else's index is not ours to overwrite
    with pytest.raises(ConfigError, match="holds no cookbook report"):
        check_output_dir(foreign)
    ours = tmp_path / "old-report"
    ours.mkdir()
    (ours / "index.md").write_text("# AG2 AgentOps Cookbook — run report\n\nChapters: 1\n")
    (ours / "00_ok.ipynb").write_text("{}")
    assert check_output_dir(ours) == ours.resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty) == empty.resolve()
    assert check_output_dir(tmp_path / "new" / "nested").is_dir()
    assert not check_output_dir(tmp_path / "later" / "x", create=False).exists()  # a preflight writes nothing
    with pytest.raises(ConfigError, match="cannot be created"):
        check_output_dir("/dev/null/x", create=False)
    long_file = tmp_path / ("d" * 200)
    long_file.write_text("x")
    with pytest.raises(ConfigError, match=r"^--output \S{77}… is a file"):  # a long path is shortened
        check_output_dir(long_file)


def test_cli_refuses_a_bad_output_before_running_anything(book, tmp_path, capsys):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    assert main(["run", "00", "--notebooks", str(book), "--output", str(foreign), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --output") and "--force" in err and err.count("\n") == 1
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    assert main(["run", "00", "--notebooks", str(book), "--output", "/", "-q"]) == 2
    assert "filesystem root" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Provider parameters: checked before any kernel starts
# --------------------------------------------------------------------------------------------------


def test_missing_key_fails_before_any_kernel_naming_the_variable(provider_book, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "out"
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        run([], {"llm_backend": "openai", "model": "gpt-4o-mini"}, out, notebooks_dir=provider_book)
    argv = ["run", "--notebooks", str(provider_book), "--output", str(out), "-p", "llm_backend", "openai"]
    assert main([*argv, "-p", "model", "gpt-4o-mini"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "set the environment variable OPENAI_API_KEY" in err
    assert not out.exists()  # nothing executed, nothing written


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"llm_backend": "openai"}, "would send the offline model name 'offline-1'"),
        ({"base_url": "http://127.0.0.1:9/v1"}, "needs a real backend (chapter 00_provider runs offline)"),
        ({"llm_backend": "replay"}, "'replay' needs a recorded cassette"),
        ({"llm_backend": "replay", "cassette": "missing.yaml"}, "'missing.yaml' does not exist"),
        ({"price_input_per_1k": "-1"}, "must be a finite USD amount ≥ 0"),
        ({"price_output_per_1k": "nan"}, "must be a finite USD amount ≥ 0"),
        ({"max_tokens": "-5"}, "-p max_tokens -5 (chapter 00_provider) must be ≥ 0"),
    ],
)
def test_provider_parameters_are_checked_before_any_kernel(provider_book, tmp_path, params, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        run([], params, tmp_path / "out", notebooks_dir=provider_book)
    assert not (tmp_path / "out").exists()


def test_real_backend_needs_an_endpoint_a_model_and_the_client(provider_book, tmp_path, monkeypatch):
    import agentops.cookbook._providers as providers

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "out"
    with pytest.raises(ParameterError, match=r"'compatible' needs an endpoint .*add -p base_url https://"):
        run([], {"llm_backend": "compatible", "model": "m"}, out, notebooks_dir=provider_book)
    monkeypatch.setattr(providers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ag2-agentops-cookbook\[openai\]'"):
        run([], {"llm_backend": "openai", "model": "gpt-4o-mini"}, out, notebooks_dir=provider_book)
    assert not out.exists()


def test_real_flag_uses_start_and_stop_and_leaves_a_running_server_alone(monkeypatch):
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "1")  # --real is the opt-in; the server is a stand-in
    from agentops.cookbook import local_model_parameters

    calls = []
    fake = types.SimpleNamespace(
        status=lambda: calls.append("status") or state.get("running"),
        start=lambda: calls.append("start") or {"base_url": "http://127.0.0.1:8/v1", "model": "tiny"},
        stop=lambda: calls.append("stop") or True,
    )
    monkeypatch.setitem(sys.modules, "agentops.local_model", fake)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key")
    for state in ({}, {"running": {"pid": 1}}):
        calls.clear()
        with local_model_parameters() as params:
            assert params == {"llm_backend": "compatible", "base_url": "http://127.0.0.1:8/v1", "model": "tiny"}
            assert os.environ["OPENAI_API_KEY"] == "local-model"  # the real key never reaches the local server
        assert calls == (["status", "start", "stop"] if not state else ["status", "start"])
        assert os.environ["OPENAI_API_KEY"] == "sk-real-key"


def test_real_flag_checks_everything_before_starting_the_server(book, provider_book, tmp_path, monkeypatch, capsys):
    started = []
    fake = types.SimpleNamespace(running=lambda **_: started.append(1))
    monkeypatch.setitem(sys.modules, "agentops.local_model", fake)
    argv = ["run", "--real", "-q", "--notebooks"]
    assert main([*argv, str(book), "--output", str(tmp_path / "o")]) == 2  # these chapters take no provider
    assert "unknown parameter 'llm_backend'" in capsys.readouterr().err
    assert main([*argv, str(provider_book), "--output", "/dev/null"]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert started == [] and not (tmp_path / "o").exists()


def test_real_flag_without_the_local_model_helper_fails_clearly(provider_book, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "1")  # --real is the opt-in; the server is a stand-in
    monkeypatch.setitem(sys.modules, "agentops.local_model", None)  # import fails
    argv = ["run", "--real", "--notebooks", str(provider_book), "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--real needs the local model helper (agentops.local_model)" in capsys.readouterr().err
    assert main([*argv, "-p", "model", "x"]) == 2
    assert "--real chooses llm_backend, base_url and model itself" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_real_flag_runs_every_chapter_against_the_started_local_model(provider_book, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "1")  # --real is the opt-in; the server is a stand-in
    events = []

    @contextmanager
    def running(**_options):
        events.append("start")
        yield types.SimpleNamespace(base_url="http://127.0.0.1:9/v1", model="smollm2")
        events.append("stop")

    monkeypatch.setitem(sys.modules, "agentops.local_model", types.SimpleNamespace(running=running))
    monkeypatch.setattr(runner_module, "check_providers", lambda chapters, typed: events.append(dict(typed)))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "o"
    assert main(["run", "--real", "--notebooks", str(provider_book), "--output", str(out), "-q"]) == 0
    given = {"llm_backend": "compatible", "base_url": "http://127.0.0.1:9/v1", "model": "smollm2"}
    placeholder = {"llm_backend": "compatible", "base_url": "http://127.0.0.1/v1", "model": "local-model"}
    assert events == [{"00_provider": placeholder}, "start", {"00_provider": given}, "stop"]  # checked first
    printed = json.loads((out / "00_provider.ipynb").read_text())["cells"][3]["outputs"][0]["text"]
    assert "".join(printed).strip() == "compatible smollm2 http://127.0.0.1:9/v1 local-model"
    assert "OPENAI_API_KEY" not in os.environ  # restored


def test_every_chapter_declares_the_shared_provider_parameters():
    for c in discover(ROOT / "notebooks"):
        assert set(PROVIDER_PARAMETERS) <= set(c.parameters), (c.name, set(PROVIDER_PARAMETERS) - set(c.parameters))


# --------------------------------------------------------------------------------------------------
# SIGINT / SIGTERM: the kernel stops, the index is written, temporary folders go, exit 130 / 143
# --------------------------------------------------------------------------------------------------


def _slow_book(tmp_path: Path) -> Path:
    d = tmp_path / "slow"
    d.mkdir()
    body = "import os, pathlib, time\npathlib.Path(marker).write_text(str(os.getpid()))\ntime.sleep(300)"
    make_notebook(d / "00_slow.ipynb", body, 'marker = ""')
    make_notebook(d / "01_after.ipynb", "print('never')", 'marker = ""')
    return d


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_kernel_and_still_writes_the_index(tmp_path, signum, code):
    book, out, marker = _slow_book(tmp_path), tmp_path / "out", tmp_path / "kernel.pid"
    tmp = Path(tempfile.mkdtemp(prefix="ao-", dir="/tmp"))  # short: kernel sockets live under it
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "agentops", "run", "--notebooks", str(book), "--output", str(out), "-q", "-j", "1"]
    proc = subprocess.Popen([*cmd, "-p", "marker", str(marker)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    kernel = None
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        kernel = int(marker.read_text())
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        if kernel is not None and not gone(kernel, 0):
            os.kill(kernel, signal.SIGKILL)  # the run failed to stop it: do not leave it behind
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "Task" not in stderr
    assert f"interrupted by {signum.name} during chapter 00_slow; partial report: " in stderr
    index = (out / "index.md").read_text()
    assert "| 00_slow | interrupted |" in index and "| 01_after | not run |" in index
    assert f"stopped by {signum.name}" in index and (out / "index.html").exists()
    assert gone(kernel), "the kernel outlived the run"
    assert not list(tmp.iterdir())
    tmp.rmdir()


def test_refresh_stopped_by_a_signal_leaves_the_chapter_untouched(tmp_path):
    marker = tmp_path / "kernel.pid"
    book = tmp_path / "nb"
    book.mkdir()
    body = "import os, pathlib, time\npathlib.Path(marker).write_text(str(os.getpid()))\ntime.sleep(300)"
    chapter = make_notebook(book / "00_slow.ipynb", body, f"marker = {str(marker)!r}")
    before = chapter.read_bytes()
    cmd = [sys.executable, "-m", "agentops", "refresh", "--notebooks", str(book)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    kernel = None
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        kernel = int(marker.read_text())
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        if kernel is not None and not gone(kernel, 0):
            os.kill(kernel, signal.SIGKILL)
    assert proc.returncode == 143 and stderr.strip() == "interrupted by SIGTERM", stderr
    assert chapter.read_bytes() == before and gone(kernel)


def test_kernel_folders_fall_back_to_tmp_when_tmpdir_is_too_long_for_sockets(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("t" * 80)))
    assert runner_module._kernel_base() == Path("/tmp")
    monkeypatch.setattr(tempfile, "tempdir", "/var/tmp")
    assert runner_module._kernel_base() == Path("/var/tmp")


def test_kernel_folders_of_killed_runs_are_removed_by_the_next_run(tmp_path, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"agentops-kernels-{dead.pid}-abc"
    alive = tmp_path / f"agentops-kernels-{os.getppid()}-abc"  # a live process (our parent): kept
    foreign = tmp_path / "agentops-kernels-xyz"  # not ours to judge: kept
    for d in (stale, alive, foreign):
        (d / "kernel-0").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(runner_module, "_MAX_BASE_BYTES", 4096)
    with runner_module._ipc_kernels() as manager:
        own = Path(manager(kernel_name="python3").ip).parent
        assert own.is_dir() and own.name.startswith(f"agentops-kernels-{os.getpid()}-")
        assert not stale.exists() and alive.exists() and foreign.exists()
    assert not own.exists()


# --------------------------------------------------------------------------------------------------
# The notebooks of this repository, the classic map and the command registry
# --------------------------------------------------------------------------------------------------


def test_every_chapter_has_typed_parameters_and_backend_choices():
    chapters = discover(ROOT / "notebooks")
    assert chapters and chapters[0].name == "00_quickstart"
    for c in chapters:
        assert "llm_backend" in c.parameters and "seed" in c.parameters, c.name
        assert "offline" in c.parameters["llm_backend"].choices
        assert c.parameters["llm_backend"].default == "offline"


def test_every_parameter_line_of_every_chapter_is_understood():
    """papermill silently skips lines it cannot parse (e.g. an '=' in a comment); `-p` would then reject them."""
    for chapter in discover(ROOT / "notebooks"):
        nb = json.loads(chapter.path.read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        assigned = [
            line.split("=", 1)[0].strip()
            for line in "".join(cell["source"]).splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert assigned == list(chapter.parameters), chapter.name


def test_classic_mapping_matches_readme():
    readme = (ROOT / "README.md").read_text()
    assert len(classic_mapping()) == len(CLASSIC_TO_V1)
    for classic, v1, _helper in CLASSIC_TO_V1:
        assert f"| {classic} | {v1} |" in readme, classic


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_name_in_the_classic_map_exists():
    """Dotted ag2/agentops names resolve; capitalised AG2 names are exported by an ag2 module."""
    ag2_modules = [importlib.import_module(m) for m in ("ag2", "ag2.network", "ag2.middleware", "ag2.eval",
                                                         "ag2.config", "ag2.testing")]  # fmt: skip
    checked = 0
    for _classic, v1, helper in CLASSIC_TO_V1:
        for dotted in re.findall(r"\b(?:ag2|agentops)(?:\.\w+)+", f"{v1} {helper}"):
            _resolve(dotted)
            checked += 1
        for name in re.findall(r"(?<![.\w])[A-Z]\w+(?:\.\w+)?", v1):
            head, _, attr = name.partition(".")
            owner = next((getattr(m, head) for m in ag2_modules if hasattr(m, head)), None)
            assert owner is not None and (not attr or hasattr(owner, attr)), f"{name} is not in AG2"
            checked += 1
    assert checked >= 20


def test_every_registered_command_module_registers_its_commands():
    import argparse

    for module_name in {m for m, _help in SUBCOMMANDS.values()}:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module_name).register_cli(sub)
        mine = {name for name, (m, _h) in SUBCOMMANDS.items() if m == module_name}
        assert mine <= set(sub.choices), module_name
    assert set(build_parser(["list"])._subparsers._group_actions[0].choices) == set(SUBCOMMANDS)


def test_main_dispatches_the_eval_gate(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert main(["eval", "demo", "--save-baseline", str(baseline), "--no-progress"]) == 0
    assert main(["eval", "demo", "--baseline", str(baseline), "--no-progress"]) == 0
    assert main(["eval", "demo", "--baseline", str(baseline), "--variant", "regressed", "--no-progress"]) == 1
    assert "regression gate FAILED" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# jobs: chapters run at once, results and the index keep chapter order
# --------------------------------------------------------------------------------------------------


def _rendezvous_book(tmp_path: Path) -> Path:
    """Two chapters that each wait for the other's marker: they finish only if they run at the same time."""
    d = tmp_path / "pair"
    d.mkdir()
    body = (
        "import os, pathlib, time\n"
        "assert pathlib.Path.cwd().name == 'pair', os.getcwd()  # each kernel starts in its chapter's folder\n"
        "assert os.environ.get('MPLBACKEND') != 'Agg', 'a CI backend reached the kernel'\n"
        "pathlib.Path(mine).write_text('here')\n"
        "deadline = time.monotonic() + 60\n"
        "while not pathlib.Path(other).exists():\n"
        "    assert time.monotonic() < deadline, 'the other chapter never ran alongside'\n"
        "    time.sleep(0.05)\n"
        "print('met')"
    )
    a, b = tmp_path / "a.marker", tmp_path / "b.marker"
    make_notebook(d / "00_a.ipynb", body, f"mine = {str(a)!r}\nother = {str(b)!r}")
    make_notebook(d / "01_b.ipynb", body, f"mine = {str(b)!r}\nother = {str(a)!r}")
    make_notebook(d / "02_c.ipynb", "print('last')", "x = 1")
    return d


def test_two_jobs_run_chapters_at_the_same_time_and_keep_their_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # dropped for every kernel, restored afterwards
    report = run([], {}, tmp_path / "out", notebooks_dir=_rendezvous_book(tmp_path), progress=False, jobs=2)
    assert [r.chapter for r in report.results] == ["00_a", "01_b", "02_c"]
    assert [r.status for r in report.results] == ["passed"] * 3, [r.error for r in report.results]
    assert os.environ["MPLBACKEND"] == "Agg"
    index = (tmp_path / "out" / "index.md").read_text()
    assert index.index("| 00_a |") < index.index("| 01_b |") < index.index("| 02_c |")


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "2"])
def test_jobs_must_be_a_positive_whole_number(tmp_path, book, jobs):
    with pytest.raises(ParameterError, match="jobs must be a whole number >= 1"):
        run([], {}, tmp_path / "out", notebooks_dir=book, progress=False, jobs=jobs)
    assert not (tmp_path / "out").exists()


def test_default_jobs_is_one_more_than_the_cores_offline_and_one_with_a_real_model(monkeypatch, book):
    chapters = discover(book)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    offline = {c.name: {} for c in chapters}
    assert runner_module.default_jobs(chapters, offline) == len(chapters) == 2
    assert runner_module.default_jobs(chapters * 3, offline) == 4  # capped
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert runner_module.default_jobs(chapters * 3, offline) == 3  # one more than the cores
    real = {c.name: {"llm_backend": "compatible"} for c in chapters}
    assert runner_module.default_jobs(chapters, real) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert runner_module.default_jobs(chapters, offline) == 1


def test_a_signal_with_two_jobs_interrupts_both_running_chapters(tmp_path):
    d = tmp_path / "slow2"
    d.mkdir()
    body = "import os, pathlib, time\npathlib.Path(marker).write_text(str(os.getpid()))\ntime.sleep(300)"
    markers = [tmp_path / "k0.pid", tmp_path / "k1.pid"]
    make_notebook(d / "00_slow.ipynb", body, f"marker = {str(markers[0])!r}")
    make_notebook(d / "01_slow.ipynb", body, f"marker = {str(markers[1])!r}")
    make_notebook(d / "02_after.ipynb", "print('never')", "x = 1")
    out = tmp_path / "out"
    tmp = Path(tempfile.mkdtemp(prefix="ao-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "agentops", "run", "--notebooks", str(d), "--output", str(out), "-q", "-j", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kernels: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not all(m.exists() and m.read_text() for m in markers) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        kernels = [int(m.read_text()) for m in markers]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        for k in kernels:
            if not gone(k, 0):
                os.kill(k, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted by SIGINT during chapter 00_slow" in stderr
    index = (out / "index.md").read_text()
    assert "| 00_slow | interrupted |" in index and "| 01_slow | interrupted |" in index
    assert "| 02_after | not run |" in index
    assert all(gone(k) for k in kernels)
    assert not list(tmp.iterdir())
    tmp.rmdir()
