"""Secret detection: the catalogue's token formats, then context rules.

Context rules cover what has no fixed format: keyword assignments (``db_password = "two words!"``,
``"api_key": …``, ``Password=…;`` in connection strings, passwords named in other languages),
credentials inside URLs (``postgres://user:pw@host``, ``redis://:pw@host``), command-line flags
(``--password …``, ``curl -u user:pw``, ``mysql -pSECRET``), ``Authorization: Bearer|Basic|token …``
headers, prose (``my password is …``) and a high-entropy fallback for quoted strings. Placeholder values
(``EXAMPLE``, ``xxxx``, ``<your-key>``, ``changeme``) are never reported, whichever rule found them.

Every search is linear in the text: each pattern starts at a literal or a small character set and all
quantifiers are bounded, so a candidate costs at most a few hundred character steps.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
import zlib
from collections.abc import Iterable

from agentops.guardrails._needles import Needles
from agentops.guardrails._types import Finding
from agentops.guardrails._validators import _entropy, _secret_value_ok
from agentops.guardrails.catalogue import SECRET_FORMATS, SecretFormat, is_placeholder

# -- catalogue formats --------------------------------------------------------------------------------

_PREFIXED: dict[str, list[SecretFormat]] = {}
_PATTERNED: list[SecretFormat] = []
for _fmt in SECRET_FORMATS:
    if _fmt.block:
        continue
    if _fmt.prefixes:
        for _p in _fmt.prefixes:
            _PREFIXED.setdefault(_p, []).append(_fmt)
    else:
        _PATTERNED.append(_fmt)
# One search for every prefix (longest first), then each candidate is matched by the formats sharing it.
_PREFIX_RX = re.compile("|".join(re.escape(p) for p in sorted(_PREFIXED, key=len, reverse=True)))
# For each prefix, the prefixes that also match where it matches ("sk-" under "sk-proj-").
_SHARED_PREFIXES = {p: [q for q in _PREFIXED if p.startswith(q)] for p in _PREFIXED}
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_PEM = next(f for f in SECRET_FORMATS if f.block == "pem")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s]{0,16384}")
_PEM_LIMIT = 16384
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _github_crc_ok(body: str) -> bool:
    """GitHub's token checksum: the last 6 characters are base62(CRC32(the first 30))."""
    n = zlib.crc32(body[:30].encode())
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(6, "0") == body[30:]


def _format_score(fmt: SecretFormat, m: re.Match[str]) -> float | None:
    """Score of a format match, or None when the match is a placeholder or fails the format's checks."""
    value = m.group()
    if is_placeholder(value):
        return None
    body = m.group("body") if "body" in fmt.regex.groupindex else value
    if fmt.soft and not _secret_value_ok(body, strict=False):
        return None
    if fmt.public:
        return 0.6
    if fmt.checksum == "github-crc32":
        return 0.99 if len(body) == 36 and _github_crc_ok(body) else 0.95
    return 0.95


