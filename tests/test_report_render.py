"""Chapter pages: the cheaper template renders exactly what nbconvert's lab template renders, escaped."""

from __future__ import annotations

import nbformat
from nbconvert import HTMLExporter

from agentops.cookbook._report import render_html


def test_rendered_pages_match_nbconvert_and_escape_code(tmp_path):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("html = '<script>alert(1)</script>'  # <img src=x onerror=alert(2)>")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="<b>printed</b>\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Page"), code]
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    path = tmp_path / "00_page.ipynb"
    nbformat.write(nb, path)
    page = render_html(path)
    assert page == tmp_path / "00_page.html"
    body = page.read_text(encoding="utf-8")
    assert body == HTMLExporter().from_filename(str(path))[0]
    assert "<script>alert(1)" not in body and "<img src=x" not in body and "&lt;script&gt;" in body
