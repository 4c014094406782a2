"""The one catalogue of secret formats, loaded from ``data/secrets.yaml``.

Provider token formats (prefix, charset, length, checksum where one exists) and a few structured
formats (JWTs, private-key blocks, webhook URLs) live in a data file so they can be read, reviewed and
extended without touching code. :func:`agentops.guardrails.scan` and telemetry's redaction both use
it. Every pattern is checked at load time: every quantifier must be bounded, so matching stays linear
in the input (``benchmarks/guardrails.py`` measures it).

Example:
    >>> fmt = next(f for f in SECRET_FORMATS if f.id == "github-token")
    >>> fmt.provider, fmt.length, fmt.checksum
    ('GitHub', (30, 255), 'github-crc32')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from agentops.errors import ConfigError

__all__ = ["SECRET_FORMATS", "SecretFormat", "is_placeholder", "load_secret_formats"]

CATALOGUE_PATH = Path(__file__).parent / "data" / "secrets.yaml"

CHARSETS: Mapping[str, str] = {
    "alnum": "A-Za-z0-9",
    "alnum_upper": "A-Z0-9",
    "alnum_lower": "a-z0-9",
    "letters": "A-Za-z",
    "hex": "0-9a-fA-F",
    "hex_lower": "0-9a-f",
    "word": "A-Za-z0-9_",
    "url_safe": "A-Za-z0-9_-",
    "url_safe_dot": "A-Za-z0-9_.-",
    "url_safe_eq": "A-Za-z0-9_=-",
    "base64": "A-Za-z0-9+/",
    "base64_eq": "A-Za-z0-9+/=",
}
_CHECKSUMS = frozenset({"github-crc32"})
_FIELDS = frozenset(
    {"id", "provider", "name", "prefix", "charset", "length", "pattern", "literals", "checksum", "docs",
     "soft", "public", "block"}
)  # fmt: skip
# Characters that continue a token: a match followed by one of them is part of something longer.
_TOKEN_TAIL = "(?![A-Za-z0-9_-])"
_TOKEN_HEAD = "(?<![A-Za-z0-9_])"


@dataclass(frozen=True)
class SecretFormat:
    """One provider's token format.

    Attributes:
        id: stable identifier (``github-token``).
        provider: who issues it.
        name: what it is.
        prefixes: literal prefixes (empty for pattern formats).
        charset: named character set of the body after the prefix (``None`` for pattern formats).
        length: (min, max) body length after the prefix.
        pattern: the regular expression (built from prefix, charset and length when not given).
        literals: strings one of which every match contains (the cheap pre-check).
        checksum: name of a checksum the scanner verifies, if the format has one.
        soft: the body must also look random (a shared prefix such as ``sk-`` is not enough).
        public: an identifier that is not secret by design; reported with a lower score.
        block: a multi-line block handled by the scanner (``pem``).
    """

    id: str
    provider: str
    name: str
    prefixes: tuple[str, ...]
    charset: str | None
    length: tuple[int, int] | None
    pattern: str
    literals: tuple[str, ...]
    checksum: str | None = None
    soft: bool = False
    public: bool = False
    block: str | None = None
    docs: str = ""
    regex: re.Pattern[str] = field(default=None, compare=False, repr=False)  # type: ignore[assignment]


def _bad(entry: Mapping[str, Any], problem: str) -> ConfigError:
    return ConfigError(f"secret catalogue entry {entry.get('id', '?')!r}: {problem}; fix {CATALOGUE_PATH.name}")


def _unbounded(pattern: str) -> bool:
    """True if the pattern has a ``*``, ``+`` or ``{n,}`` quantifier (outside character classes)."""
    try:
        import re._parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse  # type: ignore[no-redef]

    def walk(items: Any) -> bool:
        for op, av in items:
            if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
                _lo, hi, sub = av
                if hi == sre_parse.MAXREPEAT or walk(sub):
                    return True
            elif op in (sre_parse.SUBPATTERN,):
                if walk(av[-1]):
                    return True
            elif op == sre_parse.BRANCH:
                if any(walk(b) for b in av[1]):
                    return True
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT) and walk(av[1]):
                return True
        return False

    return walk(sre_parse.parse(pattern))


def _length(entry: Mapping[str, Any]) -> tuple[int, int]:
    raw = entry.get("length")
    if isinstance(raw, int):
        return raw, raw
    if isinstance(raw, Sequence) and len(raw) == 2 and all(isinstance(n, int) for n in raw) and raw[0] <= raw[1]:
        return int(raw[0]), int(raw[1])
    raise _bad(entry, f"length must be an integer or [min, max], got {raw!r}")


def _build(entry: Mapping[str, Any]) -> SecretFormat:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise _bad(entry, f"unknown field(s) {sorted(unknown)}")
    for key in ("id", "provider", "name"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise _bad(entry, f"{key} must be a non-empty string")
    checksum = entry.get("checksum")
    if checksum is not None and checksum not in _CHECKSUMS:
        raise _bad(entry, f"unknown checksum {checksum!r}; known: {sorted(_CHECKSUMS)}")
    prefixes: tuple[str, ...] = ()
    charset = length = None
    if "prefix" in entry:
        raw = entry["prefix"]
        prefixes = (raw,) if isinstance(raw, str) else tuple(raw)
        charset = entry.get("charset")
        if charset not in CHARSETS:
            raise _bad(entry, f"charset must be one of {sorted(CHARSETS)}, got {charset!r}")
        length = _length(entry)
        alternation = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
        body = f"[{CHARSETS[charset]}]{{{length[0]},{length[1]}}}"
        pattern = f"(?:{alternation})(?P<body>{body})"
        literals = prefixes
    elif "pattern" in entry:
        pattern = entry["pattern"]
        literals = tuple(entry.get("literals") or ())
        if not literals:
            raise _bad(entry, "a pattern entry needs literals (strings every match contains)")
    else:
        raise _bad(entry, "give either prefix + charset + length, or pattern + literals")
    try:
        regex = re.compile(_TOKEN_HEAD + pattern + ("" if entry.get("block") else _TOKEN_TAIL))
    except re.error as exc:
        raise _bad(entry, f"pattern does not compile ({exc})") from None
    if _unbounded(pattern):
        raise _bad(entry, "every quantifier must be bounded ({m,n}); * + and {n,} can make scanning slow")
    return SecretFormat(
        id=entry["id"], provider=entry["provider"], name=entry["name"], prefixes=prefixes, charset=charset,
        length=length, pattern=pattern, literals=literals, checksum=checksum, soft=bool(entry.get("soft")),
        public=bool(entry.get("public")), block=entry.get("block"), docs=entry.get("docs", ""), regex=regex,
    )  # fmt: skip


@cache
def _load(path: Path) -> tuple[tuple[SecretFormat, ...], frozenset[str], tuple[str, ...]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the secret catalogue {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("formats"), list):
        raise ConfigError(f"secret catalogue {path} needs a 'formats' list")
    formats = tuple(_build(e) for e in data["formats"])
    ids = [f.id for f in formats]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"secret catalogue {path} repeats id(s) {dupes}; every id must be unique")
    ph = data.get("placeholders") or {}
    exact = frozenset(str(v).lower() for v in ph.get("exact", ()))
    parts = tuple(str(v).lower() for v in ph.get("parts", ()))
    return formats, exact, parts


def load_secret_formats(path: str | Path | None = None) -> tuple[SecretFormat, ...]:
    """Load and validate a secret catalogue (default: the one shipped in ``data/secrets.yaml``).

    Raises:
        ConfigError: the file is missing or malformed, an entry is invalid, or a pattern is unbounded.
    """
    return _load(Path(path) if path is not None else CATALOGUE_PATH)[0]


SECRET_FORMATS: tuple[SecretFormat, ...] = load_secret_formats()
_EXACT, _PARTS = _load(CATALOGUE_PATH)[1:]
_PARTS_RX = re.compile("|".join(re.escape(p) for p in sorted(_PARTS, key=len, reverse=True)))


def is_placeholder(value: str) -> bool:
    """True for documentation values that are not secrets (``EXAMPLE``, ``xxxx``, ``<your-key>``, ``changeme``).

    Example:
        >>> is_placeholder("AKIAIOSFODNN7EXAMPLE"), is_placeholder("hunter2!x")
        (True, False)
    """
    low = value.lower()
    return low in _EXACT or _PARTS_RX.search(low) is not None