# Every catalogue token is at least 12 characters without spaces: detection looks only inside such runs,
# found in one pass (ordinary prose has few), instead of searching the whole text once per format.
LONG_RUN = re.compile(r"[A-Za-z0-9_\-.~+/=:%]{12,8192}")
# The same runs found on a byte image of the text: run characters -> "x", everything else (non-ASCII
# characters are one "?" each, so offsets are kept) -> " ". Twelve literal "x" open the pattern, so the
# engine jumps between candidate places instead of trying every position of every word.
_RUN_BYTES = bytes(120 if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-.~+/=:%") else 32 for b in range(256))
_RUN_X = re.compile(b"x" * 12 + rb"x{0,8180}")


def long_runs(text: str) -> list[tuple[int, int]]:
    """The spans of :data:`LONG_RUN` in ``text`` (same spans, several times faster).

    Example:
        >>> long_runs("key sk-abcdefghijklmnop here")
        [(4, 23)]
    """
    image = text.encode("ascii", "replace").translate(_RUN_BYTES)
    spans: list[tuple[int, int]] = []
    i = image.find(_X12)  # bytes.find jumps between places; the regex only measures each run
    while i != -1:
        e = _RUN_X.match(image, i).end()
        spans.append((i, e))
        i = image.find(_X12, e)
    return spans


_X12 = b"x" * 12


def _scan_prefixed(text: str, spans: list[tuple[int, int]], out: list[Finding]) -> None:
    covered = -1
    for s, e in spans:
        for cand in _PREFIX_RX.finditer(text, s, e):
            pos = cand.start()
            if pos < covered or (pos and text[pos - 1] in _TOKEN_CHARS):
                continue  # inside a longer token (also what keeps "glpat-glpat-glpat-..." linear and cheap)
            best: tuple[int, float] | None = None
            for prefix in _SHARED_PREFIXES[cand.group()]:
                for fmt in _PREFIXED[prefix]:
                    m = fmt.regex.match(text, pos)
                    if m is None:
                        continue
                    score = _format_score(fmt, m)
                    if score is not None and (best is None or m.end() > best[0]):
                        best = (m.end(), score)
            if best is not None:
                out.append(Finding("SECRET", pos, best[0], best[1]))
                covered = best[0]


def _scan_patterned(
    text: str, spans: list[tuple[int, int]], out: list[Finding], present: frozenset[str] | None = None
) -> None:
    """Pattern formats; ``present`` is :data:`_FORMAT_NEEDLES` of ``text`` when the caller has it."""
    if present is None:
        present = _FORMAT_NEEDLES(text)
    for fmt in _PATTERNED:
        if present.isdisjoint(fmt.literals):
            continue
        for s, e in spans:
            if not any(text.find(lit, s, e) != -1 for lit in fmt.literals):
                continue
            for m in fmt.regex.finditer(text, s, e):
                if is_placeholder(m.group()):
                    continue
                if "secret" in fmt.regex.groupindex:
                    out.append(Finding("SECRET", m.start("secret"), m.end("secret"), 0.95))
                else:
                    out.append(Finding("SECRET", m.start(), m.end(), 0.6 if fmt.public else 0.9))


def _scan_pem(text: str, out: list[Finding]) -> None:
    """Private-key blocks up to their END line (or the end of the base64 body); linear in the text."""
    pos = 0
    next_end = -2  # where the next "-----END " is, found once and reused: keeps repeated BEGINs linear
    while True:
        i = text.find("-----BEGIN ", pos)
        if i == -1:
            return
        head = _PEM.regex.match(text, i)
        if head is None:
            pos = i + 11
            continue
        if next_end != -1 and next_end < head.end():
            next_end = text.find("-----END ", head.end())
        end_marker = next_end if next_end != -1 and next_end <= head.end() + _PEM_LIMIT else -1
        if end_marker != -1:
            close = text.find("-----", end_marker + 9, end_marker + 80)
            end = close + 5 if close != -1 else end_marker + 9
        else:
            end = _PEM_BODY.match(text, head.end()).end()
            while end > head.end() and text[end - 1].isspace():
                end -= 1
        out.append(Finding("SECRET", i, end, 0.99))
        pos = max(end, i + 11)


# -- context rules -------------------------------------------------------------------------------------

# Key names that say "the value is a secret" (searched in the lower-cased text), other languages included.
_PASSWORD_WORDS = (
    r"pass(?:word|wd|phrase)?|pwd|passwort|kennwort|contrase(?:ñ|n)a|mot de passe|senha|wachtwoord|"
    r"пароль|密码|密碼|パスワード|비밀번호|has(?:ł|l)o|salasana|jelsz(?:ó|o)|parola|lozinka|heslo|"
    r"adgangskode|l(?:ö|o)senord|passord|şifre|sifre|mật khẩu|κωδικός"
)
_SECRET_WORDS = (
    r"secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?key|client[_-]?key|signing[_-]?key|"
    r"encryption[_-]?key|master[_-]?key|account[_-]?key|credentials?|token|auth"
)
_KEY_HIT = re.compile(rf"(?:{_PASSWORD_WORDS})|(?:{_SECRET_WORDS})")
_PASSWORD_KEY = re.compile(rf"(?:{_PASSWORD_WORDS})")
# What follows a key name when it is assigned: optional quote, spaces, an operator, spaces, the value.
_ASSIGN = re.compile(
    r"[\w.-]{0,40}?[\"'`\]]?[ \t]{0,8}(?P<op>:=|===|!==|==|!=|=>|->|\?=|=|:)[ \t]{0,8}"
    r"(?:(?:bearer|basic|token)[ \t]{1,4})?"
    r"(?:(?P<q>[\"'`])(?P<quoted>[^\"'`\n]{1,200})(?P=q)|(?P<bare>[^\s\"'`,;)}\]]{1,200}))",
    re.IGNORECASE,
)
# Names that contain a key word but hold settings, not secrets (max_tokens, token_url, password_policy).
_NOT_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:max|min|num|count|len|length|size|limit|type|types|url|uri|endpoint|path|file|name|env|var|"
    r"field|header|prefix|suffix|expiry|expires|ttl|timeout|policy|hint|reset|regex|pattern|label|id|ids|"
    r"usage|budget|estimate|counter|format|kind|mode|length|rules|strength|validator|reset)(?:$|[_.-])"
    r"|tokeniz|tokens$|keyboard|keystroke|monkey|turkey|hockey|donkey|passenger|passage|passport|bypass|"
    r"compass|passive|tokenomics"
)
# Code, not a credential: an identifier (digits at most at its end), an attribute chain, a call, a number.
_CODE_VALUE = re.compile(
    r"[A-Za-z_]{1,80}[0-9]{0,2}(?:\.[A-Za-z_]\w{0,80}){0,8}(?:\(.{0,200})?|[0-9]{1,5}|[0-9.]{1,12}"
)
_NEEDS_ALNUM = re.compile(r"[^\W_]")


