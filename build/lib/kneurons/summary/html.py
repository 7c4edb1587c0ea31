"""Markdown -> a standalone HTML page (Python-Markdown with its `tables` extension), for the
Snakemake report, which shows HTML."""

from __future__ import annotations

import html

import markdown

# Cells never wrap (a number and its interval stay on one line; the summary's tables are split
# so that each fits 1400 px); figures shrink to the page's width and 560 px high, side by side
# where they fit, each a link to the full-size file.
STYLE = (
    "body{font-family:sans-serif;max-width:1320px;margin:1em auto;padding:0 1em;"
    "line-height:1.4}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 8px;white-space:nowrap}th{background:#f2f2f2}"
    "img{max-width:100%;max-height:560px;width:auto;height:auto;border:1px solid #eee;"
    "vertical-align:top;margin:0 4px 4px 0}"
)


def markdown_to_html(text: str, title: str = "") -> str:
    """A standalone page: `title` in the head, the minimal table style, `text` as the body
    (headings, paragraphs, pipe tables, emphasis, code; any HTML in `text` is escaped)."""
    converter = markdown.Markdown(extensions=["tables"], output_format="html")
    # the text is data (class names, methods), not markup: no raw HTML passes through
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    body = converter.convert(text)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
