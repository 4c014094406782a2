"""Undoing what hides an injection from the rules: Unicode folding and encoded payloads.

:func:`normalize` folds compatibility forms, look-alike letters, Unicode tag characters, zero-width
characters and spaced-out letters; :func:`_encoded_variants` recovers text hidden by URL-encoding, hex,
rot13, reversal and (nested) base64. Hand-written: the rules need these exact foldings, on the hot path,
with byte-image shortcuts that keep them linear in the text's length.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import urllib.parse

from agentops.guardrails._normalize import squash_spaces

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"))
# Letters that render like Latin ones (Cyrillic, Greek, a few symbols); NFKC handles full-width forms.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h",
    "ӏ": "l", "ԛ": "q", "ԝ": "w", "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ѵ": "v", "ɑ": "a", "ı": "i", "ℓ": "l",
})  # fmt: skip
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_LEET_CHARS = "013457@$!"
_LEET_BYTES = bytes.maketrans(b"013457@$!", b"oieastasi")


def _leet(t: str) -> str:
    """``t.translate(_LEET)``; through bytes when ``t`` is ASCII (a table look-up per byte)."""
    return t.encode("ascii").translate(_LEET_BYTES).decode("ascii") if t.isascii() else t.translate(_LEET)


_SPACED = re.compile(r"(?<![^\W_])(?:[^\W\d_][ .\-_*/|]{1,3}){3,200}[^\W\d_](?![^\W_])")
# A spaced-out run (4+ single letters between separators) always holds "sep letter sep{1,3} letter sep":
# this pattern starts with a character set, so the regex engine skips ahead to separators quickly.
_SPACED_HINT = re.compile(r"[ .\-_*/|][^\W\d_][ .\-_*/|]{1,3}[^\W\d_][ .\-_*/|]")
# On ASCII text the hint is found on a byte image (separators -> "s", letters -> "l", other bytes -> "o"):
# the same places, without the Unicode category checks at every separator.
_SPACED_IMAGE = bytes(
    115 if chr(b) in " .-_*/|" else 108 if chr(b).isascii() and chr(b).isalpha() else 111 for b in range(256)
)
_SPACED_HINT_IMAGE = re.compile(rb"sls{1,3}ls")


def _spaced_hint(t: str) -> bool:
    """``_SPACED_HINT.search(t) is not None``, on a byte image when ``t`` is ASCII.

    On the image the hint is one of three substrings ("sl", one to three "s", "ls"): three ``in``
    tests are cheaper than the regex, which stops at every separator.
    """
    if t.isascii():
        image = t.encode("ascii").translate(_SPACED_IMAGE)
        return b"slsls" in image or b"slssls" in image or b"slsssls" in image
    return _SPACED_HINT.search(t) is not None


_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,4096}={0,2}(?![A-Za-z0-9+/=])")
_LETTERS_ONLY = re.compile(r"[^a-z]+")


# Unicode tag characters (U+E0020-E007E) spell ASCII invisibly; models read them, people don't see them.
_TAGS = {c: c - 0xE0000 for c in range(0xE0020, 0xE007F)}


def normalize(text: str) -> str:
    """Fold text for injection matching: NFKC, confusables, tag characters spelled out, zero-width removed,
    spaced letters joined.

    Example:
        >>> normalize("I g n o r e  previous")
        'ignore previous'
    """
    return _normalize(text)[0]


def _normalize(text: str) -> tuple[str, bool]:
    """:func:`normalize` and whether the spaced-letter hint held on the folded text."""
    if text.isascii():  # tag, zero-width and confusable characters are all outside ASCII
        t = text.lower()
    else:
        t = unicodedata.normalize("NFKC", text.translate(_TAGS)).translate(_ZERO_WIDTH).lower().translate(_CONFUSABLES)
    hint = _spaced_hint(t)
    if hint:
        t = _SPACED.sub(lambda m: re.sub(r"[ .\-_*/|]", "", m.group()), t)
    return squash_spaces(t), hint


_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}[ :]?){12,2048}(?![0-9A-Za-z])")
# Hex digits, space and colon -> "h", every other byte -> ".": a hex run is a run of 24+ "h".
_HEXISH = bytes(104 if chr(b) in "0123456789abcdefABCDEF :" else 46 for b in range(256))


def _maybe_hex_run(text: str) -> bool:
    """False when ``text`` cannot hold a :data:`_HEX_RUN` (no 24 consecutive hex/space/colon characters)."""
    return b"h" * 24 in text.encode("utf-8", "surrogatepass").translate(_HEXISH)


def _hex_runs(text: str) -> list[re.Match[str]]:
    """``list(_HEX_RUN.finditer(text))``; on ASCII text the pattern runs only over the byte image's runs of
    24+ "h" (every match lies inside one; the window keeps the character after it for the look-ahead)."""
    if not text.isascii():
        return list(_HEX_RUN.finditer(text)) if _maybe_hex_run(text) else []
    image = text.encode("ascii").translate(_HEXISH)
    n = len(text)
    found: list[re.Match[str]] = []
    s = image.find(_H24)
    while s != -1:  # the first 24 "h" after a "." start a run (the image holds only "h" and ".")
        e = image.find(b".", s)
        if e == -1:
            e = n
        found.extend(_HEX_RUN.finditer(text, s, min(n, e + 1)))
        s = image.find(_H24, e)
    return found


_H24 = b"h" * 24


# Base64 characters -> "b", every other byte -> ".".
_B64ISH = bytes(98 if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "+/") else 46 for b in range(256))


def _long_token(text: str, n: int = 16) -> bool:
    """False when ``text`` has no run of ``n`` base64 characters (so no :data:`_B64` token)."""
    return len(text) >= n and b"b" * n in text.encode("utf-8", "surrogatepass").translate(_B64ISH)


_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM"
)
# Words an instruction override nearly always contains; an encoded variant is scored only if it has one.
_MARKERS = ("instruction", "ignore", "prompt", "system", "disregard", "previous", "reveal", "jailbreak")
_MARKERS_ROT13 = tuple(w.translate(_ROT13) for w in _MARKERS)
_MARKERS_REV = tuple(w[::-1] for w in _MARKERS)


def _encoded_variants(
    text: str, norm: str, decoded: list[str] | None = None, present: frozenset[str] | None = None
) -> list[tuple[str, str]]:
    """Readable forms of text hidden by encoding: URL-encoding, hex, rot13, reversal, nested base64.

    ``decoded`` is :func:`_b64_decoded` of ``text`` and ``present`` is :data:`_VARIANT_NEEDLES` of
    ``norm`` when the caller already has them.
    """
    out: list[tuple[str, str]] = []
    if "%" in text:
        decoded = urllib.parse.unquote(text)
        if decoded != text:
            out.append(("url-encoded ", normalize(decoded)))
    for m in _hex_runs(text):
        try:
            decoded = bytes.fromhex(re.sub(r"[ :]", "", m.group())).decode("utf-8")
        except ValueError:
            continue
        if decoded.isprintable():
            out.append(("hex ", normalize(decoded)))
    # A marker in the rot13 (reversed) text is the marker's rot13 (reversal) in ``norm``: test that
    # first and build the variant only when it is there.
    contains = norm.__contains__ if present is None else present.__contains__
    if (any(map(contains, _MARKERS_ROT13)) or any(map(contains, _MARKERS_REV))) and not any(map(contains, _MARKERS)):
        rot = norm.translate(_ROT13)
        if any(w in rot for w in _MARKERS):
            out.append(("rot13 ", rot))
        rev = norm[::-1]
        if any(w in rev for w in _MARKERS):
            out.append(("reversed ", rev))
    printable = [d for d in (_b64_decoded(text) if decoded is None else decoded) if d.isprintable()]
    for payload in printable[:16]:  # base64 inside base64
        out.extend(("nested base64 ", normalize(p)) for p in _decoded_payloads(payload)[:4])
    return out


def _b64_tokens(text: str) -> list[str]:
    """``[m.group() for m in _B64.finditer(text)]``; on ASCII text from the runs of "b" in the byte image
    (a token is a whole run of 16-4096 base64 characters, not after "=", then at most two "=" and no
    further base64 character or "=")."""
    if not text.isascii():
        return [m.group() for m in _B64.finditer(text)] if _long_token(text) else []
    image = text.encode("ascii").translate(_B64ISH)
    if len(text) < 16 or b"b" * 16 not in image:
        return []
    tokens: list[str] = []
    n = len(text)
    s = image.find(_B64_16)
    while s != -1:  # the first 16 "b" after a "." start a run (the image holds only "b" and ".")
        e = image.find(b".", s)
        if e == -1:
            e = n
        nxt = image.find(_B64_16, e)
        if e - s > 4096 or (s and text[s - 1] == "="):
            s = nxt
            continue
        k = e
        while k < n and k - e < 3 and text[k] == "=":
            k += 1
        if k - e <= 2 and (k == n or text[k] not in _B64_OR_PAD):
            tokens.append(text[s:k])
        s = nxt
    return tokens


_B64_16 = b"b" * 16
_B64_OR_PAD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _b64_decoded(text: str) -> list[str]:
    """Every base64 token of ``text`` that decodes to UTF-8, decoded, in order."""
    out: list[str] = []
    for token in _b64_tokens(text):
        if len(token) % 4 == 1:
            continue
        try:
            out.append(base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    return out


def _readable(decoded: str) -> bool:
    return sum(c.isalpha() or c == " " for c in decoded) >= 0.8 * len(decoded) and " " in decoded


def _decoded_payloads(text: str, readable: bool = True) -> list[str]:
    """Base64 tokens of ``text`` decoded; ``readable`` keeps only those that read as words (else the
    printable ones)."""
    return [d for d in _b64_decoded(text) if (_readable(d) if readable else d.isprintable())]