def _key_name(low: str, start: int, end: int) -> str:
    """The whole identifier around a key-word hit (``db_password_prod``), bounded to 40 characters."""
    s = start
    while s > 0 and start - s < 40 and (low[s - 1].isalnum() or low[s - 1] in "_.-"):
        s -= 1
    e = end
    while e < len(low) and e - end < 40 and (low[e].isalnum() or low[e] in "_-"):
        e += 1
    return low[s:e].strip("_.-")


def _value_is_secret(value: str, quoted: bool, password: bool) -> bool:
    value = value.strip()
    if not value or is_placeholder(value) or not _NEEDS_ALNUM.search(value):
        return False
    if not quoted and ("://" in value or value[0] in "$%{<"):
        return False  # a URL (its credentials are checked on their own) or a variable reference
    if not quoted and _CODE_VALUE.fullmatch(value) and not (password and any(c.isdigit() for c in value)):
        return False  # an identifier, a call, a small number: code, not a credential
    if password:
        return len(value) >= 6 if not quoted else len(value) >= 4
    if quoted and (" " in value or not value.isalnum()):
        return len(value) >= 8
    return _secret_value_ok(value, strict=len(value) < 16 or value.isalnum())


# Literals every match of _KEY_HIT (and of _PROSE's key) starts with: the alternations are tried only
# where one of them occurs, found with ``str.find`` (tests/test_guardrails_fastpaths.py checks them).
_KEY_STARTS = (
    "pass", "pwd", "kennwort", "contrase", "mot de passe", "senha", "wachtwoord", "пароль", "密码", "密碼",
    "パスワード", "비밀번호", "has", "salasana", "jelsz", "parola", "lozinka", "heslo", "adgangskode", "lösenord",
    "losenord", "şifre", "sifre", "mật khẩu", "κωδικός", "secret", "api", "access", "private", "auth", "client",
    "signing", "encryption", "master", "account", "credential", "token",
)  # fmt: skip


