from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_is_consistent_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert py.replace(" ", "").startswith("python>=3.") or py.startswith("python=3.")
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "pip" in env["dependencies"]
    # The pip section installs this package (with extras) so pyproject stays the single source of deps.
    local = [p for p in pip_section if p.startswith("-e")]
    assert local, "environment.yml must install the cookbook itself with pip -e"
    extras = set(re.search(r"\[(.*)\]", local[0]).group(1).split(","))
    assert extras <= set(project["optional-dependencies"]), extras
    assert {"dev", "lab"} <= extras
    # Anything else pinned in environment.yml must be a declared dependency, not a second source of truth.
    declared = {_name(d) for d in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {_name(d) for d in extra}
    others = [p for p in pip_section if not p.startswith("-e")]
    conda = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))]
    for dep in others + conda:
        assert _name(dep) in declared, f"{dep} is in environment.yml but not in pyproject.toml"


def test_pyproject_declares_design_card_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(d) for d in project["dependencies"]}
    assert {"ag2", "papermill", "nbval", "pandas", "matplotlib"} <= names
    assert project["name"] != "agentops"
    assert "jupyterlab" in {_name(d) for d in project["optional-dependencies"]["lab"]}
    assert "jupyterlab" not in names  # kept out of CI: it slows every kernel's jsonschema import
    ag2 = next(d for d in project["dependencies"] if d.startswith("ag2"))
    assert ">=1.2.1" in ag2 and "<2" in ag2


def test_foreign_agentops_package_is_refused_with_the_fix(tmp_path):
    """Simulate the AgentOps SDK's __init__ installed over ours: our modules refuse to run."""
    pkg = tmp_path / "agentops"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VERSION = 'sdk'\n")
    for name in ("_identity.py", "errors.py", "models.py"):
        (pkg / name).write_text((ROOT / "agentops" / name).read_text())
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", "import agentops.models"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "is not the cookbook package" in proc.stderr and "pip uninstall -y agentops" in proc.stderr


def test_import_agentops_is_cheap_and_does_not_import_ag2():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, agentops; print('ag2' in sys.modules)"], capture_output=True, text=True
    )
    assert proc.stdout.strip() == "False"


def test_gitignore_covers_generated_files():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"reports/", ".venv/", "__pycache__/"} <= set(ignored)


def test_readme_python_examples_run_offline(tmp_path, monkeypatch):
    """Every README python block runs as written, in order, in one namespace (offline).

    A block with top-level ``await`` runs the way the README tells a script to: through ``asyncio.run``.
    """
    import ast
    import asyncio
    import inspect

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    intro = readme[readme.index("## Using `agentops` in your own AG2 app") : readme.index("```python")]
    assert "asyncio.run" in intro and "notebook" in intro  # the first snippet says how to run it
    real = 'model_config("openai", "gpt-4o-mini")'
    assert sum(b.count(real) for b in blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        source = block.replace(real, 'model_config("offline", seed=1)')
        code = compile(source, f"README.md python block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, namespace))
        else:
            exec(code, namespace)
    namespace["telemetry"].shutdown()
    traces = (tmp_path / "traces.jsonl").read_text()
    assert "invoke_agent support" in traces
    assert "jane@example.com" not in traces and "jane@example.com" not in str(namespace["reply"].body)


def test_readme_commands_exist():
    """Every `python -m agentops ...` line parses with the real CLI; every `make X` is a Makefile target."""
    import shlex

    from agentops.__main__ import build_parser

    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"python -m agentops (.+)", readme)
    assert len(lines) >= 6
    for line in lines:
        argv = shlex.split(line.split("`")[0].rstrip(" \\)"), comments=True)  # continued lines and $(...) substitutions
        build_parser(argv).parse_args(argv)  # SystemExit on an unknown command or option
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    used = set(re.findall(r"\bmake ([a-z][a-z-]*)", readme))
    assert used and used <= targets, used - targets


# --------------------------------------------------------------------------------------------------
# The Makefile on a fresh machine: `make system-deps` with a PATH that has no redis-server, promtool
# or sudo, and a stub apt-get that records its arguments and "installs" the two tools.
# --------------------------------------------------------------------------------------------------

_APT_GET = """#!{python}
import json, os, sys
bin_dir = os.path.dirname(os.path.abspath(__file__))
with open(os.environ["APT_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "frontend": os.environ.get("DEBIAN_FRONTEND"),
                          "via_sudo": os.environ.get("VIA_SUDO") == "1"}}) + "\\n")
if "install" in sys.argv:
    for tool in ("redis-server", "promtool"):
        path = os.path.join(bin_dir, tool)
        with open(path, "w") as fh:
            fh.write("#!/bin/sh\\n")
        os.chmod(path, 0o755)
"""
_SUDO = """#!{python}
import os, sys
os.environ["VIA_SUDO"] = "1"
os.execvp(sys.argv[1], sys.argv[1:])
"""


def _stub_bin(tmp_path: Path, uid: int, *, sudo: bool, installed: bool = False) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"apt-get": _APT_GET, "id": f"#!/bin/sh\necho {uid}\n"}
    if sudo:
        scripts["sudo"] = _SUDO
    if installed:
        scripts |= {"redis-server": "#!/bin/sh\n", "promtool": "#!/bin/sh\n"}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text.format(python=sys.executable) if "{python}" in text else text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "env").symlink_to(shutil.which("env"))
    return bin_dir


