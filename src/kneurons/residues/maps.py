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

A job maps several selections at once (every method and retention level of one layer type):
`residue_maps_of_selections`. Its activation maps take one forward pass per length-bucketed batch
of sequences for all of them (`activation_maps`), and its IG maps one adaptive run of the engine
in which every distinct (module, mask) is a task of its own, deduplicated over the selections, the
rows of all selections sharing prefix passes and batches (`ig_maps_of_selections`). Each
selection's maps equal its own `residue_maps` (the selection alone: an engine run of its own,
one forward per sequence for the activation map; the reference and the benchmark's baseline) up
to float rounding (`tests/test_residues.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kneurons.figures import pyplot, save_figure
from kneurons.model.batching import iter_batches, tokenize
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import captured_outputs
from kneurons.residues.recovery import MAP_VALUES
from kneurons.scoring.adaptive import refine_panels
from kneurons.scoring.hooked import split_panel_integrals
from kneurons.scoring.integrals import VARIANT
from kneurons.scoring.quadrature import ATOL, RTOL, completeness_tolerance, quadrature_rule
from kneurons.vocab import UnitKey

Selections = Mapping[str, Mapping[UnitKey, torch.Tensor]]  # name -> its unit masks (1 = selected)


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


@torch.no_grad()
def activation_maps(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    selections: Selections,
    max_tokens: int = 16384,
) -> dict[str, list[np.ndarray]]:
    """`activation_map` of every sequence under every selection (name -> list over `tokens`):
    one forward pass per length-bucketed batch (`kneurons.model.batching.iter_batches`, about
    `max_tokens` padded tokens) captures the modules' outputs once, and each selection's map is
    the sum over modules of |output| times its masks (one matmul per module for all
    selections), BOS, EOS and padding dropped. Padding is masked in attention, so a residue's
    values equal the one-sequence pass's up to float rounding."""
    modules = list(dict.fromkeys(module for masks in selections.values() for module in masks))
    names = list(selections)
    out: dict[str, list] = {name: [None] * len(tokens) for name in names}
    if not tokens:
        return out
    device = model.head.weight.device
    model.eval()
    with captured_outputs(model, modules) as outputs:
        for indices, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            model(batch.to(device))
            totals = torch.zeros(batch.shape[1], len(indices), len(names), dtype=torch.float64)
            for module in modules:
                having = [k for k, name in enumerate(names) if module in selections[name]]
                stacked = torch.stack(
                    [selections[names[k]][module].double() for k in having], dim=1
                )  # (units, selections with the module)
                totals[:, :, having] += outputs[module].abs().double().cpu() @ stacked
            for j, i in enumerate(indices):
                for k, name in enumerate(names):
                    out[name][i] = totals[1 : len(tokens[i]) - 1, j, k].numpy()
    return out


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
    One selection: `ig_maps_of_selections` of it alone.

    The same accuracy policy as the scores (`kneurons.scoring.adaptive.refine_panels`): an
    integral whose |gap| exceeds atol + rtol |F(1) - F(0)| has the panels of its path that hold
    the gap halved, up to `max_steps` nodes (rtol None: one pass, nothing refined or judged). On
    a trained model masked query/key paths switch sharply, and 16 fixed nodes left map gaps
    larger than F's whole range. Runs on the model's device."""
    return ig_maps_of_selections(
        model, tokens, labels, {"": masks}, steps, quadrature, max_tokens, rtol=rtol, atol=atol,
        max_steps=max_steps,
    )[""]  # fmt: skip


COMPLETENESS_COLUMNS = [
    "example", "layer_type", "layer", "f0", "f1", "gap", "steps", "panels", "above_tolerance",
]  # fmt: skip


def ig_maps_of_selections(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    selections: Selections,
    steps: int = 16,
    quadrature: str = "gausslegendre",
    max_tokens: int = 16384,
    *,
    rtol: float | None = RTOL,
    atol: float = ATOL,
    max_steps: int = 256,
) -> dict[str, tuple[list[np.ndarray], pd.DataFrame]]:
    """`ig_maps` of several selections (name -> its masks) in one run of the engine: name ->
    (maps, completeness), each what `ig_maps` gives for that selection alone, up to float
    rounding.

    Every distinct mask of a module is one variant of it (`kneurons.scoring.integrals.VARIANT`,
    "query#0", "query#1", ...): selections whose masks on a module are identical share its
    integrals, and the variants of one layer run in the same batches from one prefix pass per
    batch of sequences. The accuracy policy (`refine_panels`) still judges and refines every
    (sequence, variant) integral on its own, so each (sequence, module, selection) meets the
    tolerance as it would alone. The engine sums the units per token (`sum_units`), so a task
    holds (tokens,), not (tokens, units)."""
    variants: dict[UnitKey, dict[bytes, UnitKey]] = {}  # module -> mask bits -> its variant
    masks: dict[UnitKey, torch.Tensor] = {}  # variant -> its mask
    variant_of: dict[tuple[str, UnitKey], UnitKey] = {}  # (selection, module) -> variant
    for name, selection in selections.items():
        for (layer_type, layer), mask in selection.items():
            known = variants.setdefault((layer_type, layer), {})
            bits = mask.detach().cpu().numpy().astype(np.float32).tobytes()
            if bits not in known:
                known[bits] = (f"{layer_type}{VARIANT}{len(known)}", layer)
                masks[known[bits]] = mask
            variant_of[(name, (layer_type, layer))] = known[bits]
    out = {}
    pairs = [(e, variant) for e in range(len(tokens)) for variant in masks]
    if not pairs:
        for name in selections:
            maps = [np.zeros(len(t) - 2) for t in tokens]
            out[name] = (maps, pd.DataFrame(columns=COMPLETENESS_COLUMNS))
        return out
    alphas, weights = quadrature_rule(quadrature, steps)
    device = model.head.weight.device

    def integrate(tasks, progress_label):
        return split_panel_integrals(
            model, tokens, labels, tasks, alphas, weights, device, max_tokens, masks=masks,
            per_token=True, sum_units=True, progress_label=progress_label,
        )  # fmt: skip

    refined = refine_panels(integrate, pairs, steps, rtol, atol, max_steps, "residue IG maps")
    values, f0, f1 = refined.values, refined.f0, refined.f1
    for name, selection in selections.items():
        maps = [np.zeros(len(t) - 2) for t in tokens]
        rows = []
        for e in range(len(tokens)):
            for module in selection:
                pair = (e, variant_of[(name, module)])
                per_token = values[pair]  # (T,): summed over the units
                maps[e] += per_token[1:-1]
                delta = f1[e] - f0[pair]
                gap = float(per_token.sum() - delta)
                above = rtol is not None and abs(gap) > completeness_tolerance(delta, rtol, atol)
                rows.append(
                    (e, *module, f0[pair], f1[e], gap, refined.nodes[pair],
                     refined.panels[pair], bool(above))
                )  # fmt: skip
        out[name] = (maps, pd.DataFrame(rows, columns=COMPLETENESS_COLUMNS))
    return out


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
    and the IG integrals' completeness (`ig_maps`). One selection, one forward pass per sequence
    for its activation map: the reference of `residue_maps_of_selections`."""
    model.eval()
    tokens = tokenize(alphabet, examples["sequence"].tolist())
    labels = examples["label"].tolist()
    ig, completeness = ig_maps(
        model, tokens, labels, masks, steps, quadrature, rtol=rtol, atol=atol, max_steps=max_steps
    )
    activation = [activation_map(model, tok, masks) for tok in tokens]
    return _map_table(examples, activation, ig), completeness


def residue_maps_of_selections(
    model: EsmClassifier,
    alphabet,
    examples: pd.DataFrame,
    selections: Selections,
    steps: int = 16,
    quadrature: str = "gausslegendre",
    max_tokens: int = 16384,
    *,
    rtol: float | None = RTOL,
    atol: float = ATOL,
    max_steps: int = 256,
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """`residue_maps` of several selections (name -> its masks) over the same sequences: name
    -> (map table, completeness). Activation maps batched over sequences for all selections
    (`activation_maps`), IG maps in one engine run (`ig_maps_of_selections`)."""
    model.eval()
    tokens = tokenize(alphabet, examples["sequence"].tolist())
    labels = examples["label"].tolist()
    ig = ig_maps_of_selections(
        model, tokens, labels, selections, steps, quadrature, max_tokens, rtol=rtol, atol=atol,
        max_steps=max_steps,
    )  # fmt: skip
    activation = activation_maps(model, tokens, selections, max_tokens)
    return {
        name: (_map_table(examples, activation[name], ig[name][0]), ig[name][1])
        for name in selections
    }


def _map_table(examples: pd.DataFrame, activation, ig) -> pd.DataFrame:
    """The long table of `residue_maps` from per-sequence activation and IG maps."""
    frames = []
    for row, act, ig_values in zip(examples.itertuples(index=False), activation, ig, strict=True):
        frames.append(
            pd.DataFrame(
                {
                    "accession": row.accession,
                    "position": np.arange(1, len(row.sequence) + 1, dtype=np.int64),
                    "residue": list(row.sequence),
                    "activation": act,
                    "ig": ig_values,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def selection_fingerprint(masks: Mapping[UnitKey, torch.Tensor]) -> list:
    """Which units a selection maps, as plain data for a store key (`kneurons.store`): every
    module with its unit count and its mask's bits. Unlike the evaluation's
    `kneurons.evaluation.masking.mask_fingerprint`, a module whose mask is all ones stays in:
    its units are mapped, not left alone."""
    out = []
    for (layer_type, layer), mask in sorted(masks.items()):
        bits = mask.detach().cpu().numpy() > 0.5
        out.append([layer_type, int(layer), int(bits.size), np.packbits(bits).tobytes().hex()])
    return out


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
