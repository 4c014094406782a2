"""Literal test cases out of Go detector tests (trufflehog's ``pkg/detectors/<name>/<name>_test.go``), as data.

The Go source is never compiled or run: a small tokenizer reads the package-level string constants
(``validPattern = "..."``, raw strings, ``+`` concatenations, ``fmt.Sprintf`` of known values) and the
``tests := []struct{...}{...}`` table, and evaluates only those expressions: string literals, names
bound to them, ``+``, ``fmt.Sprintf`` with ``%s``/``%v``/``%q``/``%%``, ``[]string{...}``, ``nil`` and
``[]byte(...)``/``string(...)``. A case whose ``input`` or ``want`` needs anything else is skipped and
counted (:class:`Unresolved`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["Case", "Unresolved", "cases"]

_TOKEN = re.compile(
    r"""(?P<ws>\s+|//[^\n]*|/\*.*?\*/)
      |(?P<raw>`[^`]*`)
      |(?P<str>"(?:[^"\\\n]|\\.)*")
      |(?P<rune>'(?:[^'\\\n]|\\.)*')
      |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      |(?P<num>[0-9][0-9A-Za-z_.]*)
      |(?P<op>:=|\.\.\.|[{}()\[\],:=+*&;.<>!|-])""",
    re.S | re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}  # fmt: skip


class Unresolved(Exception):
    """An expression this reader does not evaluate (a function call, a loop variable, a non-string value)."""


@dataclass(frozen=True)
class Case:
    """One test case: its name, the input text and the wanted secrets (each a tuple of its parts)."""

    name: str
    input: str
    want: tuple[tuple[str, ...], ...]


def _unquote(tok: str) -> str:
    if tok[0] == "`":
        return tok[1:-1].replace("\r", "")
    body, out, i = tok[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            out.append(chr(int(body[i + 2 : i + 2 + n], 16)))
            i += 2 + n
        else:
            raise Unresolved(f"escape \\{e}")
    return "".join(out)


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            pos += 1  # a character this reader does not need (e.g. ^ or %)
            continue
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


class _Parser:
    def __init__(self, toks: list[tuple[str, str]], env: dict[str, str]) -> None:
        self.t, self.i, self.env = toks, 0, env

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.t[self.i + k] if self.i + k < len(self.t) else ("eof", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def skip_balanced(self) -> None:
        """Skip one expression or bracketed group (for values this reader does not evaluate)."""
        depth = 0
        while True:
            kind, val = self.peek()
            if kind == "eof":
                return
            if val in "({[" and kind == "op":
                depth += 1
            elif val in ")}]" and kind == "op":
                if depth == 0:
                    return
                depth -= 1
            elif val == "," and depth == 0:
                return
            self.take()

    def expr(self) -> list[str]:
        """A string expression as the list of its ``+`` operands (each already a string)."""
        parts = self.operand()
        while self.peek() == ("op", "+"):
            self.take()
            parts = parts + self.operand()
        return parts

    def operand(self) -> list[str]:
        kind, val = self.take()
        if kind in ("str", "raw"):
            return [_unquote(val)]
        if kind == "name" and val in ("fmt.Sprintf", "string"):
            return ["".join(self.call(val))]
        if kind == "op" and val == "[":  # []byte(...)
            if self.take() != ("op", "]") or self.take() != ("name", "byte"):
                raise Unresolved("slice")
            return ["".join(self.call("[]byte"))]
        if kind == "name" and val in self.env and self.peek() != ("op", "("):
            return [self.env[val]]
        raise Unresolved(val)

    def call(self, fn: str) -> list[str]:
        if self.take() != ("op", "("):
            raise Unresolved(fn)
        args = []
        while self.peek() != ("op", ")"):
            args.append("".join(self.expr()))
            if self.peek() == ("op", ","):
                self.take()
        self.take()
        if fn != "fmt.Sprintf":
            return args
        return [_sprintf(args[0], args[1:])]


def _sprintf(fmt: str, args: list[str]) -> str:
    it = iter(args)

    def sub(m: re.Match[str]) -> str:
        verb = m.group(1)
        if verb == "%":
            return "%"
        try:
            arg = next(it)
        except StopIteration:
            raise Unresolved("missing argument") from None
        return json.dumps(arg, ensure_ascii=False) if verb == "q" else arg

    out = re.sub(r"%([svq%])", sub, fmt)
    if re.search(r"%[^svq%]", fmt):
        raise Unresolved("format verb")
    return out


def _constants(toks: list[tuple[str, str]]) -> dict[str, str]:
    """Package-level (and function-level) ``name = <string expr>`` / ``name := <string expr>`` bindings."""
    env: dict[str, str] = {}
    for _ in range(2):  # a second pass resolves names used before they are defined
        for i, (kind, val) in enumerate(toks[:-2]):
            if kind != "name" or toks[i + 1] not in (("op", "="), ("op", ":=")) or "." in val:
                continue
            p = _Parser(toks, env)
            p.i = i + 2
            try:
                value = "".join(p.expr())
            except (Unresolved, IndexError, ValueError):
                continue
            if p.peek()[1] in (",", "{", "(", "[", ".") and p.peek()[0] == "op":
                continue  # the value goes on (a call or composite): not a plain string
            env.setdefault(val, value)
    return env


def _table_starts(toks: list[tuple[str, str]]) -> list[int]:
    """Indexes of the ``{`` opening each case list ``tests := []struct{...}{`` whose struct has input and want."""
    out = []
    for i in range(len(toks) - 4):
        if toks[i][1] != "tests" or toks[i + 1][1] not in (":=", "=") or toks[i + 2][1] != "[":
            continue
        j = i + 3
        while j < len(toks) and toks[j][1] != "struct":
            j += 1
        depth, fields = 0, set()
        for k in range(j + 1, len(toks) - 1):
            if toks[k][1] == "{":
                depth += 1
            elif toks[k][1] == "}":
                depth -= 1
                if depth == 0:
                    if toks[k + 1][1] == "{" and {"input", "want"} <= fields:
                        out.append(k + 1)
                    break
            elif depth == 1 and toks[k][0] == "name":
                fields.add(toks[k][1])
    return out


def _want(p: _Parser) -> tuple[tuple[str, ...], ...]:
    val = p.peek()[1]
    if val == "nil":
        p.take()
        return ()
    if val != "[" or p.peek(1)[1] != "]" or p.peek(2)[1] != "string" or p.peek(3)[1] != "{":
        raise Unresolved("want")
    p.i += 4
    out = []
    while p.peek() != ("op", "}"):
        out.append(tuple(p.expr()))
        if p.peek() == ("op", ","):
            p.take()
    p.take()
    return tuple(out)


def _case(p: _Parser) -> dict[str, object]:
    """One ``{field: value, ...}`` element; unevaluated fields are skipped, failures recorded."""
    fields: dict[str, object] = {}
    p.take()  # {
    while p.peek() != ("op", "}") and p.peek()[0] != "eof":
        field = p.take()[1]
        if p.take() != ("op", ":"):
            raise Unresolved("positional case")
        start = p.i
        try:
            if field == "input":
                fields["input"] = "".join(p.expr())
            elif field == "want":
                fields["want"] = _want(p)
            elif field == "name":
                fields["name"] = "".join(p.expr())
            else:
                p.skip_balanced()
        except (Unresolved, IndexError, ValueError, KeyError) as exc:
            fields.setdefault("error", f"{field}: {exc}")
            p.i = start
            p.skip_balanced()
        if p.peek() != ("op", ","):
            p.skip_balanced()
        if p.peek() == ("op", ","):
            p.take()
    p.take()  # }
    return fields


def cases(src: str) -> tuple[list[Case], int]:
    """The literal (input, want) cases of a Go test file's case tables, and how many were skipped."""
    toks = _tokens(src)
    env = _constants(toks)
    out: list[Case] = []
    skipped = 0
    for start in _table_starts(toks):
        p = _Parser(toks, env)
        p.i = start + 1
        while p.peek() == ("op", "{"):
            try:
                f = _case(p)
            except (Unresolved, IndexError):
                skipped += 1
                break
            if "error" in f or not isinstance(f.get("input"), str) or "want" not in f:
                skipped += 1
            else:
                out.append(Case(str(f.get("name", "")), f["input"], f["want"]))  # type: ignore[arg-type]
            if p.peek() == ("op", ","):
                p.take()
    return out, skipped
