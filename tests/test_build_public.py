"""benchmarks/data: reading Go detector tests as data, and labelling the wanted secrets' spans."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "data"))

from _gotests import Case, cases
from build_public import _spans

GO = """
package demo

var (
	validPattern   = "tok_4f9Qz7LmP2xW8rK3"
	validKey       = `kq9Z3mW7xP2L`
	invalidPattern = "tok_4f9Qz7LmP2x?8rK3"
	keyword        = "demo"
)

func TestDemo_Verify(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{{name: "not a pattern table", data: "x"}}
	_ = tests
}

func TestDemo_Pattern(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{
			name:  "valid pattern",
			input: fmt.Sprintf("%s token = '%s' and %q", keyword, validPattern, validKey),
			want:  []string{validPattern + validKey},
		},
		{
			name:  "invalid pattern",
			input: fmt.Sprintf("%s = '%s'", keyword, invalidPattern),
			want:  nil,
		},
		{
			name:  "needs a call",
			input: strings.Repeat("a", 3),
			want:  []string{},
		},
	}
}
"""


def test_cases_reads_only_literal_pattern_cases_and_counts_the_rest() -> None:
    found, skipped = cases(GO)
    assert skipped == 1  # strings.Repeat is not evaluated
    assert found == [
        Case("valid pattern", "demo token = 'tok_4f9Qz7LmP2xW8rK3' and \"kq9Z3mW7xP2L\"",
             (("tok_4f9Qz7LmP2xW8rK3", "kq9Z3mW7xP2L"),)),
        Case("invalid pattern", "demo = 'tok_4f9Qz7LmP2x?8rK3'", ()),
    ]  # fmt: skip


def test_spans_label_each_part_where_it_occurs_and_skip_endpoints() -> None:
    text = "id=AKIA2OGYBAH6STMMNXNF key=wJalrXUtnFEMIK7MDENGbPxRfiCY host=api.acme.io again AKIA2OGYBAH6STMMNXNF"
    want = (("AKIA2OGYBAH6STMMNXNF:wJalrXUtnFEMIK7MDENGbPxRfiCY",), ("wJalrXUtnFEMIK7MDENGbPxRfiCYapi.acme.io",))
    key_id, key = "AKIA2OGYBAH6STMMNXNF", "wJalrXUtnFEMIK7MDENGbPxRfiCY"
    ids = [(3, 23), (text.rindex(key_id), text.rindex(key_id) + 20)]
    assert _spans(text, want) == sorted([*ids, (text.index(key), text.index(key) + len(key))])  # not the host
    assert _spans("nothing here", (("tok_4f9Qz7LmP2xW8rK3",),)) is None  # a case left out, not a negative
    assert _spans(text, ((key_id,),)) == ids