def _starts(low: str, literals: Iterable[str]) -> list[int]:
    """Sorted positions in ``low`` where one of ``literals`` occurs."""
    found: set[int] = set()
    for lit in literals:
        i = low.find(lit)
        while i != -1:
            found.add(i)
            i = low.find(lit, i + 1)
    return sorted(found)


def _assignment_hits(low: str, starts: list[int]) -> list[re.Match[str]]:
    """Key-word hits that sit at most 48 characters before an assignment operator (``=`` or ``:``).

    Operators are found with ``str.find`` and only the short window before each is searched, and only
    when a key word starts in it, which is much cheaper than running the key-word alternation over the
    whole text.
    """
    hits: list[re.Match[str]] = []
    if not starts:
        return hits
    for op_char in "=:":
        seen = last = -1
        for s in starts:  # only operators at most 48 characters after a key word's start can see it
            op = low.find(op_char, max(s, last) + 1, s + 49)
            while op != -1:
                last = op
                lo = max(0, op - 48, seen)
                k = bisect.bisect_left(starts, lo)
                if k < len(starts) and starts[k] < op:
                    for hit in _KEY_HIT.finditer(low, lo, op):
                        hits.append(hit)
                        seen = max(seen, hit.end())
                op = low.find(op_char, op + 1, s + 49)
    hits.sort(key=lambda h: h.start())
    return hits


def _scan_assignments(text: str, low: str, out: list[Finding], starts: list[int]) -> None:
    last = -1
    for hit in _assignment_hits(low, starts):
        if hit.start() < last:
            continue
        name = _key_name(low, hit.start(), hit.end())
        if _NOT_SECRET_NAME.search(name):
            continue
        m = _ASSIGN.match(text, hit.end())
        if m is None:
            continue
        quoted = m.group("quoted") is not None
        group = "quoted" if quoted else "bare"
        password = _PASSWORD_KEY.search(name) is not None
        if _value_is_secret(m.group(group), quoted, password):
            out.append(Finding("SECRET", m.start(group), m.end(group), 0.85))
            last = m.end()


_URL_CRED = re.compile(r"[^\s:/@\"'<>(){}\[\],;]{0,64}:(?P<pw>[^\s/@\"'<>(){}\[\]]{1,128})@[A-Za-z0-9\[]")
_CLI_FLAG = re.compile(
    r"(?<![\w-])--?(?:[a-z0-9]{1,20}-){0,3}(?:password|passwd|pass|pwd|token|secret|api-?key|access-key|"
    r"secret-key|auth-token|credentials?)(?:=|[ \t]{1,4})(?P<q>[\"']?)(?P<v>[^\s\"']{4,200})(?P=q)"
)
_CLI_USER = re.compile(r"(?<!\S)(?:-u|--user)[ \t]{1,4}[\"']?[^\s:\"']{1,64}:(?P<v>[^\s\"']{1,128})")
_MYSQL_P = re.compile(r"(?<!\S)-p(?P<v>[^\s\"'-][^\s\"']{3,127})")
_AUTH = re.compile(
    r"(?:(?:authorization|proxy-authorization)[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?(?P<scheme>bearer|basic|token|"
    r"apikey|digest)|\bbearer)[ \t]{1,4}(?P<v>[A-Za-z0-9._~+/=-]{8,4096})",
)
_PROSE = re.compile(
    rf"\b(?P<key>{_PASSWORD_WORDS}|pin|secret(?: access)? key|api key|access token|auth token|secret|token)"
    r"[ \t]{1,3}(?:is|was|=|:|ist|est|es|é|è|är|er|jest|on)[ \t]{1,3}[\"'“]?(?P<v>[^\s\"'”]{4,200})"
)
_QUOTED = re.compile(r"([\"'])(?P<v>[A-Za-z0-9+/=_.~-]{20,200})\1")
_HEXISH = frozenset("0123456789abcdefABCDEF-")


