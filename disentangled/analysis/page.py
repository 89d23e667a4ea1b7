"""The report's static HTML page: sections of figures, readings and tables; no server needed.

A small script in the page checks, once the page has loaded, that every image decoded
(``naturalWidth > 0``) and appends the count to the title ("... [images 12/12]"); the
report test reads that title from headless Chromium.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px; padding: 0 1.5em 3em; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
p.reading { font-size: 1.05em; background: #eef4fb; border-left: 4px solid #4c72b0; padding: 0.5em 0.8em; }
p.paper { color: #555; font-size: 0.92em; }
p.missing { background: #fff4e0; border-left: 4px solid #e0a030; padding: 0.5em 0.8em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; white-space: nowrap; }
td.html { text-align: left; min-width: 16em; font-size: 0.9em; }
nav ul { columns: 2; }
.csv { font-size: 0.85em; color: #555; }
img.thumb { height: 72px; border: 1px solid #ddd; }
div.scroll { overflow-x: auto; max-width: 100%; }
"""

CHECK_IMAGES = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var bad = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  document.title = document.title + " [images " + (images.length - bad.length) + "/" + images.length + "]";
  document.body.setAttribute("data-images", bad.length === 0 ? "ok" : "broken: " + bad.map(function (im) { return im.getAttribute("src"); }).join(" "));
});
"""


@dataclass
class Section:
    """One analysis: its figures (relative PNG paths), a one-line reading, the paper's claim."""

    key: str
    title: str
    paper: str = ""
    reading: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)  # (path, caption)
    csv: list[str] = field(default_factory=list)
    missing: str = ""
    extra_html: str = ""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def fmt_number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def table_html(frame: pd.DataFrame, *, digits: int = 3, raw_html_columns=()) -> str:
    """An HTML table of ``frame`` (text columns left-aligned); ``raw_html_columns`` are not escaped."""
    head = "".join(f'<th class="text">{esc(c)}</th>' if _is_text(frame[c]) else f"<th>{esc(c)}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            value = row[c]
            if c in raw_html_columns:
                cells.append(f'<td class="html">{value}</td>')
            elif _is_text(frame[c]):
                cells.append(f'<td class="text">{esc("" if value is None or (isinstance(value, float) and np.isnan(value)) else value)}</td>')
            else:
                cells.append(f"<td>{esc(fmt_number(value, digits))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _is_text(column: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    return not all(isinstance(v, (int, float, np.number, bool)) or v is None for v in column)


def render(title: str, intro_html: str, sections: list[Section]) -> str:
    nav = "".join(f'<li><a href="#{esc(s.key)}">{esc(s.title)}</a></li>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{CHECK_IMAGES}</script>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
        intro_html,
        f"<nav><ul>{nav}</ul></nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>')
        if s.paper:
            parts.append(f'<p class="paper"><b>Paper:</b> {esc(s.paper)}</p>')
        if s.reading:
            parts.append(f'<p class="reading"><b>Here:</b> {esc(s.reading)}</p>')
        if s.missing:
            parts.append(f'<p class="missing"><b>Missing:</b> {esc(s.missing)}</p>')
        for path, caption in s.figures:
            parts.append(f'<figure><a href="{esc(path)}"><img src="{esc(path)}" alt="{esc(caption)}"></a><figcaption>{esc(caption)}</figcaption></figure>')
        if s.extra_html:
            parts.append(s.extra_html)
        if s.csv:
            links = ", ".join(f'<a href="{esc(c)}">{esc(c)}</a>' for c in s.csv)
            parts.append(f'<p class="csv">Data: {links}</p>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
