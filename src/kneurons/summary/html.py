"""Markdown -> a standalone HTML page (Python-Markdown with its `tables` extension), for the
Snakemake report, which shows HTML."""

from __future__ import annotations

import html

import markdown

STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:1em auto;line-height:1.4}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 8px}th{background:#f2f2f2}"
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