_USER_PASS_AT = re.compile(r"(?<![\w.:/%+-])[A-Za-z0-9._-]{1,64}:(?P<pw>[^\s:/@\"'<>]{4,128})@[A-Za-z0-9]")


def _scan_url_credentials(text: str, out: list[Finding]) -> None:
    at = text.find("@")
    done = -1
    while at != -1:  # user:password@host without a scheme: searched only in the window before each "@"
        lo = max(0, at - 200, done)
        colon = text.rfind(":", lo, at)  # the password runs from the last ":" to the "@": 4-128 characters
        for m in _USER_PASS_AT.finditer(text, lo, at + 2) if colon != -1 and 4 < at - colon <= 129 else ():
            if m.end() - 2 == at:
                done = m.end()
                if _value_is_secret(m.group("pw"), quoted=True, password=True):
                    out.append(Finding("SECRET", m.start("pw"), m.end("pw"), 0.85))
        at = text.find("@", at + 1)
    if "://" not in text:
        return
    i = text.find("://")
    while i != -1:
        m = _URL_CRED.match(text, i + 3)
        if m and not is_placeholder(m.group("pw")) and not m.group("pw").isdigit():
            out.append(Finding("SECRET", m.start("pw"), m.end("pw"), 0.9))
        i = text.find("://", i + 3)


def _scan_flags_and_headers(text: str, low: str, out: list[Finding]) -> None:
    flags = [
        rx
        for rx, gate in ((_CLI_FLAG, " -" in text or "--" in text), (_CLI_USER, " -u " in text or "--user" in text))
        if gate
    ]
    if flags:
        for rx in flags:
            for m in rx.finditer(low):
                v = text[m.start("v") : m.end("v")]
                if not is_placeholder(v) and not v.startswith(("$", "%")):
                    out.append(Finding("SECRET", m.start("v"), m.end("v"), 0.85))
        if "mysql" in low or "mariadb" in low:
            for m in _MYSQL_P.finditer(text):
                if not is_placeholder(m.group("v")):
                    out.append(Finding("SECRET", m.start("v"), m.end("v"), 0.8))
    if "bearer" in low or "authorization" in low:
        for m in _AUTH.finditer(low):
            v = text[m.start("v") : m.end("v")]
            scheme = m.group("scheme")
            ok = _basic_ok(v) if scheme == "basic" else _secret_value_ok(v, strict=scheme != "token")
            if ok and not is_placeholder(v):
                out.append(Finding("SECRET", m.start("v"), m.end("v"), 0.9))


def _basic_ok(value: str) -> bool:
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in decoded and not is_placeholder(decoded)


def _prose_matches(low: str, starts: list[int], pin: bool = True) -> list[re.Match[str]]:
    """``list(_PROSE.finditer(low))``, with the pattern tried only where a key word (``starts``, the
    positions of :data:`_KEY_STARTS`) or ``pin`` starts."""
    found: list[re.Match[str]] = []
    end = 0
    pins = _starts(low, ("pin",)) if pin else []
    for pos in sorted({*starts, *pins}) if pins else starts:
        if pos >= end and (m := _PROSE.match(low, pos)) is not None:
            found.append(m)
            end = m.end()
    return found


def _scan_prose(text: str, low: str, out: list[Finding], starts: list[int], pin: bool = True) -> None:
    for m in _prose_matches(low, starts, pin):
        v = text[m.start("v") : m.end("v")].rstrip(".,;:!?)")
        password = _PASSWORD_KEY.fullmatch(m.group("key")) is not None or m.group("key") == "pin"
        if _value_is_secret(v, quoted=False, password=password) and (password or len(v) >= 12):
            out.append(Finding("SECRET", m.start("v"), m.start("v") + len(v), 0.8))


