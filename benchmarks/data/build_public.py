"""Rebuild the public labelled data the guardrail scorecard uses (deterministic, data only).

Each source is a public repository at a pinned commit (see ``DATA_CARD.md`` beside this file). Only
*data* is taken: labelled records from a JSON data set, and the literal test tuples
(``pytest.mark.parametrize`` argument lists) of open-source scanners' test suites, read with
``ast.literal_eval`` — their code is never imported or run. Cases whose arguments are not plain
literals are skipped and counted.

Usage (each argument is a local clone of the repository named in the data card)::

    python benchmarks/data/build_public.py --presidio-research PATH --presidio PATH --detect-secrets PATH \
        [--trufflehog PATH]

Writes ``benchmarks/data/public/<source>.jsonl`` with one record a line:
``{"id", "text", "entities": [{"type", "start", "end"}], "source", "origin"}`` — the format of
``tests/data/pii_corpus.jsonl``. For secret sources a positive case is labelled with a span covering
the whole test string (the tests say *whether* a string holds a secret, not where).

trufflehog's detector tests (Go, read as data by ``_gotests.py``) do say where: each case's ``want``
lists the secrets a detector must report, and each is labelled at every place it occurs in the input.
A wanted secret that is not a substring (a key id and its secret joined as ``id:secret``, or
``validSid + validKey``) is labelled as its parts; parts that are endpoints or account names (a URL
without credentials, a host name, an e-mail address) are not labelled. A case with an empty ``want`` is
a negative, a case none of whose wanted strings is in its input is skipped and counted. The cases are
split in two sources: detectors of providers the catalogue (``agentops/guardrails/data/secrets.yaml``)
covers, plus the credentials-in-URL detectors the scanner's context rules cover
(``trufflehog_catalogue``); and all other detectors (``trufflehog_other``: providers without a
catalogue entry, where only the keyword and high-entropy rules can help).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _gotests import cases

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
    "trufflehog": {
        "repo": "trufflesecurity/trufflehog",
        "commit": "3ab759fef4bb5935d4fe9ac68b503d05346b8364",
        "paths": ["pkg/detectors/**/*_test.go (not *integration_test.go)"],
    },
}  # fmt: skip

# trufflehog detector folders (under pkg/detectors/) whose provider has a catalogue entry in
# agentops/guardrails/data/secrets.yaml, or whose credential the scanner's URL/connection-string rules cover.
TRUFFLEHOG_COVERED = (
    "aws/access_keys", "aws/session_keys", "azure_storage", "azure_entra/serviceprincipal", "alibaba",
    "digitaloceantoken", "digitaloceanv2", "heroku/v2", "flyio", "databrickstoken", "pulumi", "planetscale",
    "planetscaledb", "doppler", "hashicorpvault", "terraformcloudpersonaltoken", "github/v2", "gitlab/v2",
    "gitlab/v3", "npmtokenv2", "pypi", "rubygems", "artifactory", "artifactoryreferencetoken",
    "atlassian/v2", "postman", "linearapi", "notion", "sentrytoken/v2", "sentryorgtoken", "anthropic",
    "openai", "openaiadmin", "deepseek", "openrouter", "huggingface", "groq", "xai", "replicate", "stripe",
    "square", "squareapp", "shopify", "slack", "slackwebhook", "discordbottoken", "discordwebhook",
    "telegrambottoken", "mailchimp", "sendgrid", "sendinbluev2", "mailgun", "twilio", "twilioapikey",
    "grafana", "grafanaserviceaccount", "newrelicpersonalapikey", "dropbox", "jwt", "privatekey/privatekey",
    # credentials in URLs and connection strings (context rules, not catalogue formats)
    "uri", "postgres", "redis", "mongodb", "jdbc", "ftp", "ldap", "rabbitmq", "sqlserver",
)  # fmt: skip
_ENDPOINT = re.compile(
    r"[a-z][a-z0-9+.-]*://[^@\s]*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|(?:[\w-]+\.)+[a-z]{2,12}(?::\d{1,5})?"
)
_SECRET_FIELD = re.compile(r"key|secret|token|pass|cred|auth", re.I)

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


def _pieces(whole: str, text: str) -> list[str]:
    """A wanted string that is not in ``text`` as the longest substrings of ``text`` it is made of."""
    out, pos = [], 0
    while pos < len(whole):
        n = next((n for n in range(len(whole) - pos, 7, -1) if whole[pos : pos + n] in text), 0)
        if n:
            out.append(whole[pos : pos + n])
        pos += n or 1
    return out


def _json_secrets(whole: str) -> list[str]:
    """The secret-named string values of a wanted string that is a JSON object ({"accountKey": ...})."""
    try:
        obj = json.loads(whole)
    except ValueError:
        return []
    if not isinstance(obj, dict):
        return []
    return [v for k, v in obj.items() if isinstance(v, str) and _SECRET_FIELD.search(k)]


def _spans(text: str, want: tuple[tuple[str, ...], ...]) -> list[tuple[int, int]] | None:
    """Where the wanted secrets are in ``text`` (merged spans), or None when none of them is there."""
    spans = []
    for operands in want:
        whole = "".join(operands)
        parts = [whole] if whole in text else _json_secrets(whole) or [x for op in operands for x in _pieces(op, text)]
        for part in parts:
            if part != whole:
                part = part.strip(" :;|,.\n\t")
                if part.isdigit() or _ENDPOINT.fullmatch(part):
                    continue  # an account number, endpoint or e-mail joined to the secret: not labelled
            if len(part) < 4 or part not in text:
                continue
            start = text.find(part)
            while start >= 0:
                spans.append((start, start + len(part)))
                start = text.find(part, start + 1)
    if not spans:
        return None
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def trufflehog(clone: Path) -> dict[str, tuple[list[dict], str]]:
    """Both trufflehog sources: {name: (records, what was left out)}; identical inputs are kept once."""
    commit = SOURCES["trufflehog"]["commit"]
    listing = subprocess.run(
        ["git", "-C", str(clone), "ls-tree", "-r", "--name-only", commit, "pkg/detectors"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    names = ("trufflehog_catalogue", "trufflehog_other")
    rows: dict[str, list[dict]] = {n: [] for n in names}
    left = {n: {"non-literal": 0, "wanted secret not in the input": 0, "duplicate input": 0} for n in names}
    seen: set[str] = set()
    for path in sorted(p for p in listing if p.endswith("_test.go") and "integ" not in p):
        rel = path.removeprefix("pkg/detectors/")
        if "/" not in rel:
            continue  # the framework's own tests, not a detector's
        covered = any(rel.startswith((c + "/", c + "_")) for c in TRUFFLEHOG_COVERED)
        name = names[0] if covered else names[1]
        found, n_skipped = cases(_show(clone, commit, path))
        left[name]["non-literal"] += n_skipped
        for case in found:
            spans = _spans(case.input, case.want) if case.want else []
            if spans is None or not case.input.strip():
                left[name]["wanted secret not in the input"] += 1
            elif case.input in seen:
                left[name]["duplicate input"] += 1
            else:
                seen.add(case.input)
                ents = [{"type": "SECRET", "start": s, "end": e} for s, e in spans]
                rows[name].append({"id": f"{'thc' if covered else 'tho'}-{len(rows[name]):04d}", "text": case.input,
                                   "entities": ents, "origin": f"{path} :: {case.name}"})  # fmt: skip
    return {n: (rows[n], ", ".join(f"{v} {k}" for k, v in left[n].items()) + " cases left out") for n in names}


def _write(name: str, rows: list[dict], left_out: int | str) -> None:
    with (OUT / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "source": name}, ensure_ascii=False) + "\n")
    n_ent = sum(len(r["entities"]) for r in rows)
    note = f"{left_out} non-literal cases skipped" if isinstance(left_out, int) else left_out
    print(f"{name}: {len(rows)} records, {n_ent} labelled entities; {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presidio-research", type=Path, required=True)
    ap.add_argument("--presidio", type=Path, required=True)
    ap.add_argument("--detect-secrets", type=Path, required=True)
    ap.add_argument("--trufflehog", type=Path, help="a clone of trufflesecurity/trufflehog (optional)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    for name, fn, clone in (
        ("presidio_research_synth", synth, args.presidio_research),
        ("presidio_analyzer_tests", presidio_tests, args.presidio),
        ("detect_secrets_tests", detect_secrets_tests, args.detect_secrets),
    ):
        _write(name, *fn(clone))
    if args.trufflehog is not None:
        for name, (rows, left_out) in trufflehog(args.trufflehog).items():
            _write(name, rows, left_out)


if __name__ == "__main__":
    main()
