"""Numbers: credit cards, US SSNs, phone numbers, IPv4 addresses and IBANs.

One pass finds runs of digits and separators (spaces, dots, dashes, slashes, parentheses, newlines;
at most 48 characters). A run is classified whole; when it is not one number it is split at its
separators and read left to right, so a list of cards or phone numbers yields every one. Validation is
structural (Luhn and issuer ranges, SSA rules, octet ranges, country calling codes with their national
number lengths from libphonenumber's metadata, ISO 13616 lengths and mod-97) and runs only on
candidates.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

from agentops.guardrails._types import Finding
from agentops.guardrails._validators import _IBAN_LENGTHS, _card_network_ok, _iban_ok, _luhn_ok, _ssn_ok

# A run starts at a digit, "+" or "(" (a character class first lets the engine skip ahead in C); its
# trailing separators are trimmed in Python.
_RUN = re.compile(r"[+(0-9][0-9 ()./\n+-]{5,119}")
_RUN_MAX = 120
_GROUP = re.compile(r"[0-9]{1,19}")
_NO_SEPARATORS = str.maketrans("", "", " ()./\n+-")
_SPACE = re.compile(r"\s{1,8}")
_BAD_BEFORE = frozenset("_.-/#$€£¥&\\")
_LABEL_BEFORE = re.compile(
    r"(?i)(?:tel|phone|mobile|cell|fax|card|cc|ssn|no|nr|num|number|whatsapp|call|sms|iban|ip|host|addr)$"
)
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bv|\bversion|\brelease|\bbuild|\bver\.?|\bchrome|\bfirefox|\bsafari|\bedge|\bopera|\bmsie|"
    r"\bandroid|\bios|\bpython|\bnode|\bkernel|\bsection|\bsec\.|§|\bchapter|\bclause|\bstep|\bfigure|\bfig\.|"
    r"\btable|\bitem|\bpara(?:graph)?|\brule|\barticle|\bart\.|\bappendix|\brfc)\s{0,3}$"
)
_PHONE_CONTEXT = re.compile(r"(?i)(?:phone|call|tel|mobile|cell|fax|sms|text me|whatsapp|reach me|contact|ring)")
_SSN_CONTEXT = re.compile(r"(?i)(?:ssn|social security|soc\.? ?sec)")
_CARD_CONTEXT = re.compile(r"(?i)(?:card|visa|mastercard|amex|credit|debit|cc|pan)")
# The context patterns' words as literals (lower case), for exact pre-checks on ASCII windows: a pattern
# can only match where one of its words occurs (ASCII case folding is what IGNORECASE does on ASCII), so
# the regex runs only then. Non-ASCII windows always go to the regex (its Unicode case folding is wider).
_VERSION_WORDS = (
    "v", "version", "release", "build", "ver", "ver.", "chrome", "firefox", "safari", "edge", "opera", "msie",
    "android", "ios", "python", "node", "kernel", "section", "sec.", "chapter", "clause", "step", "figure",
    "fig.", "table", "item", "para", "paragraph", "rule", "article", "art.", "appendix", "rfc",
)  # fmt: skip
_LABEL_WORDS = (
    "tel", "phone", "mobile", "cell", "fax", "card", "cc", "ssn", "no", "nr", "num", "number", "whatsapp",
    "call", "sms", "iban", "ip", "host", "addr",
)  # fmt: skip
_PHONE_WORDS = ("phone", "call", "tel", "mobile", "cell", "fax", "sms", "text me", "whatsapp", "reach me", "contact",
                "ring")  # fmt: skip
_SSN_WORDS = ("ssn", "soc")
_DATEISH = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_EXTENSION = re.compile(r"[ \t]?(?:x|ext\.?|extension)[ \t]?[0-9]{1,6}(?![0-9A-Za-z])", re.IGNORECASE)
_IPV4_CIDR = re.compile(r"([0-9]{1,3}(?:\.[0-9]{1,3}){3})/([0-9]{1,3})")
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_NANP_GROUPS = frozenset({(10,), (11,), (3, 3, 4), (1, 3, 3, 4), (3, 7), (1, 3, 7)})
_CARD_GROUPS = ((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 2), (4, 4, 4, 3), (4, 4, 4, 1))
_PHONE_LENGTHS: dict[str, frozenset[int]] = {
    cc: frozenset(lengths)
    for cc, lengths in json.loads((Path(__file__).parent / "data" / "phone_lengths.json").read_text(encoding="utf-8"))[
        "lengths"
    ].items()
}


def _version_before(text: str, start: int) -> bool:
    """``_VERSION_BEFORE.search(text, start - 14, start)``: a version or section word just before ``start``."""
    lo = max(0, start - 14)
    seg = text[lo:start]
    if seg.isascii():
        core = seg.rstrip()  # the word, then at most 3 spaces and a final newline ($)
        if len(seg) - len(core) > 4 or not core.lower().endswith(_VERSION_WORDS):
            return False
    return _VERSION_BEFORE.search(text, lo, start) is not None


def _label_before(text: str, start: int) -> bool:
    """``_LABEL_BEFORE.search(text, start - 10, start)``: a label word (``tel``, ``card``) right before ``start``."""
    lo = max(0, start - 10)
    seg = text[lo:start]
    if seg.isascii():
        low = seg.lower()
        if not (low.endswith(_LABEL_WORDS) or (low.endswith("\n") and low[:-1].endswith(_LABEL_WORDS))):
            return False
    return _LABEL_BEFORE.search(text, lo, start) is not None


def _context(rx: re.Pattern[str], words: tuple[str, ...], text: str, lo: int, start: int) -> bool:
    """``rx.search(text, lo, start)``, skipped when an ASCII window holds none of the pattern's words."""
    seg = text[lo:start]
    if seg.isascii():
        low = seg.lower()
        if not any(w in low for w in words):
            return False
    return rx.search(text, lo, start) is not None


