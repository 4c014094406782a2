"""Dump, then compare, what ``scan`` and ``rule_score`` return on every text we can gather.

A speed change to the guardrails must not change a single finding or score. Run ``dump`` with the old
package on ``PYTHONPATH`` and ``check`` with the new one::

    PYTHONPATH=/path/to/old python benchmarks/guardrails_outputs.py dump /tmp/before.jsonl
    python benchmarks/guardrails_outputs.py check /tmp/before.jsonl

Texts: the speed benchmark's 1 KB messages, the project's corpora (``tests/data``, the package's data,
``training/injection/heldout.jsonl``), the rebuilt public records (``benchmarks/data/public``, when
present), the linearity benchmark's repeated units at 1 KB, seeded mutations of all of those (Unicode
folding shapes, separators, splices), and any extra JSONL files given with ``--texts`` (one
``{"text": ...}`` a line; ``benchmarks/guardrails_record_texts.py`` collects the texts the test suite
builds, red-team cases included).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # appended: an old tree put first on PYTHONPATH wins

_JSONL = (
    "tests/data/pii_corpus.jsonl",
    "tests/data/injection_corpus.jsonl",
    "agentops/guardrails/data/pii_corpus.jsonl",
    "agentops/guardrails/data/injection_corpus.jsonl",
    "training/injection/heldout.jsonl",
)
_NOISE = [
    "\u200b", "\u00a0", "\uff20", "\uff11", "%40", "%20", "[at]", "[dot]", "(at)", "@", ":", "::", "://", "-",
    "--password ", "=", '"', "'", "`", "```", "\n", "  ", "sk-", "ghp_", "eyJ", "+44 ", "4111 1111 ", "e\u0301",
    "\U000e0069", "\u0430", "I g n o r e ", "aWdub3Jl", "%69gnore", "4 ", "www.", "DE89 ", "fe80::", "10.0.0.",
]  # fmt: skip


def _read_jsonl(path: Path) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            yield json.loads(line)["text"]


def _mutations(texts: list[str], n: int, seed: int = 0) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(n):
        t = rng.choice(texts)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randint(0, len(t))
            if op < 0.5:
                t = t[:i] + rng.choice(_NOISE) + t[i:]
            elif op < 0.8:
                t = t[:i] + " " + rng.choice(texts)[: rng.randint(5, 200)] + " " + t[i:]
            else:
                t = t[:i] + t[i + rng.randint(1, 6) :]
        yield t


def gather(extra: list[Path]) -> list[str]:
    """Every text, de-duplicated, in a stable order."""
    import guardrails as bench  # benchmarks/guardrails.py

    texts: list[str] = []
    rows = bench.load("pii_corpus.jsonl")
    texts += bench.messages(rows, dense=False, n=200) + bench.messages(rows, dense=True, n=150)
    for rel in _JSONL:
        if (ROOT / rel).is_file():
            texts += _read_jsonl(ROOT / rel)
    public = ROOT / "benchmarks" / "data" / "public"
    for path in sorted(public.glob("*.jsonl")) if public.is_dir() else ():
        texts += _read_jsonl(path)
    for path in extra:
        texts += _read_jsonl(path)
    units = bench._adversarial_units() + bench._INJECTION_UNITS
    texts += [(u * (1024 // len(u) + 1))[:1024] for u in units]
    texts += list(_mutations(texts[:], 6000))
    seen: set[str] = set()
    return [t for t in texts if not (t in seen or seen.add(t))]


def outputs(text: str) -> dict:
    from agentops.guardrails import scan
    from agentops.guardrails.injection import normalize, rule_score

    score, reasons = rule_score(text)
    return {
        "scan": [list(f) for f in scan(text)],
        "rule": [score, list(reasons)],
        "norm": normalize(text),
    }


def main() -> None:
    sys.path.insert(1, str(ROOT / "benchmarks"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["dump", "check"])
    ap.add_argument("file", type=Path)
    ap.add_argument("--texts", type=Path, action="append", default=[], help="extra JSONL with a text field")
    args = ap.parse_args()
    import agentops

    print(f"agentops from {Path(agentops.__file__).parent}")
    if args.mode == "dump":
        texts = gather(args.texts)
        with args.file.open("w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t, **outputs(t)}, ensure_ascii=False) + "\n")
        print(f"{len(texts)} texts dumped to {args.file}")
        return
    bad = 0
    n = 0
    for line in args.file.read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        row = json.loads(line)
        got = outputs(row["text"])
        n += 1
        for key in ("scan", "rule", "norm"):
            if got[key] != row[key]:
                bad += 1
                if bad <= 10:
                    print(f"DIFFERENT {key}: {row['text'][:120]!r}\n  before {row[key]}\n  after  {got[key]}")
    print(f"{n} texts compared: {bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
