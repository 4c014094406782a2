"""Benign sources added in the third round, read by :mod:`build_dataset` (same rows and snapshots).

* ``alpaca_docs``: AlpacaEval (Apache-2.0) ships the answers of many chat models to its 805
  instructions; one model's answers (prose, lists, e-mails, tables, code) stand in for the
  documents and tool results an agent reads, so document-shaped text is not learned as an attack.
* ``alpaca_instructions``: the instructions themselves (ordinary requests).
* ``secret_help``: hand-written benign requests about passwords, secrets and word games
  (``benign_secrets.txt``): the topic of the password-game attacks, asked for ordinary reasons, so the
  model does not learn the word "password" as an attack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

ALPACA_EVAL = ("tatsu-lab/alpaca_eval", "cd543a149df89434d8a54582c0151c0b945c3d20", "Apache-2.0")
DOCS_MODEL = "Meta-Llama-3-70B-Instruct"
SECRETS_FILE = Path(__file__).parent / "benign_secrets.txt"


def alpaca_repo():
    from build_dataset import Repo

    return Repo(*ALPACA_EVAL)


def _outputs(snap) -> list[dict]:
    return json.loads(snap.text(alpaca_repo(), f"results/{DOCS_MODEL}/model_outputs.json"))


def alpaca_docs(snap) -> Iterator[tuple[str, int]]:
    for r in _outputs(snap):
        if 300 <= len(r["output"]) <= 5000:
            yield r["output"], 0


def alpaca_instructions(snap) -> Iterator[tuple[str, int]]:
    for r in _outputs(snap):
        yield r["instruction"], 0


def secret_help(snap) -> Iterator[tuple[str, int]]:
    for line in SECRETS_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield line, 0