def _international_ok(digits: str) -> bool:
    """A country calling code (1-3 digits; E.164 codes are prefix-free) and a national length it allows."""
    for k in (1, 2, 3):
        lengths = _PHONE_LENGTHS.get(digits[:k])
        if lengths is not None:
            rest = digits[k:]
            if rest.startswith("0") and len(rest) - 1 in lengths:  # "+44 (0)20 ..." trunk prefix written
                return True
            return len(rest) in lengths and not rest.startswith("0")
    return False


def _nanp_ok(digits: str) -> bool:
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return False
    # Area code and exchange start with 2-9; N11 service codes are not area codes.
    return digits[0] not in "01" and digits[3] not in "01" and digits[1:3] != "11" and len(set(digits)) > 2


_SPLIT = re.compile(r"([^0-9]+)")


class _Run:
    """A candidate's digit groups and the separators between them."""

    __slots__ = ("digits", "groups", "seps")

    def __init__(self, raw: str) -> None:
        pieces = _SPLIT.split(raw)
        if pieces and pieces[0] == "":
            pieces = pieces[2:]  # a leading "+" or "("
        if pieces and pieces[-1] == "":
            pieces = pieces[:-2]
        numbers = pieces[0::2]
        self.groups = [len(g) for g in numbers]
        self.seps = pieces[1::2]
        self.digits = "".join(numbers)


def _card(raw: str, run: _Run) -> bool:
    d = run.digits
    if not (12 <= len(d) <= 19) or not raw[0].isdigit() or "(" in raw:
        return False
    if len(run.groups) > 1 and (
        tuple(run.groups) not in _CARD_GROUPS or len({s.strip() or " " for s in run.seps}) != 1
    ):
        return False
    return _luhn_ok(d) and _card_network_ok(d)


