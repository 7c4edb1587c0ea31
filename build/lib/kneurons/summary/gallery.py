"""The figures of summary.md and summary.html: each figure as an image that links to itself, by a
path relative to the page (`figures/<name>.png`, so the page works opened from disk), with a
caption in words, placed after the section it illustrates.

A figure is a dict: `kind` (accuracy, per_class, heatmap, enrichment, stability, site_recovery,
class_specificity, logo), the options that name it (`mode`, `scope`, `direction`, `method`,
`layer_type`) and `src`, its path relative to the page. The summary names only figures that its
rule writes or reads (rules/inputs/summary.smk), so the page links no missing file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kneurons.format import target_words

# section of summary.md -> the kinds of figure shown after it
SECTION_KINDS = {
    "variant": ("accuracy", "per_class"),
    "ground_truth": ("site_recovery",),
    "classes": ("class_specificity",),
    "profiles": ("logo",),
    "enrichment": ("heatmap", "enrichment"),
    "stability": ("stability",),
}


def variant_words(mode: str, scope: str, direction: str) -> str:
    """A masking variant in words: "keeping only the top r% of each layer type's neurons, the
    rest zeroed"."""
    pool = {
        "layer_type": "of each layer type's neurons",
        "layer": "of each layer's neurons",
        "qkv": "of the query, key and value neurons ranked together",
        "all": "of all scored neurons ranked together",
    }.get(scope, f"of scope {scope}")
    if direction == "keep":
        rest = "the rest zeroed" if mode == "zero" else "the rest set to their training mean"
        return f"keeping only the top r% {pool}, {rest}"
    how = "zeroed" if mode == "zero" else "set to their training mean"
    return f"removing the top r% {pool} ({how})"


def caption(figure: Mapping) -> str:
    """What a figure shows, in words."""
    kind = figure["kind"]
    variant = tuple(figure.get(k) for k in ("mode", "scope", "direction"))
    method, layer_type = figure.get("method"), figure.get("layer_type")
    if kind == "accuracy":
        return f"Test accuracy vs retention, {variant_words(*variant)}: methods against random"
    if kind == "per_class":
        return f"Per-class accuracy, {variant_words(*variant)}"
    if kind == "heatmap":
        return f"Where {method}'s selected neurons lie, by layer and layer type ({figure['scope']})"
    if kind == "enrichment":
        return "Enrichment of each layer type in the pooled selections, against random"
    if kind == "stability":
        return "Stability of the selection: split-half overlap of the top neurons"
    if kind == "site_recovery":
        return "Site recovery: how well the kept neurons' residue maps pick out the known sites"
    if kind == "class_specificity":
        return (
            f"Class-specific effects of {method}'s per-class units in the "
            f"{target_words(layer_type, code=False)}"
        )
    if kind == "logo":
        return (
            f"What {method}'s top neurons in the {target_words(layer_type, code=False)} respond to"
        )
    return str(figure.get("name", kind))


def figure_markdown(figures: Iterable[Mapping]) -> str:
    """The figures as linked images in one paragraph (side by side where the page is wide
    enough), then their captions with the file each shows; "" for none."""
    figures = list(figures)
    if not figures:
        return ""
    images = " ".join(f"[![{caption(f)}]({f['src']})]({f['src']})" for f in figures)
    lead = "Figure" if len(figures) == 1 else "Figures, left to right"
    captions = [f"- _{caption(f)}_ ([{f['src']}]({f['src']}))" for f in figures]
    return "\n".join([images, "", f"{lead}:", "", *captions])


def pick(figures: Sequence[Mapping], section: str, variant: Sequence[str] | None = None):
    """The figures shown after `section` (`SECTION_KINDS`); for "variant", those of `variant`."""
    kinds = SECTION_KINDS[section]
    out = [f for f in figures if f["kind"] in kinds]
    if variant is not None:
        out = [
            f for f in out if (f.get("mode"), f.get("scope"), f.get("direction")) == tuple(variant)
        ]
    return out


def leftover(figures: Sequence[Mapping], shown: Iterable[Mapping]) -> str:
    """A closing "Other figures" section for figures no section showed; "" when none is left."""
    seen = {f["src"] for f in shown}
    rest = [f for f in figures if f["src"] not in seen]
    if not rest:
        return ""
    return "\n".join(["## Other figures", "", figure_markdown(rest)])
