from __future__ import annotations

import os
import re
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
    assert py.replace(" ", "") .startswith("python>=3.") or py.startswith("python=3.")
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
    """The README's code is executed (offline) so it cannot drift from the package."""
    import asyncio
    import textwrap

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    source = "\n".join(b.replace('model_config("openai", "gpt-4o-mini")', 'model_config("offline", seed=1)')
                       for b in blocks)
    namespace: dict = {}
    exec(compile("async def _main():\n" + textwrap.indent(source, "    ") + "\n    return locals()",
                 "README.md", "exec"), namespace)
    result = asyncio.run(namespace["_main"]())
    result["telemetry"].shutdown()
    traces = (tmp_path / "traces.jsonl").read_text()
    assert "invoke_agent support" in traces
    assert "jane@example.com" not in traces and "jane@example.com" not in str(result["reply"].body)