def _ssn(text: str, raw: str, run: _Run, start: int) -> float | None:
    if len(run.digits) != 9 or not raw[0].isdigit():
        return None
    if run.groups == [3, 2, 4] and len(set(run.seps)) == 1 and run.seps[0] in ("-", " ", ".", "/", "  "):
        sep = True
    elif run.groups == [9]:
        sep = False
    else:
        return None
    d = run.digits
    if not _ssn_ok(d[:3], d[3:5], d[5:]):
        return None
    context = _context(_SSN_CONTEXT, _SSN_WORDS, text, max(0, start - 40), start)
    if sep:
        return 0.95 if run.seps[0] == "-" or context else 0.7  # the 3-2-4 shape is an SSN's own
    return 0.8 if context else None


def _phone(text: str, raw: str, run: _Run, start: int, strict: bool) -> float | None:
    d = run.digits
    if run.groups == [3, 2, 4]:
        return None  # the SSN shape (valid or not)
    lead = raw.lstrip("(")
    international = lead.startswith("+") or (lead.startswith("00") and len(run.groups) > 1)
    if not 7 <= len(d) <= 15 or _DATEISH.fullmatch(raw):
        return None
    if "." in raw and (min(run.groups) < 2 or len(run.groups) > 5):
        return None  # dotted versions (120.0.6099.129) and section numbers are not phone numbers
    if "/" in raw or "\n" in raw:
        return None
    has_sep = len(run.groups) > 1 or "(" in raw
    context = _context(_PHONE_CONTEXT, _PHONE_WORDS, text, max(0, start - 30), start)
    if international:
        ok = _international_ok(d[2:] if lead.startswith("00") else d)
    elif d.startswith("0"):
        ok = 9 <= len(d) <= 11 and (has_sep or context) and d[1] != "0" and not strict
    elif tuple(run.groups) in _NANP_GROUPS and len(run.groups) > 1:
        ok = len(set(d)) > 2  # 415-555-2671, (415)555-2671, 1 415 555 2671
    else:
        ok = _nanp_ok(d) and (has_sep or context) and tuple(run.groups) in _NANP_GROUPS
    if not ok:
        return None
    return 0.85 if has_sep or international else 0.6


def _ipv4(text: str, raw: str, start: int) -> bool:
    if not _IPV4.fullmatch(raw):
        return False
    if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in raw.split(".")):
        return False
    return not _version_before(text, start)


def _classify(text: str, raw: str, start: int, end: int, out: list[Finding], strict: bool = False) -> bool:
    """Validate one candidate; append its finding and return True if it is one."""
    cidr = _IPV4_CIDR.fullmatch(raw) if "/" in raw else None
    if cidr and _ipv4(text, cidr.group(1), start):
        valid_prefix = len(cidr.group(2)) <= 2 and int(cidr.group(2)) <= 32
        out.append(Finding("IP_ADDRESS", start, end if valid_prefix else start + len(cidr.group(1)), 0.95))
        return True
    if raw.count(".") == 3 and _ipv4(text, raw, start):
        n = len(text)
        if end + 1 < n and text[end] == "/" and text[end + 1].isdigit():  # a CIDR prefix
            e = end + 1
            while e < n and e < end + 3 and text[e].isdigit():
                e += 1
            end = e
        out.append(Finding("IP_ADDRESS", start, end, 0.95))
        return True
    if not 7 <= len(raw.translate(_NO_SEPARATORS)) <= 19:
        return False  # no card (12-19 digits), SSN (9) or phone number (7-15) has this many digits
    run = _Run(raw)
    if _card(raw, run):
        out.append(Finding("CREDIT_CARD", start, end, 1.0))
        return True
    score = _ssn(text, raw, run, start)
    if score is not None:
        out.append(Finding("US_SSN", start, end, score))
        return True
    if _version_before(text, start):
        return False
    score = _phone(text, raw, run, start, strict)
    if score is not None:
        ext = _EXTENSION.match(text, end)
        out.append(Finding("PHONE_NUMBER", start, ext.end() if ext else end, score))
        return True
    return False


