"""The report's sections as text: Markdown (report.md, figures linked by file name) and a
self-contained HTML page (report.html, figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from .sections import Section

__all__ = ["markdown_table", "render_markdown", "render_html"]

STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table.t{border-collapse:collapse;font-size:12px;margin:1em 0}"
    "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "img{max-width:100%}"
)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table; floats to ``digits`` significant digits, "|" in cells as "/"."""
    if df.empty:
        return "_(none)_"

    def fmt(v):
        if isinstance(v, float | np.floating):
            return f"{v:.{digits}g}" if np.isfinite(v) else str(v)
        return str(v).replace("|", "/")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def render_markdown(title: str, sections: list[Section]) -> str:
    """report.md: a heading per section, then its prose, table and figure link."""
    md = [f"# {title}\n"]
    for s in sections:
        md.append(f"## {s.heading}\n")
        if s.text:
            md.append(s.text + "\n")
        if s.table is not None:
            md.append(markdown_table(s.table) + "\n")
        if s.figure:
            md.append(f"![{s.heading}]({s.figure})\n")
    return "\n".join(md)


def render_html(title: str, sections: list[Section], images: dict[str, bytes]) -> str:
    """report.html: the same sections with ``images`` (PNG bytes by figure name) inlined,
    so that the page needs no other file."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.heading)}</h2>")
        if s.text:
            body.append("".join(f"<p>{html.escape(p)}</p>" for p in s.text.split("\n\n")))
        if s.table is not None:
            body.append(
                s.table.to_html(
                    index=False, float_format=lambda v: f"{v:.3g}", border=0, classes="t"
                )
            )
        if s.figure:
            data = base64.b64encode(images[s.figure]).decode()
            body.append(f'<img alt="{html.escape(s.heading)}" src="data:image/png;base64,{data}">')
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