def _quoted_values(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ``v`` spans of ``_QUOTED.finditer(text)``, read from the long runs: a quoted value is a whole
    run of 20-200 characters (quotes end runs, and ``v``'s characters are run characters) between two
    equal quotes, without the run characters ``v`` leaves out (":", "%"); a closing quote is not reused
    as the next opening one."""
    found: list[tuple[int, int]] = []
    n = len(text)
    last = -1
    for s, e in spans:
        if not 20 <= e - s <= 200 or s == 0 or e >= n or s - 1 < last:
            continue
        q = text[s - 1]
        if (q == '"' or q == "'") and text[e] == q and ":" not in text[s:e] and "%" not in text[s:e]:
            found.append((s, e))
            last = e + 1
    return found


def _scan_quoted_entropy(text: str, out: list[Finding], spans: list[tuple[int, int]]) -> None:
    """Quoted random-looking strings: three character classes and high entropy; never hashes or paths."""
    for s, e in _quoted_values(text, spans):
        v = text[s:e]
        if set(v) <= _HEXISH or v.count(".") > 1 or is_placeholder(v):
            continue
        if not (any(c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v)):
            continue
        if _entropy(v) >= 4.2:
            out.append(Finding("SECRET", s, e, 0.6))


# Cheap pre-check for the context rules: one of these must appear in the lower-cased text.
_KEY_GATE = (
    "pass", "pwd", "secret", "key", "token", "cred", "auth", "kennw", "contrase", "senha", "wachtw", "пароль",
    "密", "パスワード", "비밀번호", "has", "salasana", "jelsz", "parola", "lozinka", "heslo", "adgangskode",
    "senord", "passord", "şifre", "sifre", "mật khẩu", "κωδικός", "pin",
)  # fmt: skip


# One pass tells which pre-check substrings occur: the formats' literals in the text, the key words in
# the lower-cased text.
_FORMAT_NEEDLES = Needles([*_PREFIXED, *(lit for fmt in _PATTERNED for lit in fmt.literals)])
_KEY_NEEDLES = Needles((*_KEY_GATE, *_KEY_STARTS))


def scan_secrets(text: str, out: list[Finding], spans: list[tuple[int, int]] | None = None) -> None:
    """Append every secret found in ``text`` (overlaps are settled by the caller).

    ``spans`` are the runs of :data:`LONG_RUN` in ``text`` when the caller already has them.
    """
    if spans is None:
        spans = long_runs(text)
    if spans:
        # Formats match only inside the runs: look for their prefixes and literals there (in most text
        # the runs are a small part of it). No prefix and no literal: no format can match.
        runs = "\n".join([text[s:e] for s, e in spans]) if len(spans) < 64 else text
        present = _FORMAT_NEEDLES(runs if len(runs) < len(text) else text)
        if not present.isdisjoint(_PREFIXED):
            _scan_prefixed(text, spans, out)
        if present:
            _scan_patterned(text, spans, out, present)
    if "-----BEGIN " in text:
        _scan_pem(text, out)
    if ":" in text and "@" in text:
        _scan_url_credentials(text, out)
    low = text.lower()
    if len(low) != len(text):  # a few characters change length when lower-cased; keep offsets aligned
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    # Key words matter only before an operator or in prose ("my password is ..."): look for them only then.
    if "=" in text or ":" in text or " is " in low or " ist " in low or " est " in low:
        present = _KEY_NEEDLES(low)
    else:
        present = frozenset()
    keyed = not present.isdisjoint(_KEY_GATE)
    starts: list[int] | None = None
    if keyed and ("=" in text or ":" in text):
        _scan_assignments(text, low, out, starts := _starts(low, [w for w in _KEY_STARTS if w in present]))
    if "-" in text or "bearer" in low or "authorization" in low:
        _scan_flags_and_headers(text, low, out)  # each rule below has its own cheaper gate
    if keyed and (" is " in low or " ist " in low or " est " in low or ": " in low or " = " in low):
        if starts is None:
            starts = _starts(low, [w for w in _KEY_STARTS if w in present])
        _scan_prose(text, low, out, starts, "pin" in present)
    if spans and ('"' in text or "'" in text):
        _scan_quoted_entropy(text, out, spans)
