"""The markdown pages of one model: summary.md (`markdown_summary`, assembled from
`kneurons.summary.sections`), the dataset card and the fine-tuning metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kneurons.classes.report import specificity_section
from kneurons.format import cell, class_header, fmt, fmt_ci, md_table
from kneurons.profiles.report import profiles_section
from kneurons.scoring.report import completeness_section
from kneurons.selection.report import stability_section
from kneurons.summary import gallery, sections
from kneurons.summary.baseline import Statistics, add_statistics
from kneurons.summary.findings import findings_section
from kneurons.summary.groundtruth import ground_truth_section
from kneurons.summary.headline import headline_section
from kneurons.summary.latents import latent_labels, latent_section
from kneurons.summary.tables import (
    MIN_CLASS_TEST_SEQUENCES,
    MIN_TEST_SEQUENCES,
    masked_rows,
    unmasked_rows,
    variants,
)

TITLE = "# Knowledge neurons: accuracy under neuron masking"


# Human headers of the training log's columns (training_log.tsv keeps the machine names).
HISTORY_HEADERS = {
    "epoch": "epoch",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "val_accuracy": "val accuracy",
    "val_macro_f1": "val macro-F1",
    "seconds": "time (s)",
    "residues_per_second": "residues/s",
    "best": "kept",  # the epoch whose weights are kept: best val macro-F1, then val loss
}
# One format per kind of number on the fine-tuning page: accuracies and F1 with the digits of
# every other page (`fmt`), losses with LOSS_DIGITS, times in seconds with one decimal, rates
# as whole numbers.
LOSS_DIGITS = 4


def history_cell(column: str, value) -> str:
    """A cell of the training log, formatted by the kind of its column."""
    if column == "best" or isinstance(value, bool | np.bool_):
        return "✓" if bool(value) else ""
    if column == "epoch":
        return str(int(value))
    if column.endswith("loss"):
        return fmt(value, LOSS_DIGITS)
    if "accuracy" in column or "f1" in column:
        return fmt(value)
    if column == "seconds":
        return fmt(value, 1)
    if column.endswith("per_second"):
        return fmt(value, 0)
    return cell(value)


def cropped_sentence(card: dict, cropped_test: int | None = None) -> str:
    """How many kept sequences were longer than `max_length` and cropped (the card's
    `cropped`), and how many of the test set (`cropped_test`, from test.parquet), in words;
    "" for a card without the count."""
    n = card.get("cropped")
    options = card.get("options") or {}
    if n is None or "max_length" not in options:
        return ""
    kept = sum(int(v) for v in (card.get("totals") or {}).values())
    limit = int(options["max_length"])
    where = "central" if options.get("crop") == "center" else "first (N-terminal)"
    test = "" if cropped_test is None else f", {int(cropped_test)} of them in the test set"
    of = f" of the {kept} kept sequences" if kept else ""
    verb = "was" if int(n) == 1 else "were"
    return (
        f"**Cropped sequences**: {int(n)}{of} {verb} longer than {limit} residues "
        f"(data.max_length) and cut to their {where} {limit}{test}; the model, its scores "
        "and its residue maps never see the rest."
    )


def dataset_markdown(card: dict, cropped_test: int | None = None) -> str:
    """Class counts per split, the sequences cropped to the length limit (`cropped_sentence`),
    plus the rows dropped by reason, from the dataset card."""
    totals = card.get("totals") or {}
    counts = card.get("counts") or {}
    classes = list(card.get("classes") or [])
    parts = ["## Dataset", ""]
    if classes and counts:
        header = ["split", *(class_header(c) for c in classes), "total"]
        rows = []
        for split, total in totals.items():
            per_class = counts.get(split, {})
            rows.append([split, *(str(per_class.get(c, 0)) for c in classes), str(total)])
        parts.append(md_table(header, rows))
    else:
        rows = [[split, str(total)] for split, total in totals.items()]
        parts.append(md_table(["split", "sequences"], rows))
    cropped = cropped_sentence(card, cropped_test)
    if cropped:
        parts += ["", cropped]
    dropped = card.get("dropped") or {}
    if isinstance(dropped, dict) and dropped:
        # only the filters that dropped something (the card lists every filter)
        rows = [[str(k), str(v)] for k, v in dropped.items() if v]
        none = [str(k) for k, v in dropped.items() if not v]
        if rows:
            parts += ["", "Rows dropped:", "", md_table(["reason", "rows"], rows)]
        if none:
            parts += ["", f"No rows dropped by: {', '.join(none)}."]
    return "\n".join(parts)


def finetuning_markdown(metrics: dict, history: pd.DataFrame | None = None) -> str:
    """Accuracy and macro-F1 per split, per-class test metrics and the training log, one
    format per kind of number (`history_cell`)."""
    rows = []
    for split in ("train", "val", "test"):
        if split in metrics and isinstance(metrics[split], dict):
            m = metrics[split]
            rows.append([split, fmt(m.get("accuracy", np.nan)), fmt(m.get("macro_f1", np.nan))])
    parts = ["## Fine-tuned classifier", "", md_table(["split", "accuracy", "macro-F1"], rows)]
    per_class = (metrics.get("test") or {}).get("per_class") if isinstance(metrics, dict) else None
    if per_class:
        rows = [
            [class_header(c), str(v.get("n", "")), fmt(v.get("accuracy")), fmt(v.get("f1"))]
            for c, v in per_class.items()
        ]
        parts += ["", "Test set per class:", "", md_table(["class", "n", "recall", "F1"], rows)]
    if history is not None and not history.empty:
        cols = [HISTORY_HEADERS.get(c, c.replace("_", " ")) for c in history.columns]
        rows = [
            [history_cell(c, v) for c, v in zip(history.columns, rec, strict=True)]
            for rec in history.itertuples(index=False)
        ]
        note = (
            " kept: the epoch whose weights the model keeps (best validation macro-F1, ties "
            "broken by the lower validation loss)."
            if "best" in history.columns
            else ""
        )
        parts += ["", f"Training log (losses: cross-entropy; time: seconds per epoch).{note}",
                  "", md_table(cols, rows)]  # fmt: skip
    return "\n".join(parts)


def _unmasked_section(stats: Statistics) -> str:
    unmasked = unmasked_rows(stats.table)
    if unmasked.empty:
        return ""
    rec = unmasked.iloc[0]
    row = [
        rec["model"],
        fmt_ci(rec["accuracy"], rec["accuracy_ci_low"], rec["accuracy_ci_high"]),
        fmt(rec["macro_f1"]),
        str(int(rec["n"])),
    ]
    header = ["model", "accuracy [CI]", "macro-F1", "test examples"]
    return "\n".join(["## Unmasked model (test set)", "", md_table(header, [row])])


def caution_notes(
    stats: Statistics, card: dict | None = None, cropped_test: int | None = None
) -> list[str]:
    """What limits this run's findings besides the statistics: a tiny test set, classes with a
    handful of test sequences, sequences cropped to the length limit (a model at chance is the
    Findings' own verdict)."""
    unmasked = unmasked_rows(stats.table)
    if unmasked.empty:
        return []
    rec = unmasked.iloc[0]
    notes = []
    if int(rec["n"]) < MIN_TEST_SEQUENCES:
        notes.append(
            f"**Tiny test set**: {int(rec['n'])} sequences (fewer than {MIN_TEST_SEQUENCES}); "
            "intervals are wide and differences between methods are hard to tell from noise."
        )
    test_counts = ((card or {}).get("counts") or {}).get("test") or {}
    small = {c: int(n) for c, n in test_counts.items() if int(n) < MIN_CLASS_TEST_SEQUENCES}
    if small:
        listed = ", ".join(f"{c} ({n})" for c, n in small.items())
        notes.append(
            f"**Classes with few test sequences**: {listed}; their per-class accuracies rest "
            f"on fewer than {MIN_CLASS_TEST_SEQUENCES} sequences each."
        )
    if int((card or {}).get("cropped") or 0):
        notes.append(cropped_sentence(card, cropped_test))
    return notes


def _check_model(frame: pd.DataFrame | None, model: str, what: str) -> None:
    if frame is None or "model" not in frame.columns:
        return
    others = set(frame["model"]) - {model}
    if others:
        raise ValueError(f"{what} holds rows of model(s) {sorted(others)}, not {model!r}")


def markdown_summary(
    table: pd.DataFrame | Statistics,
    completeness: pd.DataFrame | None = None,
    card: dict | None = None,
    metrics: dict | None = None,
    by_type: pd.DataFrame | None = None,
    overlap: pd.DataFrame | None = None,
    level: float = 0.95,
    recovery: pd.DataFrame | None = None,
    stability: pd.DataFrame | None = None,
    n_boot: int | None = None,
    classes: pd.DataFrame | None = None,
    profiles: pd.DataFrame | None = None,
    alpha: float = 0.05,
    margin: float = 0.02,
    notes: Sequence[str] | None = None,
    figures: Sequence[Mapping] = (),
    cropped_test: int | None = None,
    sae_fidelity: pd.DataFrame | None = None,
    sae_flag: Mapping | None = None,
    concepts: pd.DataFrame | None = None,
) -> str:
    """summary.md of one model: the answers in short (`kneurons.summary.headline`), the Findings
    (`kneurons.summary.findings`), then unmasked
    accuracy, fine-tuning, data, the published comparison, per variant the accuracy tables with
    CIs, tests against random and AUC, per-class accuracy, ground truth (site recovery),
    class-specific suppression and amplification (`kneurons.classes.report`), what the top neurons
    respond to (`kneurons.profiles.report`), enrichment, class overlap, stability and IG
    completeness (each section only when its data is given). The optional tables must be of the
    evaluations' model. `notes`: the limits' caution bullets (default `caution_notes`).
    `figures` (`kneurons.summary.gallery`): shown after the section each illustrates, the rest at
    the end; `cropped_test`: the test sequences cropped to the length limit. When latent types
    are scored, "SAE latents beside neurons" (`kneurons.summary.latents`) follows the accuracy
    tables, from the SAEs' fidelity (`sae_fidelity`, flagged by `sae_flag`) and the best unit
    per concept (`concepts`); a poor SAE is named wherever its latents are read."""
    stats = table if isinstance(table, Statistics) else add_statistics(table, level=level)
    model = stats.model
    _check_model(completeness, model, "completeness")
    _check_model(by_type, model, "by_type")
    _check_model(overlap, model, "overlap")
    _check_model(recovery, model, "recovery")
    _check_model(stability, model, "stability")
    _check_model(classes, model, "classes")
    _check_model(profiles, model, "profiles")
    _check_model(sae_fidelity, model, "sae_fidelity")
    _check_model(concepts, model, "concepts")

    answers = headline_section(stats, card, alpha, recovery, classes, sae_fidelity, sae_flag)
    parts = [f"{TITLE} ({model})", "", answers, ""]
    findings = findings_section(
        stats,
        card,
        level,
        n_boot,
        completeness,
        stability,
        caution_notes(stats, card, cropped_test) if notes is None else notes,
        classes=classes,
        alpha=alpha,
        margin=margin,
        labels=latent_labels(sae_fidelity),
    )
    shown: list[Mapping] = []

    def with_figures(block: str, section: str, variant=None) -> str:
        if not block:
            return ""
        picked = gallery.pick(figures, section, variant)
        shown.extend(picked)
        return "\n\n".join(x for x in (block, gallery.figure_markdown(picked)) if x)

    latents = latent_section(stats, sae_fidelity, sae_flag, concepts, profiles, alpha, level)
    blocks = [findings, _unmasked_section(stats)]
    if metrics:
        blocks.append(finetuning_markdown(metrics))
    if card:
        blocks.append(dataset_markdown(card, cropped_test))
    if not masked_rows(stats.table).empty:
        blocks.append(sections.published_section(stats))
        blocks += [
            with_figures(sections.variant_section(stats, v, level), "variant", v)
            for v in variants(stats.table)
        ]
        blocks += [
            latents,
            with_figures(ground_truth_section(stats, recovery, level=level), "ground_truth"),
            with_figures(specificity_section(classes, model, level=level), "classes"),
            with_figures(profiles_section(profiles) if profiles is not None else "", "profiles"),
            with_figures(sections.enrichment_section(by_type), "enrichment"),
            sections.overlap_section(overlap),
        ]
    else:
        blocks.append(latents)
    blocks.append(with_figures(stability_section(stability), "stability"))
    blocks.append(completeness_section(completeness))
    blocks.append(gallery.leftover(figures, shown))
    for block in blocks:
        if block:
            parts += [block, ""]
    return "\n".join(parts).rstrip() + "\n"
