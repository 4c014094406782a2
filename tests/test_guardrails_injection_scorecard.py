"""agentops.guardrails.injection_scorecard: the shipped cross-source table, read as a frame."""

from __future__ import annotations

import json
import math

import pytest

from agentops.errors import ConfigError
from agentops.guardrails import injection_scorecard
from agentops.guardrails.evaluation import INJECTION_CROSSVAL


def test_every_source_has_one_row_per_scorer_with_the_stored_rates():
    table = json.loads(INJECTION_CROSSVAL.read_text())
    frame = injection_scorecard()
    assert len(frame) == 3 * len(table["sources"])
    assert set(frame.scorer) == {"rules", "classifier", "both"}
    row = frame[(frame.source == "giskard") & (frame.scorer == "both")].iloc[0]
    assert row.tpr_fpr10 == table["sources"]["giskard"]["both"]["tpr_fpr10"]
    assert row.attacks == table["sources"]["giskard"]["n_attack"]


def test_sources_looked_at_while_designing_are_not_called_unseen(tmp_path):
    path = tmp_path / "cv.json"
    path.write_text(
        json.dumps(
            {
                "seen_while_designing": ["a"],
                "sources": {
                    "a": {"kind": "attack", "n_attack": 4, "both": {"tpr_fpr10": 0.5}},
                    "b": {"kind": "benign", "n_benign": 9, "both": {"fpr_at_threshold": 0.1}},
                },
            }
        )
    )
    frame = injection_scorecard(path).set_index(["source", "scorer"])
    assert not frame.loc[("a", "both"), "unseen"] and frame.loc[("b", "both"), "unseen"]
    assert frame.loc[("a", "both"), "tpr_fpr10"] == 0.5
    assert frame.loc[("b", "both"), "fpr_at_threshold"] == 0.1
    assert math.isnan(frame.loc[("a", "rules"), "tpr_fpr10"])  # a scorer the table lacks is empty, not invented


@pytest.mark.parametrize("content", [None, "not json", '{"no": "sources"}'])
def test_a_missing_or_foreign_table_is_a_config_error_naming_the_rebuild(tmp_path, content):
    path = tmp_path / "cv.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=r"train\.py --crossval"):
        injection_scorecard(path)
