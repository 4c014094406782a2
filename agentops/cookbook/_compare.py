"""Compare two report runs chapter by chapter, after the sanitize file nbval uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agentops.cookbook._chapters import DEFAULT_NOTEBOOKS, chapter_files
from agentops.errors import ConfigError


def _sanitizers(cfg_path: Path) -> list[tuple[re.Pattern[str], str]]:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(cfg_path, encoding="utf-8")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def _coalesced(outputs: list[dict]) -> list[dict]:
    """Stream outputs of one name merged, as nbval does: how a kernel chunks its prints is timing."""
    merged: list[dict] = []
    streams: dict[str, dict] = {}
    for o in outputs:
        if o.get("output_type") != "stream":
            merged.append(o)
            continue
        text = "".join(o.get("text", ""))
        if o.get("name") in streams:
            streams[o["name"]]["text"] += text
        else:
            streams[o.get("name", "stdout")] = {**o, "text": text}
            merged.append(streams[o.get("name", "stdout")])
    return merged


def _text_outputs(path: Path) -> list[tuple[int, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for index, cell in enumerate(nb.get("cells", [])):
        for o in _coalesced(cell.get("outputs", [])):
            data = {k: v for k, v in o.get("data", {}).items() if not k.startswith("image/")}
            text = o.get("text", "")
            if o.get("output_type") == "error":
                text = f"{o.get('ename')}: {o.get('evalue')}"
            out.append((index, json.dumps([data, text], ensure_ascii=False, sort_keys=True)))
    return out


def compare_reports(
    first: str | Path, second: str | Path, *, sanitize: str | Path | None = None
) -> dict[str, list[int]]:
    """Compare the text outputs of the chapters two report runs share, after the nbval sanitize file.

    Figures are not compared (like nbval); durations marked with ⏱ and memory addresses are
    normalised. Returns chapter → indexes of cells whose outputs differ (empty lists: reproducible).

    Raises:
        ConfigError: a directory holds no executed chapters, or the two hold different chapters.
    """
    a, b = Path(first), Path(second)
    subs = _sanitizers(Path(sanitize) if sanitize else DEFAULT_NOTEBOOKS / "nbval.cfg")
    names_a = [p.name for p in chapter_files(a)]
    names_b = [p.name for p in chapter_files(b)]
    if not names_a or names_a != names_b:
        raise ConfigError(f"{a} and {b} must hold the same executed chapters; got {names_a} and {names_b}")

    def norm(text: str) -> str:
        for pattern, replacement in subs:
            text = pattern.sub(replacement, text)
        return text

    result: dict[str, list[int]] = {}
    for name in names_a:
        left, right = _text_outputs(a / name), _text_outputs(b / name)
        cells = {i for (i, x), (_, y) in zip(left, right, strict=False) if norm(x) != norm(y)}
        if len(left) != len(right):  # an output missing on one side: name the cell it belongs to
            longer = left if len(left) > len(right) else right
            cells.add(longer[min(len(left), len(right))][0])
        result[Path(name).stem] = sorted(cells)
    return result
