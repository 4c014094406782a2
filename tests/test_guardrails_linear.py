"""Linear growth on crafted inputs, counted rather than timed.

For repeated prefixes of the patterns (the inputs that made earlier detectors quadratic), the number of
Python-level and C-level calls made by ``scan`` and ``detect_injection`` must grow in proportion to the
input: 4x the text (from 8 KB), at most about 4x the calls. Every regular expression has bounded quantifiers, so
the work inside one regex call is linear in the characters it is given; a call count that grows
faster than the text would reveal a quadratic loop. Wall-clock ratios (1 MB vs 1 KB) are printed by
``benchmarks/guardrails.py --only linear``.
"""

from __future__ import annotations

import sys

import pytest

from agentops.guardrails import detect_injection, scan

UNITS = [
    "sk-", "ghp_", "glpat-", "xoxb-", "AKIA", "eyJ", "eyJa.eyJb.", "-----BEGIN PRIVATE KEY-----\n", "@", "a@",
    "a:b@", "x:", "::", "0:", "fe80:", "://", "http://", "www.", "1", "1 ", "1.", "1-", "+1 ", "4111 ", "DE89 ",
    "password=", 'api_key="', "Bearer ", "--password ", "%40", "[at]", "\u200b", "\uff11", "AAAA", "ab12",
]  # fmt: skip
INJECTION_UNITS = [
    "![a](http://x?a=", "ignore ", "ignore all previous ", "you are now ", "<|im_start|>", "`", "```",
    "i g n o r e ", "system: ", "aGVsbG8gd29y", "reveal your ", "send the api key to ", "developer mode ",
]  # fmt: skip


def _calls(fn, text: str) -> int:
    count = 0

    def prof(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(prof)
    try:
        fn(text)
    finally:
        sys.setprofile(None)
    return count


def _growth(fn, unit: str, small: int = 8192) -> tuple[int, int]:
    """Calls on ``small`` and on 4x ``small`` characters (8 KB and up: past the lengths at which some
    detectors switch on, so the second is about 4x the first for a linear cost; 16x if quadratic)."""
    a, b = (_calls(fn, (unit * (n // len(unit) + 1))[:n]) for n in (small, 4 * small))
    return a, b


@pytest.mark.parametrize("unit", UNITS)
def test_scan_calls_grow_in_proportion_to_the_text(unit: str) -> None:
    a, b = _growth(scan, unit)
    assert b <= 5 * a + 500, (unit, a, b)


@pytest.mark.parametrize("unit", INJECTION_UNITS)
def test_detect_injection_calls_grow_in_proportion_to_the_text(unit: str) -> None:
    a, b = _growth(detect_injection, unit)
    assert b <= 5 * a + 500, (unit, a, b)
