"""Where in a sequence do selected neurons act? Residue maps of a selection's units.

For a selection (unit masks per module, 1 = selected, e.g. the kept units of one layer type over
all its layers; `kneurons.evaluation.masking.unit_masks`), two maps per residue:
- `activation`: the summed |activation| of the selected units at that residue;
- `ig`: the residue-level integrated gradients of the true-class probability through them. For
  each module in turn, only its selected units are scaled by alpha (the rest of the network,
  unselected units included, runs normally); the attribution of residue t is
  sum_{i selected} a_i(t) * integral of dF/da_i(t). Summed over tokens it equals
  F(1) - F(selected units of that module silenced) (completeness); the map sums the modules.
  Computed by the scoring IG engine (`kneurons.scoring.integrals.gradient_integrals`, masked, per
  token).
How well a map finds known sites is `kneurons.residues.recovery`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kneurons.figures import pyplot, save_figure
from kneurons.model.batching import tokenize
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import captured_outputs
from kneurons.residues.recovery import MAP_VALUES
from kneurons.scoring.adaptive import refine_panels
from kneurons.scoring.hooked import split_panel_integrals
from kneurons.scoring.quadrature import ATOL, RTOL, completeness_tolerance, quadrature_rule
from kneurons.vocab import UnitKey


@torch.no_grad()
def activation_map(
    model: EsmClassifier, tokens: torch.Tensor, masks: Mapping[UnitKey, torch.Tensor]
) -> np.ndarray:
    """Summed |activation| of the selected units (mask 1) at every residue of one sequence."""
    total = torch.zeros(len(tokens) - 2, dtype=torch.float64)
    with captured_outputs(model, masks) as outputs:
        model(tokens.unsqueeze(0).to(model.head.weight.device))
    for module, mask in masks.items():
        out = outputs[module][1:-1, 0].abs().double().cpu()  # (L, units): BOS/EOS dropped
        total += out @ mask.double()
    return total.numpy()


def ig_maps(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    masks: Mapping[UnitKey, torch.Tensor],
    steps: int = 16,
    quadrature: str = "gausslegendre",
    max_tokens: int = 16384,
    *,
    rtol: float | None = RTOL,
    atol: float = ATOL,
    max_steps: int = 256,
) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Residue-level IG through the selected units, for each sequence (BOS and EOS dropped);
    and the completeness of every (sequence, module) integral: a frame with `example`,
    `layer_type`, `layer`, `f0`, `f1`, `gap`, `steps` (nodes), `panels`, `above_tolerance`.

    The same accuracy policy as the scores (`kneurons.scoring.adaptive.refine_panels`): an integral
    whose |gap| exceeds atol + rtol |F(1) - F(0)| has the panels of its path that hold the gap
    halved,
    up to `max_steps` nodes (rtol None: one pass, nothing refined or judged). On a trained model
    masked query/key paths switch sharply, and 16 fixed nodes left map gaps larger than F's whole
    range. Runs on the model's device."""
    maps = [np.zeros(len(t) - 2) for t in tokens]
    pairs = [(e, module) for e in range(len(tokens)) for module in masks]
    if not pairs:
        return maps, pd.DataFrame(columns=COMPLETENESS_COLUMNS)
    alphas, weights = quadrature_rule(quadrature, steps)
    device = model.head.weight.device

    def integrate(tasks, progress_label):
        return split_panel_integrals(
            model, tokens, labels, tasks, alphas, weights, device, max_tokens,
            masks=masks, per_token=True, progress_label=progress_label,
        )  # fmt: skip

    refined = refine_panels(integrate, pairs, steps, rtol, atol, max_steps, "residue IG maps")
    values, f0, f1 = refined.values, refined.f0, refined.f1
    rows = []
    for e, module in pairs:
        per_token = values[(e, module)].sum(1)  # (T,)
        maps[e] += per_token[1:-1]
        delta = f1[e] - f0[(e, module)]
        gap = float(per_token.sum() - delta)
        above = rtol is not None and abs(gap) > completeness_tolerance(delta, rtol, atol)
        rows.append(
            (e, *module, f0[(e, module)], f1[e], gap, refined.nodes[(e, module)],
             refined.panels[(e, module)], bool(above))
        )  # fmt: skip
    return maps, pd.DataFrame(rows, columns=COMPLETENESS_COLUMNS)


COMPLETENESS_COLUMNS = [
    "example", "layer_type", "layer", "f0", "f1", "gap", "steps", "panels", "above_tolerance",
]  # fmt: skip


