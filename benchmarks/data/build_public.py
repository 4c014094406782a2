"""Rebuild the public labelled data the guardrail scorecard uses (deterministic, data only).

Each source is a public repository at a pinned commit (see ``DATA_CARD.md`` beside this file). Only
*data* is taken: labelled records from a JSON data set, and the literal test tuples
(``pytest.mark.parametrize`` argument lists) of open-source scanners' test suites, read with
``ast.literal_eval`` — their code is never imported or run. Cases whose arguments are not plain
literals are skipped and counted.

Usage (each argument is a local clone of the repository named in the data card)::

    python benchmarks/data/build_public.py --presidio-research PATH --presidio PATH --detect-secrets PATH

Writes ``benchmarks/data/public/<source>.jsonl`` with one record a line:
``{"id", "text", "entities": [{"type", "start", "end"}], "source", "origin"}`` — the format of
``tests/data/pii_corpus.jsonl``. For secret sources a positive case is labelled with a span covering
the whole test string (the tests say *whether* a string holds a secret, not where).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).parent / "public"

SOURCES = {
    "presidio_research_synth": {
        "repo": "microsoft/presidio-research",
        "commit": "7622dec1e5f7d25dc60b57c28c39f4c4af197018",
        "paths": ["data/synth_dataset_v2.json"],
    },
    "presidio_analyzer_tests": {
        "repo": "microsoft/presidio",
        "commit": "0aa9f8e44275cb52c00fbbebe19168e934e1f076",
        "paths": [
            f"presidio-analyzer/tests/test_{name}_recognizer.py"
            for name in ("email", "phone", "credit_card", "ip", "iban", "url", "us_ssn")
        ],
    },
    "detect_secrets_tests": {
        "repo": "Yelp/detect-secrets",
        "commit": "5e141933554a0b74e7341841f318be21e895339c",
        "paths": [
            f"tests/plugins/{name}_test.py"
            for name in (
                "artifactory", "aws_key", "azure_storage_key", "basic_auth", "cloudant", "discord",
                "github_token", "gitlab_token", "ibm_cloud_iam", "ibm_cos_hmac", "jwt", "mailchimp_key",
                "npm", "openai", "private_key", "pypi_token", "sendgrid", "slack", "softlayer",
                "square_oauth", "stripe_key", "telegram_token", "twilio",
            )
        ],
    },
}  # fmt: skip

# Entity names of the data sets that map onto ours; other labelled types are ignored when scoring.
_SYNTH_TYPES = {
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE",
}  # fmt: skip
_FILE_TYPES = {
    "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "credit_card": "CREDIT_CARD", "ip": "IP_ADDRESS",
    "iban": "IBAN_CODE", "url": "URL", "us_ssn": "US_SSN",
}  # fmt: skip


def _show(clone: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(clone), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _parametrize_cases(source: str) -> Iterator[tuple[list[str], object]]:
    """(argument names, literal case) for every ``pytest.mark.parametrize`` list in a test file."""
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize"):
            continue
        if len(node.args) < 2 or not isinstance(node.args[1], (ast.List, ast.Tuple)):
            continue
        try:
            names = ast.literal_eval(node.args[0])
        except ValueError:
            continue
        names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
        for elt in node.args[1].elts:
            try:
                yield names, ast.literal_eval(elt)
            except ValueError:
                yield names, None  # not a plain literal: skipped, counted


def synth(clone: Path) -> tuple[list[dict], int]:
    spec = SOURCES["presidio_research_synth"]
    rows = json.loads(_show(clone, spec["commit"], spec["paths"][0]))
    out = []
    for i, r in enumerate(rows):
        ents = [
            {"type": s["entity_type"], "start": s["start_position"], "end": s["end_position"]}
            for s in r["spans"]
            if s["entity_type"] in _SYNTH_TYPES
        ]
        out.append({"id": f"prs-{i:04d}", "text": r["full_text"], "entities": ents,
                    "origin": spec["paths"][0]})  # fmt: skip
    return out, 0


def presidio_tests(clone: Path) -> tuple[list[dict], int]:
    spec = SOURCES["presidio_analyzer_tests"]
    out: list[dict] = []
    skipped = 0
    for path in spec["paths"]:
        kind = _FILE_TYPES[path.rsplit("test_", 1)[1].removesuffix("_recognizer.py")]
        for names, case in _parametrize_cases(_show(clone, spec["commit"], path)):
            if case is None or "leniency" in names:
                skipped += 1
                continue
            args = dict(zip(names, case, strict=False))
            text = args.get("text", args.get("iban"))
            positions = args.get("expected_positions", args.get("expected_res"))
            if not isinstance(text, str) or positions is None:
                skipped += 1
                continue
            positions = list(positions)
            if args.get("expected_len") != len(positions):
                skipped += 1
                continue
            ents = [{"type": kind, "start": int(s), "end": int(e)} for s, e in positions]
            out.append({"id": f"pat-{len(out):04d}", "text": text, "entities": ents, "origin": path})
    return out, skipped


def detect_secrets_tests(clone: Path) -> tuple[list[dict], int]:
    spec = SOURCES["detect_secrets_tests"]
    out: list[dict] = []
    skipped = 0
    for path in spec["paths"]:
        for names, case in _parametrize_cases(_show(clone, spec["commit"], path)):
            if case is None or names[:2] != ["payload", "should_flag"]:
                skipped += 1
                continue
            text, flag = case[0], case[1]
            if not isinstance(text, str) or not isinstance(flag, bool) or not text.strip():
                skipped += 1
                continue
            ents = [{"type": "SECRET", "start": 0, "end": len(text)}] if flag else []
            out.append({"id": f"dst-{len(out):04d}", "text": text, "entities": ents, "origin": path})
    return out, skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presidio-research", type=Path, required=True)
    ap.add_argument("--presidio", type=Path, required=True)
    ap.add_argument("--detect-secrets", type=Path, required=True)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    for name, fn, clone in (
        ("presidio_research_synth", synth, args.presidio_research),
        ("presidio_analyzer_tests", presidio_tests, args.presidio),
        ("detect_secrets_tests", detect_secrets_tests, args.detect_secrets),
    ):
        rows, skipped = fn(clone)
        with (OUT / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "source": name}, ensure_ascii=False) + "\n")
        n_ent = sum(len(r["entities"]) for r in rows)
        print(f"{name}: {len(rows)} records, {n_ent} labelled entities, {skipped} non-literal cases skipped")


if __name__ == "__main__":
    main()