def _split(text: str, raw: str, start: int, out: list[Finding]) -> None:
    """Read a run that is not one number as several, left to right, longest first.

    A piece spans at most 6 digit groups and holds 4-19 digits (no number we report has more), so
    each group costs a bounded number of checks however long the run.
    """
    spans = [m.span() for m in _GROUP.finditer(raw)]
    # A piece must be delimited by whitespace: "1.2.3.4.5" and ISBN-like "978-4-71-322928-9" hold no number.
    breaks = {0, len(raw)}
    for m in _SPACE.finditer(raw):
        breaks.update(m.span())
    sizes = [e - s for s, e in spans]
    i = 0
    while i < len(spans):
        for j in range(min(len(spans), i + 6), i, -1):
            n_digits = sum(sizes[i:j])
            if not 4 <= n_digits <= 19:
                continue
            s, e = spans[i][0], spans[j - 1][1]
            shape = tuple(sizes[i:j])
            if (
                not (len(shape) == 4 and raw.count(".", s, e) == 3)  # an IPv4 address
                and not (n_digits >= 12 and (len(shape) == 1 or shape in _CARD_GROUPS))
                and shape != (3, 2, 4)  # an SSN
                and shape not in _NANP_GROUPS
                and raw[s - 1 : s] not in ("+", "(")  # an international or bracketed phone number
            ):
                continue  # no number we report has this shape: skip the full check
            if raw[s - 1 : s] in ("+", "("):
                s -= 1
            if raw[e : e + 1] == ")":
                e += 1
            if s not in breaks or e not in breaks:
                continue
            if e - s >= 7 and _classify(text, raw[s:e], start + s, start + e, out, strict=True):
                i = j
                break
        else:
            i += 1


def _start_ok(text: str, start: int, raw: str) -> bool:
    if start == 0:
        return True
    prev = text[start - 1]
    if prev.isspace() or prev in "\"'([{<,;:=>*|":
        return True
    if raw[0] == "+" and prev in ".:":
        return True  # "Tel.+44 ...", "tel:+1..."
    if prev.isalpha():
        return raw[0] == "+" or _label_before(text, start)
    return prev not in _BAD_BEFORE and not prev.isdigit()


# Byte image of the text for finding runs: a run's first characters ("+", "(", digits) -> "d", its other
# characters -> "c", everything else (non-ASCII characters are one "?" each, so offsets are kept) -> ".".
_RUN_IMAGE = bytes(100 if chr(b) in "+(0123456789" else 99 if chr(b) in " )./\n-" else 46 for b in range(256))


def _run_start(image: bytes, pos: int) -> int:
    """Where ``_RUN.search(text, pos)`` matches (-1: nowhere): the first "d" at or after ``pos`` followed by
    five run characters. A "." among those five rules out every start before it, so the search resumes
    after it; memchr does the skipping."""
    n = len(image)
    while True:
        i = image.find(b"d", pos)
        if i == -1 or i + 6 > n:
            return -1
        j = image.find(b".", i + 1, i + 6)
        if j == -1:
            return i
        pos = j + 1


def scan_numbers(text: str, out: list[Finding]) -> None:
    """Cards, SSNs, phone numbers and IPv4 addresses in one pass over runs of digits and separators."""
    n = len(text)
    pos = 0
    image = text.encode("ascii", "replace").translate(_RUN_IMAGE)
    while (i := _run_start(image, pos)) != -1:
        m = _RUN.match(text, i)
        start, raw = m.start(), m.group()
        pos = m.end()
        if len(raw) >= _RUN_MAX:  # a long run: read it up to its last whitespace, continue from there
            cut = max(raw.rfind(" "), raw.rfind("\n"))
            if cut > 0:
                raw = raw[:cut]
                pos = start + cut
        plus = raw.find("+", 1)
        if plus != -1 and raw[:2] != "(+":  # a second number starts at its "+"
            raw = raw[:plus]
            pos = start + plus
        raw = raw.rstrip(" ()./\n+-")
        end = start + len(raw)
        if len(raw.translate(_NO_SEPARATORS)) < 4:  # fewer than 4 digits
            continue
        if not _start_ok(text, start, raw):
            while pos < n and not text[pos].isspace():  # inside a longer token: skip to its end
                pos += 1
            continue
        nxt = text[end] if end < n else " "
        if nxt.isalnum() or nxt in "_@" or (nxt in ".:/-" and end + 1 < n and text[end + 1].isalnum()):
            if raw.count(".") == 3 and nxt in ":/" and _classify(text, raw, start, end, out):
                continue  # an IPv4 address with a port or a CIDR suffix
            if not (nxt in "xXe" and _EXTENSION.match(text, end)):
                while pos < n and not text[pos].isspace():
                    pos += 1
                continue
        if raw[0] == "(" and ")" not in raw[1:]:
            raw, start = raw[1:], start + 1
        if not _classify(text, raw, start, end, out) and len(raw) > 8:
            _split(text, raw, start, out)