def _system_deps(tmp_path: Path, bin_dir: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    make = shutil.which("make")
    assert make, "GNU make is needed (the README's commands are make targets)"
    log = tmp_path / "apt.log"
    env = {"PATH": str(bin_dir), "APT_LOG": str(log), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [make, "-s", "-f", str(ROOT / "Makefile"), "system-deps"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


_INSTALL = ["install", "-y", "-qq", "--no-install-recommends", "redis-server", "prometheus"]


def test_system_deps_as_root_without_sudo_installs_with_apt_get(tmp_path):
    proc, calls = _system_deps(tmp_path, _stub_bin(tmp_path, 0, sudo=False))
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in calls] == [["update", "-qq"], _INSTALL]
    assert calls[1]["frontend"] == "noninteractive" and not any(c["via_sudo"] for c in calls)
    assert "sudo" not in proc.stdout + proc.stderr


def test_system_deps_for_a_user_goes_through_sudo(tmp_path):
    proc, calls = _system_deps(tmp_path, _stub_bin(tmp_path, 1000, sudo=True))
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in calls] == [["update", "-qq"], _INSTALL]
    assert all(c["via_sudo"] for c in calls) and calls[1]["frontend"] == "noninteractive"


def test_system_deps_without_root_or_sudo_fails_with_the_fix(tmp_path):
    proc, calls = _system_deps(tmp_path, _stub_bin(tmp_path, 1000, sudo=False))
    assert proc.returncode != 0 and calls == []
    assert "installing them needs root: run make as root, install sudo, or install" in proc.stderr
    assert "command not found" not in proc.stderr


def test_system_deps_installs_nothing_when_both_tools_are_present(tmp_path):
    proc, calls = _system_deps(tmp_path, _stub_bin(tmp_path, 1000, sudo=False, installed=True))
    assert proc.returncode == 0 and calls == [], proc.stderr


def test_make_test_fails_when_nothing_is_collected(tmp_path):
    """pytest's exit 5 ("no tests collected") must fail `make test`, so CI cannot pass on nothing."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "notebooks").mkdir()
    proc = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "-o", "setup", "-o", "services", f"PY={sys.executable}", "test"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "pytest collected no tests (exit 5): nothing was checked" in proc.stderr


def test_make_test_runs_doctests_and_lint_checks_formatting():
    commands = subprocess.run(
        ["make", "-n", "-o", "setup", "-o", "services", "test", "lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--doctest-modules agentops" in commands and "tests notebooks --nbval" in commands
    assert "ruff check agentops tests benchmarks" in commands
    assert "ruff format --check agentops tests benchmarks" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make lint test" in ci
