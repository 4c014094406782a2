"""Extract the public Quora question-pair sample `benchmarks/semantic_match.py` measures on (data only).

Source (see ``benchmarks/DATA_CARD.md``): the first 10,000 labelled pairs of the Quora Question Pairs
training set, as committed in the public repository ``Galina-Blokh/quora-question-pair`` at commit
``a305104167bf534ddef6a683a7e6eab1243e8f3c`` (file ``nlp/preprocess2500.csv``). Quora's terms do not
allow redistribution, so the pairs are not committed here: this script reads them from a local clone
and writes ``qqp_10k.tsv`` (``id, question1, question2, is_duplicate``) into the output folder.

    python benchmarks/data/build_qqp.py --clone PATH --out benchmarks/data/public/qqp
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
from pathlib import Path

COMMIT = "a305104167bf534ddef6a683a7e6eab1243e8f3c"
PATH = "nlp/preprocess2500.csv"
MD5 = "2c64623e3a60b650e9d32772fe4b6d7f"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clone", required=True, help="local clone (or bare mirror) of Galina-Blokh/quora-question-pair")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    raw = subprocess.run(["git", "-C", args.clone, "show", f"{COMMIT}:{PATH}"], check=True, capture_output=True).stdout
    digest = hashlib.md5(raw).hexdigest()
    if digest != MD5:
        raise SystemExit(f"{PATH} at {COMMIT[:10]} has md5 {digest}, expected {MD5}")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "qqp_10k.tsv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "question1", "question2", "is_duplicate"])
        for r in rows:
            w.writerow([r["id"], " ".join(r["question1"].split()), " ".join(r["question2"].split()), r["is_duplicate"]])
    print(f"wrote {len(rows)} pairs to {out / 'qqp_10k.tsv'}")


if __name__ == "__main__":
    main()
