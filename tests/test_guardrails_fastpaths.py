"""The fast paths of the guardrails give exactly what the slow forms give.

Each shortcut (a rule's substring pre-check, the split/join whitespace fold, the byte-table
pre-checks for base64 and hex runs, the ASCII word split and the scatter dedupe of the classifier)
is checked against the plain form it replaces, on the project's corpora and on generated text.
Speed itself is measured in ``benchmarks/guardrails.py``, not here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.guardrails import classifier as clf
from agentops.guardrails import injection
from agentops.guardrails._normalize import squash_spaces

ROOT = Path(__file__).parents[1]
CORPORA = (
    ROOT / "agentops" / "guardrails" / "data" / "injection_corpus.jsonl",
    ROOT / "training" / "injection" / "heldout.jsonl",
)
_TEXTS = [json.loads(line)["text"] for p in CORPORA for line in p.read_text(encoding="utf-8").splitlines()]


def _variants(text: str) -> list[str]:
    norm = injection.normalize(text)
    code_free = injection._CODE_SPAN.sub(" ", norm)
    encoded = [v for _, v in injection._encoded_variants(text, norm)]
    return [norm, code_free, code_free.translate(injection._LEET), *encoded]


def test_there_is_one_pre_check_per_rule() -> None:
    assert len(injection._TRIGGERS) == len(injection._INJECTION_RULES)


@pytest.mark.parametrize("i", range(len(injection._INJECTION_RULES)), ids=lambda i: injection._INJECTION_RULES[i][0])
def test_a_rule_never_matches_where_its_pre_check_says_it_cannot(i: int) -> None:
    _reason, _w, pattern, _neg = injection._INJECTION_RULES[i]
    matched = 0
    for text in _TEXTS:
        for v in _variants(text):
            if pattern.search(v):
                matched += 1
                assert injection._triggered(injection._TRIGGER_SETS[i], injection._presence(v)), (
                    pattern.pattern[:60],
                    v[:200],
                )
    assert matched >= 1  # every rule is exercised by the corpora


_WORDY = st.text(alphabet=st.sampled_from(list("ignore all previous instructions you are now dan: `\n")), max_size=80)


@settings(max_examples=300, deadline=None)
@given(_WORDY)
def test_pre_checks_hold_on_generated_text(text: str) -> None:
    for v in _variants(text):
        present = injection._presence(v)
        assert present == {w for w in injection._NEEDLES if w in v}  # re2 set or substring search, same answer
        for (_r, _w, pattern, _n), groups in zip(injection._INJECTION_RULES, injection._TRIGGER_SETS, strict=True):
            if pattern.search(v):
                assert injection._triggered(groups, present)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000ab.")), max_size=30))
def test_squash_spaces_is_the_whitespace_regex(text: str) -> None:
    assert squash_spaces(text) == re.sub(r"\s+", " ", text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ09+/= -:.éb\u200b")), max_size=60))
def test_byte_table_pre_checks_never_hide_a_base64_or_hex_run(text: str) -> None:
    if injection._B64.search(text):
        assert injection._long_token(text)
    if injection._HEX_RUN.search(text):
        assert injection._maybe_hex_run(text)
    if injection._SPACED.search(text.lower()):
        assert injection._SPACED_HINT.search(text.lower())


def test_pre_checks_on_known_runs() -> None:
    assert injection._long_token("x " + "QUJD" * 4) and not injection._long_token("short words only " * 20)
    assert injection._maybe_hex_run("49 67 6e 6f 72 65 20 61 6c 6c 20 70 72 65 76")
    assert not injection._maybe_hex_run("a bad face")
    assert injection._SPACED_HINT.search("i g n o r e") and not injection._SPACED_HINT.search("ignore a rule")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**10 - 1), max_size=300))
def test_scatter_dedupe_keeps_each_bucket_once(values: list[int]) -> None:
    arr = np.array(values, dtype=np.uint64)
    assert sorted(clf._first_of_each(arr, 2**10).tolist()) == clf.distinct(arr).tolist()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab09_-.~+/=:% é\u4e2d\n")), max_size=60))
def test_long_runs_are_the_long_run_regex(text: str) -> None:
    from agentops.guardrails._secrets import LONG_RUN, long_runs

    assert long_runs(text) == [m.span() for m in LONG_RUN.finditer(text)]


def test_long_runs_split_a_huge_run_like_the_regex() -> None:
    from agentops.guardrails._secrets import LONG_RUN, long_runs

    text = "a" * 20_000 + " " + "b" * 8_195
    assert long_runs(text) == [m.span() for m in LONG_RUN.finditer(text)]


@pytest.mark.parametrize("text", ["pay to DE89 3704 0044 0532 0130 00", "iban de89370400440532013000 ok"])
def test_iban_pre_check_lets_ibans_through(text: str) -> None:
    from agentops.guardrails import scan

    assert [f.entity_type for f in scan(text)] == ["IBAN_CODE"]