# -- IBAN ---------------------------------------------------------------------------------------------

# Byte image of the text for a quick IBAN pre-check: upper-case letter -> "A", lower -> "a", digit -> "d".
_SHAPE = bytes(65 if 65 <= b <= 90 else 97 if 97 <= b <= 122 else 100 if 48 <= b <= 57 else 46 for b in range(256))
_IBAN_HEAD = re.compile(r"[A-Z]{2}[0-9]{2}(?=[ \-.]?[A-Za-z0-9])")
_IBAN_HEAD_ANY_CASE = re.compile(r"[A-Za-z]{2}[0-9]{2}(?=[ \-.]?[A-Za-z0-9])")
# After the head, an IBAN of a country's length: exactly that many more characters, each after at most one
# separator (one pattern per length; a fixed count, so no backtracking beyond one character).
_IBAN_BODY = {
    want: re.compile(rf"(?:[ \-.]?[A-Za-z0-9]){{{want - 4}}}") for want in sorted(set(_IBAN_LENGTHS.values()))
}
_NO_IBAN_SEPARATORS = str.maketrans("", "", " -.")
_HEAD_SHAPES = (b"AAdd", b"Aadd", b"aAdd", b"aadd")


def _places(shape: bytes, needles: tuple[bytes, ...]) -> list[int]:
    """Sorted offsets in ``shape`` where one of ``needles`` starts."""
    found: list[int] = []
    for needle in needles:
        i = shape.find(needle)
        while i != -1:
            found.append(i)
            i = shape.find(needle, i + 1)
    return sorted(found)


def scan_ibans(text: str, out: list[Finding]) -> None:
    """IBANs grouped by spaces, dashes or dots in any way; the country fixes the length. Lower-case IBANs
    are looked for only where the text says "iban" (an upper-case start lets the engine skip ahead)."""
    n = len(text)
    shape = text.encode("ascii", "replace").translate(_SHAPE)  # two letters then two digits, or no IBAN
    upper = b"AAdd" in shape
    if not upper and not any(map(shape.__contains__, (b"Aadd", b"aAdd", b"aadd"))):
        return
    any_case = "iban" in text or "IBAN" in text or "Iban" in text
    if not (upper or any_case):
        return
    head = _IBAN_HEAD_ANY_CASE if any_case else _IBAN_HEAD
    # A head's four characters are two letters and two digits: it can start only where the shape says so
    # (offsets agree: one byte per character), so the pattern is tried there and nowhere else.
    places = _places(shape, _HEAD_SHAPES if any_case else _HEAD_SHAPES[:1])
    for m in filter(None, map(head.match, itertools.repeat(text), places)):
        if m.start() and text[m.start() - 1].isalnum():
            continue
        want = _IBAN_LENGTHS.get(m.group()[:2].upper())
        if want is None:
            continue
        body = _IBAN_BODY[want].match(text, m.end())  # the rest: one separator at most before each character
        if body is None:
            continue
        i = body.end()
        if i < n and text[i].isascii() and text[i].isalnum():
            continue
        whole = text[m.start() : i]
        if not (whole.isupper() or whole.islower()):
            continue  # mixed case inside one IBAN ("LV80 bANK ...") is not how anyone writes one
        if _iban_ok(whole.translate(_NO_IBAN_SEPARATORS).upper()):
            out.append(Finding("IBAN_CODE", m.start(), i, 1.0))