def ig_map(
    model: EsmClassifier,
    tokens: torch.Tensor,
    label: int,
    masks: Mapping[UnitKey, torch.Tensor],
    steps: int = 16,
    quadrature: str = "gausslegendre",
) -> tuple[np.ndarray, dict[UnitKey, float]]:
    """`ig_maps` of one sequence, one fixed pass: the map and the gap per module."""
    maps, gaps = ig_maps(model, [tokens], [label], masks, steps, quadrature, rtol=None)
    return maps[0], {
        (lt, layer): gap
        for lt, layer, gap in gaps[["layer_type", "layer", "gap"]].itertuples(index=False)
    }


def residue_maps(
    model: EsmClassifier,
    alphabet,
    examples: pd.DataFrame,
    masks: Mapping[UnitKey, torch.Tensor],
    steps: int = 16,
    quadrature: str = "gausslegendre",
    *,
    rtol: float | None = RTOL,
    atol: float = ATOL,
    max_steps: int = 256,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long table: accession, position (1-based), residue, activation, ig (one row per residue);
    and the IG integrals' completeness (`ig_maps`)."""
    model.eval()
    tokens = tokenize(alphabet, examples["sequence"].tolist())
    labels = examples["label"].tolist()
    ig, completeness = ig_maps(
        model, tokens, labels, masks, steps, quadrature, rtol=rtol, atol=atol, max_steps=max_steps
    )
    frames = []
    for row, tok, ig_values in zip(examples.itertuples(index=False), tokens, ig, strict=True):
        frames.append(
            pd.DataFrame(
                {
                    "accession": row.accession,
                    "position": np.arange(1, len(row.sequence) + 1, dtype=np.int64),
                    "residue": list(row.sequence),
                    "activation": activation_map(model, tok, masks),
                    "ig": ig_values,
                }
            )
        )
    return pd.concat(frames, ignore_index=True), completeness


def completeness_summary(completeness: pd.DataFrame) -> dict:
    """What a map file's metadata says about its IG integrals (one per sequence and module)."""
    delta = (completeness["f1"] - completeness["f0"]).abs()
    relative = completeness["gap"].abs() / delta.where(delta > 0)
    return {
        "n_integrals": len(completeness),
        "n_refined": int((completeness["panels"] > 1).sum()),
        "n_above_tolerance": int(completeness["above_tolerance"].sum()),
        "gap_max_abs": float(completeness["gap"].abs().max()) if len(completeness) else 0.0,
        "rel_gap_max": float(relative.max()) if relative.notna().any() else 0.0,
        "steps_max": int(completeness["steps"].max()) if len(completeness) else 0,
    }


MAP_LABELS = {
    "activation": "activation: summed |a| of the kept neurons",
    "ig": "IG: residue attribution through the kept neurons",
}


def plot_residue_maps(
    maps: pd.DataFrame, sites: pd.DataFrame, accessions: Sequence[str], path_png, title: str = ""
) -> None:
    """Heat strips of both maps for a few sequences, planted or annotated sites outlined, each
    strip labelled and with its colour bar; `title` names the selection (method, layer type,
    retention)."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    accessions = list(accessions)
    fig, axes = plt.subplots(
        len(accessions) * 2, 1, figsize=(13, 0.95 * 2 * len(accessions) + 1.2), squeeze=False
    )
    for k, acc in enumerate(accessions):
        rows = maps[maps["accession"] == acc]
        for j, value in enumerate(MAP_VALUES):
            ax = axes[2 * k + j, 0]
            data = rows[value].to_numpy()[None, :]
            vmax = np.abs(data).max() or 1.0
            cmap, vmin = ("viridis", 0.0) if value == "activation" else ("RdBu_r", -vmax)
            image = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                              extent=(0.5, len(rows) + 0.5, 0, 1))  # fmt: skip
            bar = fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
            bar.ax.tick_params(labelsize=6)
            for site in sites[sites["accession"] == acc].itertuples(index=False):
                colour = "red" if getattr(site, "kind", "motif") != "decoy" else "orange"
                ax.add_patch(Rectangle((site.start - 0.5, 0), site.end - site.start + 1, 1,
                                       fill=False, edgecolor=colour, linewidth=1.5))  # fmt: skip
            ax.set_yticks([])
            ax.set_ylabel("activation" if value == "activation" else "IG", rotation=0,
                          ha="right", va="center", fontsize=8)  # fmt: skip
            if j == 0:
                ax.set_title(f"{acc}: top strip {MAP_LABELS['activation']}; bottom strip "
                             f"{MAP_LABELS['ig']}", fontsize=8, loc="left")  # fmt: skip
            if k == len(accessions) - 1 and j == 1:
                ax.set_xlabel("residue position")
            else:
                ax.set_xticks([])
    heading = title or "Residue maps of the selected neurons"
    fig.suptitle(f"{heading} (outlined: red = motif / annotated site, orange = decoy)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, path_png, svg=False, dpi=130)
