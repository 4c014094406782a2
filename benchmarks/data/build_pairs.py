"""Extract the other public labelled pair sets `benchmarks/semantic_match.py` reports on (data only).

Each source is a public repository at a pinned commit (see ``benchmarks/DATA_CARD.md``); only the labelled
pairs are read (``git show COMMIT:PATH``), no code is run. Output: ``<out>/<source>.tsv`` with the columns
``id, question1, question2, is_duplicate`` — the format of ``qqp_10k.tsv`` (see ``build_qqp.py``).

* ``mqp`` — Curai's Medical Question Pairs: 3,048 patient questions, each rewritten by a doctor once with
  the same intent (label 1) and once as a related question whose answer differs (label 0).
* ``mrpc`` — the Microsoft Research Paraphrase Corpus test split (1,725 news sentence pairs), as
  committed in ``galsang/ABCNN``. Sentences, not questions: reported for contrast.

    python benchmarks/data/build_pairs.py --mqp CLONE --mrpc CLONE --out benchmarks/data/public
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
from pathlib import Path

SOURCES = {
    "mqp": ("curai/medical-question-pair-dataset", "6c7f7fd7a53cedc6fec105c0c6cb78f2e9a82cd1", "mqp.csv"),
    "mrpc": ("galsang/ABCNN", "f95b9a171f1d41cb8012af2f69d5d845f5703463", "MSRP_Corpus/msr_paraphrase_test.txt"),
}


def _show(clone: str, commit: str, path: str) -> str:
    raw = subprocess.run(["git", "-C", clone, "show", f"{commit}:{path}"], check=True, capture_output=True).stdout
    print(f"{path} at {commit[:10]}: md5 {hashlib.md5(raw).hexdigest()}")
    return raw.decode("utf-8-sig")


def mqp(clone: str) -> list[tuple[str, str, int]]:
    """(question1, question2, label) rows: ``dr_id, question_1, question_2, label`` without a header."""
    return [(r[1], r[2], int(r[3])) for r in csv.reader(io.StringIO(_show(clone, *SOURCES["mqp"][1:])))]


def mrpc(clone: str) -> list[tuple[str, str, int]]:
    """(sentence1, sentence2, label) rows of the tab-separated test split (header ``Quality #1 ID ...``)."""
    lines = _show(clone, *SOURCES["mrpc"][1:]).splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return [(r[3], r[4], int(r[0])) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mqp", help="clone of curai/medical-question-pair-dataset")
    ap.add_argument("--mrpc", help="clone of galsang/ABCNN")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for name, fn in (("mqp", mqp), ("mrpc", mrpc)):
        clone = getattr(args, name)
        if not clone:
            continue
        rows = fn(clone)
        out = Path(args.out) / name
        out.mkdir(parents=True, exist_ok=True)
        with (out / f"{name}.tsv").open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["id", "question1", "question2", "is_duplicate"])
            for i, (a, b, y) in enumerate(rows):
                w.writerow([i, " ".join(a.split()), " ".join(b.split()), y])
        print(f"wrote {len(rows)} pairs ({sum(r[2] for r in rows)} positive) to {out / f'{name}.tsv'}")


if __name__ == "__main__":
    main()
