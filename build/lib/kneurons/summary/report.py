"""The Snakemake report's front page (rule report_front): the workflow description followed by
every model's Findings, so that `snakemake --report` opens on what the run found. Imports only
the standard library and kneurons.io: it runs in the Snakemake process."""

from __future__ import annotations

from collections.abc import Sequence

from kneurons.io import atomic_write


def write_front_page(
    intro_path: str, findings_paths: Sequence[str], out_path: str, log_path: str
) -> None:
    """reStructuredText: the intro (report/workflow.rst, still a Jinja template for the report)
    and each model's findings.rst, in order, written atomically."""
    with open(intro_path) as fh:
        parts = [fh.read().rstrip(), ""]
    for path in findings_paths:
        with open(path) as fh:
            parts.append(fh.read().rstrip() + "\n")
    text = "\n".join(parts)
    atomic_write(out_path, lambda tmp: tmp.write_text(text))
    with open(log_path, "w") as fh:
        fh.write(f"front page from {intro_path} and {len(findings_paths)} findings: {out_path}\n")
