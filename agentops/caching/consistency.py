"""The consistency check a semantic cache runs on top of similarity: two questions that embed close
together must also agree on what makes their answers differ.

"What is the capital of France?" and "What is the capital of Germany?" score 0.66 with MiniLM; two
questions about different amounts, dates or directions can score above 0.9. Similarity says "same
topic"; only an explicit comparison says "same answer". Checked, in order (the first difference is the
reason for a miss):

* **numbers** (digits and number words; "one" and "first" are left out — "which one", "first time" are not
  amounts; letters followed by digits such as F1 or i7 are names) and **units** and currencies next to a
  number ("5 km", "$20" — "how many months" names no unit);
* **dates**: years, months, weekdays and relative days (today, tomorrow, next week...);
* **negation**: one question negated (not, no, never, n't, without...; "or not" excluded), the other not;
* **comparison direction** (more/less, before/after, increase/decrease...) when both questions have one
  and, when both compare two things (than, vs, or), the order of the things compared ("A bigger than B" vs
  "B bigger than A");
* **entities**: capitalised names and acronyms, each of which must appear in the other question.

Hand-written because no light library does this: NER models (spaCy, flair) are heavy downloads and
still do not compare numbers, negation or direction. The rules are conservative: when in doubt, miss
(a miss costs one model call; a wrong hit serves a wrong answer).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Features", "check_consistent", "features"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_NUMBER_WORDS = {
    "zero": 0,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "thousand": 1000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "dozen": 12,
    "half": 0.5,
    "second": 2,
    "third": 3,
}
_UNITS = {
    "%": "percent",
    "percent": "percent",
    "pct": "percent",
    "$": "usd",
    "usd": "usd",
    "dollar": "usd",
    "dollars": "usd",
    "€": "eur",
    "eur": "eur",
    "euro": "eur",
    "euros": "eur",
    "£": "gbp",
    "gbp": "gbp",
    "pound": "gbp",
    "pounds": "gbp",
    "yen": "jpy",
    "km": "km",
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    "mile": "mile",
    "miles": "mile",
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "kg": "kg",
    "kilogram": "kg",
    "kilograms": "kg",
    "lb": "lb",
    "lbs": "lb",
    "celsius": "c",
    "°c": "c",
    "fahrenheit": "f",
    "°f": "f",
    "gb": "gb",
    "mb": "mb",
    "tb": "tb",
    "second": "s",
    "seconds": "s",
    "minute": "min",
    "minutes": "min",
    "hour": "h",
    "hours": "h",
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
    "ms": "ms",
}
_MONTHS = _words(
    "january february march april may june july august september october november december jan feb mar "
    "apr jun jul aug sep sept oct nov dec"
)
_MONTH_NORM = {m: i for i, m in enumerate(_MONTHS[:12])}
_MONTH_NORM.update(
    {
        m: _MONTH_NORM[f]
        for m, f in zip(_MONTHS[12:], [*_MONTHS[:4], *_MONTHS[5:8], _MONTHS[8], *_MONTHS[8:12]], strict=True)
    }
)
_WEEKDAYS = frozenset(_words("monday tuesday wednesday thursday friday saturday sunday"))
_RELATIVE = frozenset(_words("today tomorrow yesterday tonight"))
_NEGATIONS = frozenset(_words("not no never without none nobody nothing neither nor cannot isnt"))
_UP = frozenset(
    _words(
        "more most greater greatest higher highest larger largest bigger biggest above over exceed exceeds "
        "increase increases increased rise rises rose better best faster fastest longer longest after later "
        "heavier older warmer hotter richer max maximum"
    )
)
_DOWN = frozenset(
    _words(
        "less least fewer fewest lower lowest smaller smallest below under decrease decreases decreased fall "
        "falls fell worse worst slower slowest shorter shortest before earlier lighter younger colder cooler "
        "poorer min minimum cheaper cheapest"
    )
)
_STOP_CAPS = frozenset(
    _words(
        "i what which who whom whose when where why how is are was were do does did can could should would "
        "will shall may might must the a an in on at of for to and or but if then than please tell give "
        "show list explain describe name find i'm i've i'd i'll"
    )
)
# letters then a digit (F1, i7, COVID-19) is one name, not a word and a number
_WORD = re.compile(r"[A-Za-z]+\d[\w\-]*|[A-Za-z][A-Za-z'’\-]*|\d[\d,]*(?:\.\d+)?|[%$€£]|°[CcFf]")
_COMPARES = frozenset(_words("than vs versus compared compare or"))
_CURRENCY = frozenset("$€£")


@dataclass(frozen=True)
class Features:
    """What a question says that an answer depends on."""

    numbers: frozenset[float]
    units: tuple[str, ...]
    dates: frozenset[str]
    negated: bool
    direction: frozenset[int]
    entities: tuple[str, ...]
    words: frozenset[str]
    order: tuple[str, ...] = ()  # content words in order (for comparison direction)
    compares: bool = False  # names two things against each other (than, vs, or...)


def _number(tok: str) -> float | None:
    low = tok.lower()
    if low in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[low])
    if tok[0].isdigit():
        try:
            return float(tok.replace(",", ""))
        except ValueError:
            return None
    return None


def _norm(tok: str) -> str:
    low = tok.lower().replace("’", "'")
    return (low[:-2] if low.endswith("'s") else low).strip("'-")


@functools.lru_cache(maxsize=8192)
def features(text: str) -> Features:
    """Extract numbers, units, dates, negation, comparison direction and entities from a question.

    Memoised (a cache checks the same stored questions again and again; :class:`Features` is frozen)."""
    toks = _WORD.findall(text)
    numbers, dates, direction = set(), set(), set()
    units: list[str] = []
    entities: list[str] = []
    negations = 0
    for i, tok in enumerate(toks):
        low = tok.lower().replace("’", "'")
        bare = low[:-2] if low.endswith("'s") else low
        num = _number(tok)
        if tok[0].isdigit() and num is not None and 1900 <= num <= 2100 and "." not in tok and "," not in tok:
            dates.add(f"y{int(num)}")
        elif num is not None:
            numbers.add(num)
        # a unit counts next to a number ("5 km", "$20"): "how many months" asks for one, names none
        after_number = i > 0 and _number(toks[i - 1]) is not None
        before_number = tok in _CURRENCY and i + 1 < len(toks) and _number(toks[i + 1]) is not None
        if bare in _UNITS and (after_number or before_number) and _UNITS[bare] not in units:
            units.append(_UNITS[bare])
        if bare in _MONTH_NORM and (bare != "may" or (tok[0] == "M" and i > 0)):
            dates.add(f"m{_MONTH_NORM[bare]}")
        elif bare in _WEEKDAYS or bare in _RELATIVE:
            dates.add(bare)
        if (bare in _NEGATIONS and not (bare == "not" and i and toks[i - 1].lower() == "or")) or low.endswith("n't"):
            negations += 1  # "whether ... or not" negates nothing
        if bare in _UP:
            direction.add(1)
        elif bare in _DOWN:
            direction.add(-1)
        is_name = tok[0].isupper() and (i > 0 or low not in _STOP_CAPS) and low not in _STOP_CAPS
        if (is_name or (tok.isupper() and len(tok) > 1)) and num is None and bare not in _MONTH_NORM:
            entities.append(_norm(tok))
    words = frozenset(t.lower() for t in toks) | frozenset(_norm(t) for t in toks)
    skip = _STOP_CAPS | _UP | _DOWN | _NEGATIONS
    order = tuple(dict.fromkeys(w for w in map(_norm, toks) if w and w not in skip and _number(w) is None))
    return Features(
        frozenset(numbers),
        tuple(units),
        frozenset(dates),
        negations > 0,
        frozenset(direction),
        tuple(entities),
        words,
        order,
        any(t.lower() in _COMPARES for t in toks),
    )


def _fmt(values: frozenset) -> str:
    return "{" + ", ".join(sorted(f"{v:g}" if isinstance(v, float) else str(v) for v in values)) + "}"


def _entity_in(entity: str, other: Features) -> bool:
    return (
        entity in other.words
        or f"{entity}'s" in other.words
        or any(w.startswith(entity) and len(entity) >= 4 for w in other.words)
    )


def check_consistent(a: str | Features, b: str | Features) -> tuple[bool, str]:
    """``(True, "consistent")`` or ``(False, reason)`` naming the first disagreement."""
    fa = a if isinstance(a, Features) else features(a)
    fb = b if isinstance(b, Features) else features(b)
    if fa.numbers != fb.numbers:
        return False, f"numbers differ: {_fmt(fa.numbers)} vs {_fmt(fb.numbers)}"
    if fa.units != fb.units:
        return False, f"units differ: {list(fa.units)} vs {list(fb.units)}"
    if fa.dates != fb.dates:
        return False, f"dates differ: {_fmt(fa.dates)} vs {_fmt(fb.dates)}"
    if fa.negated != fb.negated:
        return False, "one question is negated and the other is not"
    if fa.direction and fb.direction and fa.direction != fb.direction:
        return False, "comparison direction differs"  # one side comparing and the other not is not a clash
    missing = [e for e in fa.entities if not _entity_in(e, fb)] + [e for e in fb.entities if not _entity_in(e, fa)]
    if missing:
        return False, f"entities differ: {', '.join(dict.fromkeys(missing))}"
    if fa.direction and fa.compares and fb.compares and fa.order != fb.order:
        shared_a = [w for w in fa.order if w in fb.order]
        shared_b = [w for w in fb.order if w in fa.order]
        if shared_a != shared_b:
            return False, "the things compared are in the opposite order"
    return True, "consistent"
