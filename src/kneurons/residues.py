"""Where in a sequence do selected neurons act? Residue maps and how well they find known sites.

For a selection (the kept neurons of one layer type, over all its layers), two maps per residue:
- `activation`: the summed |activation| of the selected neurons at that residue;
- `ig`: the residue-level integrated gradients of the true-class probability through them. For
  each layer in turn, only the selected units of that layer's module are scaled by alpha (the rest
  of the network, unselected units included, runs normally); the attribution of residue t is
  sum_{i selected} a_i(t) * integral of dF/da_i(t). Summed over tokens it equals
  F(1) - F(selected units of that layer silenced) (completeness); the map sums the layers.
Sites (planted motifs, or annotated active/binding sites) are compared with a map by AUROC: the
probability that a site residue outranks a non-site residue of the same sequence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from kneurons.model import EsmClassifier, get_module
from kneurons.scoring import quadrature


def _residue_slice(tokens: torch.Tensor) -> slice:
    return slice(1, len(tokens) - 1)  # BOS ... EOS


@torch.no_grad()
def activation_map(
    model: EsmClassifier, tokens: torch.Tensor, layer_type: str, masks: dict[int, torch.Tensor]
) -> np.ndarray:
    """Summed |activation| of the kept units (mask 1) at every residue of one sequence."""
    total = torch.zeros(len(tokens) - 2, dtype=torch.float64)
    outputs = {}

    def make_hook(layer):
        def hook(module, inputs, output):
            outputs[layer] = output.detach().clone()  # fair-esm scales q in place afterwards

        return hook

    handles = [
        get_module(model.encoder, layer_type, layer).register_forward_hook(make_hook(layer))
        for layer in masks
    ]
    try:
        model(tokens.unsqueeze(0))
    finally:
        for h in handles:
            h.remove()
    for layer, mask in masks.items():
        out = outputs[layer][_residue_slice(tokens), 0].abs().double()  # (L, units)
        total += out @ mask.double()
    return total.numpy()


def ig_map(
    model: EsmClassifier,
    tokens: torch.Tensor,
    label: int,
    layer_type: str,
    masks: dict[int, torch.Tensor],
    steps: int = 16,
    method: str = "gausslegendre",
) -> tuple[np.ndarray, dict[int, float]]:
    """Residue-level IG through the kept units; returns the map and the gap per layer."""
    alphas_np, weights_np = quadrature(method, steps)
    alphas = torch.tensor([*alphas_np, 0.0, 1.0], dtype=torch.float32)
    weights = torch.tensor([*weights_np, 0.0, 0.0], dtype=torch.float64)
    n_rows = len(alphas)
    batch = tokens.unsqueeze(0).expand(n_rows, -1)
    total = torch.zeros(len(tokens) - 2, dtype=torch.float64)
    gaps = {}
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with torch.no_grad():
            x, _ = model.embed(tokens.unsqueeze(0))
            prefix = [x]
            for layer in range(max(masks)):
                prefix.append(model.run_layers(prefix[-1], None, layer, layer + 1))
        for layer, mask in masks.items():
            state = {}

            def hook(module, inputs, output, mask=mask, state=state):
                # kept units scaled by alpha_k in row k, all other units left as they are
                scale = 1 - mask + mask * alphas.view(-1, 1)  # (rows, units)
                state["a"] = output[:, 0].detach().clone()
                scaled = (output.detach() * scale.unsqueeze(0)).requires_grad_(True)
                state["scaled"] = scaled
                return scaled.clone()

            handle = get_module(model.encoder, layer_type, layer).register_forward_hook(hook)
            try:
                with torch.enable_grad():
                    x_l = prefix[layer].expand(-1, n_rows, -1).contiguous()
                    logits = model.classify(model.run_layers(x_l, None, layer), batch)
                    prob = torch.softmax(logits.float(), dim=-1)[:, label]
                    (grad,) = torch.autograd.grad(prob.sum(), state["scaled"])
            finally:
                handle.remove()
            integral = torch.einsum("tku,k->tu", grad.double(), weights)  # (T, units)
            per_token = (state["a"].double() * integral * mask.double()).sum(1)  # (T,)
            total += per_token[_residue_slice(tokens)]
            prob = prob.detach()
            gaps[layer] = float(per_token.sum() - (prob[-1] - prob[-2]))
    finally:
        for p, flag in zip(model.parameters(), requires_grad, strict=True):
            p.requires_grad_(flag)
    return total.numpy(), gaps


def residue_maps(
    model: EsmClassifier,
    alphabet,
    examples: pd.DataFrame,
    layer_type: str,
    masks: dict[int, torch.Tensor],
    steps: int = 16,
    method: str = "gausslegendre",
) -> pd.DataFrame:
    """Long table: accession, position (1-based), residue, activation, ig (one row per residue)."""
    model.eval()
    frames = []
    for row in examples.itertuples(index=False):
        tokens = torch.tensor(
            [alphabet.cls_idx, *alphabet.encode(row.sequence), alphabet.eos_idx], dtype=torch.long
        )
        act = activation_map(model, tokens, layer_type, masks)
        ig, _ = ig_map(model, tokens, int(row.label), layer_type, masks, steps, method)
        frames.append(
            pd.DataFrame(
                {
                    "accession": row.accession,
                    "position": np.arange(1, len(row.sequence) + 1, dtype=np.int64),
                    "residue": list(row.sequence),
                    "activation": act,
                    "ig": ig,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def auroc(values: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN without both classes."""
    values = np.asarray(values, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(values).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def site_mask(maps: pd.DataFrame, sites: pd.DataFrame) -> np.ndarray:
    """True for the rows of `maps` (accession, position) that fall inside any site interval."""
    inside = np.zeros(len(maps), dtype=bool)
    by_accession = maps.groupby("accession").indices
    for site in sites.itertuples(index=False):
        idx = by_accession.get(site.accession)
        if idx is None:
            continue
        pos = maps["position"].to_numpy()[idx]
        inside[idx[(pos >= site.start) & (pos <= site.end)]] = True
    return inside


def site_recovery(maps: pd.DataFrame, sites: pd.DataFrame, value: str) -> dict:
    """AUROC of `value` for site residues, per sequence (then averaged) and pooled."""
    positive = site_mask(maps, sites)
    per_sequence = []
    for _, idx in maps.groupby("accession").indices.items():
        score = auroc(maps[value].to_numpy()[idx], positive[idx])
        if not np.isnan(score):
            per_sequence.append(score)
    return {
        "auroc_mean": float(np.mean(per_sequence)) if per_sequence else float("nan"),
        "auroc_pooled": auroc(maps[value].to_numpy(), positive),
        "n_sequences": len(per_sequence),
        "n_site_residues": int(positive.sum()),
    }


_FEATURE = re.compile(r"(?:ACT_SITE|BINDING)\s+(\d+)(?:\.\.(\d+))?")


def parse_site_features(text: str) -> list[tuple[int, int]]:
    """(start, end) intervals from UniProt `ft_act_site` / `ft_binding` text.

    E.g. 'ACT_SITE 57; /note="Proton acceptor"; BINDING 100..104; /ligand="ATP"'.
    """
    return [(int(a), int(b) if b else int(a)) for a, b in _FEATURE.findall(text or "")]


def sites_from_uniprot(table: pd.DataFrame) -> pd.DataFrame:
    """Annotated active and binding sites of a UniProt table (raw or renamed columns)."""
    columns = {
        "Active site": "active_site",
        "ft_act_site": "active_site",
        "Binding site": "binding_site",
        "ft_binding": "binding_site",
    }
    accession = "Entry" if "Entry" in table.columns else "accession"
    rows = []
    for column, kind in columns.items():
        if column not in table.columns:
            continue
        for acc, text in zip(table[accession], table[column], strict=True):
            for start, end in parse_site_features(text):
                rows.append({"accession": acc, "kind": kind, "start": start, "end": end})
    return pd.DataFrame(rows, columns=["accession", "kind", "start", "end"])


def plot_residue_maps(
    maps: pd.DataFrame, sites: pd.DataFrame, accessions: Sequence[str], path_png
) -> None:
    """Heat strips of both maps for a few sequences, planted or annotated sites outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from kneurons.io import atomic_path

    accessions = list(accessions)
    fig, axes = plt.subplots(
        len(accessions) * 2, 1, figsize=(12, 0.9 * 2 * len(accessions) + 0.8), squeeze=False
    )
    for k, acc in enumerate(accessions):
        rows = maps[maps["accession"] == acc]
        for j, value in enumerate(("activation", "ig")):
            ax = axes[2 * k + j, 0]
            data = rows[value].to_numpy()[None, :]
            vmax = np.abs(data).max() or 1.0
            cmap, vmin = ("viridis", 0.0) if value == "activation" else ("RdBu_r", -vmax)
            ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                      extent=(0.5, len(rows) + 0.5, 0, 1))  # fmt: skip
            for site in sites[sites["accession"] == acc].itertuples(index=False):
                colour = "red" if getattr(site, "kind", "motif") != "decoy" else "orange"
                ax.add_patch(Rectangle((site.start - 0.5, 0), site.end - site.start + 1, 1,
                                       fill=False, edgecolor=colour, linewidth=1.5))  # fmt: skip
            ax.set_yticks([])
            ax.set_ylabel(value, rotation=0, ha="right", va="center", fontsize=8)
            if j == 0:
                ax.set_title(f"{acc} (sites outlined: red motif/site, orange decoy)", fontsize=9)
            if k == len(accessions) - 1 and j == 1:
                ax.set_xlabel("residue position")
            else:
                ax.set_xticks([])
    fig.tight_layout()
    with atomic_path(path_png) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)


MAP_VALUES = ("activation", "ig")


def recovery_table(maps: Sequence[pd.DataFrame], sites: pd.DataFrame) -> pd.DataFrame:
    """One row per (selection, site kind, map value) with the AUROC of site residues.

    IG is used signed: a residue that raises the true-class probability ranks high.
    """
    rows = []
    for frame in maps:
        if frame.empty:
            continue
        head = frame.iloc[0]
        family, _, seed = str(head["method"]).partition("-")
        for kind, kind_sites in sites.groupby("kind"):
            for value in MAP_VALUES:
                stats = site_recovery(frame, kind_sites, value)
                rows.append(
                    {
                        "method": head["method"],
                        "method_family": family,
                        "seed": int(seed) if seed else None,
                        "layer_type": head["layer_type"],
                        "retention": float(head["retention"]),
                        "site_kind": kind,
                        "map": value,
                        **stats,
                    }
                )
    table = pd.DataFrame(rows)
    if len(table):
        table["seed"] = table["seed"].astype("Int64")
    return table


def recovery_markdown(table: pd.DataFrame, model: str) -> str:
    """Per site kind and map: methods x (layer type, retention) AUROC; random as mean ± std."""
    lines = [f"# Site recovery: {model}", ""]
    if table.empty:
        return "\n".join([*lines, "No site annotations: nothing to recover.", ""])
    lines += [
        "AUROC with which each residue map ranks site residues above the other residues of the "
        "same sequence (mean over sequences; 0.5 = chance). Motif and annotated-site rows should "
        "be high for a method that finds the knowledge neurons; decoy rows should stay near 0.5.",
        "",
    ]
    table = table.assign(column=table["layer_type"] + " " + table["retention"].map("{:g}%".format))
    columns = list(dict.fromkeys(table.sort_values(["layer_type", "retention"])["column"]))
    for (kind, value), part in table.groupby(["site_kind", "map"], sort=True):
        lines += [f"## {kind}: {value} map", ""]
        lines.append("| method | " + " | ".join(columns) + " |")
        lines.append("| :--- |" + " ---: |" * len(columns))
        for family, rows in part.groupby("method_family", sort=True):
            cells = []
            for column in columns:
                values = rows.loc[rows["column"] == column, "auroc_mean"].dropna()
                if values.empty:
                    cells.append("—")
                elif family == "random":
                    std = values.std(ddof=1) if len(values) > 1 else 0.0
                    cells.append(f"{values.mean():.3f} ± {std:.3f}")
                else:
                    cells.append(f"{values.iloc[0]:.3f}")
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
