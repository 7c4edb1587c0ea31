"""How well each spliced SAE stands in for its site, on held-out sequences: the table and page of
rule sae_fidelity.

Per SAE: fraction of variance explained (FVE), share of dead latents (never active on the test
residues), mean active latents per token, and the classifier's test accuracy three ways: as it is
(`own`), with this site replaced by the SAE's reconstruction (`spliced`, the error term dropped)
and with the site zeroed (`zero`, what losing the site costs). The accuracy drop own - spliced has a
paired bootstrap interval over test sequences. An SAE is `poor` when its FVE is below
`flag.min_variance_explained`, its dead share above `flag.max_dead_fraction`, or its accuracy drop
above `flag.max_accuracy_drop`: its latents are still analysed (the error term keeps the model
exact), but the summary says that they describe a poor dictionary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kneurons.format import md_table
from kneurons.model.predict import prepare_batches
from kneurons.sae.splice import attached_sites, spliced
from kneurons.sae.train import fidelity, site_activations
from kneurons.statistics import bootstrap_accuracy, bootstrap_counts, percentile_interval

N_BOOT = 2000


@torch.no_grad()
def _correct(model, batches, labels, device) -> np.ndarray:
    predicted = np.empty(len(labels), dtype=np.int64)
    for idx, batch in batches:
        predicted[idx] = model(batch.to(device)).argmax(1).cpu().numpy()
    return predicted == labels


def fidelity_table(model, tokens, labels, device, max_tokens: int, flag: dict) -> pd.DataFrame:
    """One row per spliced SAE (module docstring)."""
    labels = np.asarray(labels, dtype=np.int64)
    batches = prepare_batches(tokens, model.encoder.padding_idx, max_tokens)
    own = _correct(model, batches, labels, device)
    counts = bootstrap_counts(len(labels), N_BOOT, seed=0)
    rows = []
    for site in attached_sites(model):
        acts = site_activations(model, tokens, site.site, site.layer, device, max_tokens)
        stats = fidelity(site.sae, acts.to(next(site.sae.parameters()).device))
        with spliced([site], "reconstruction"):
            recon = _correct(model, batches, labels, device)
        with spliced([site], "zero"):
            zero = _correct(model, batches, labels, device)
        drop = bootstrap_accuracy(own.astype(float) - recon.astype(float), counts)[0]
        low, high = percentile_interval(drop)
        row = {
            "site": site.site,
            "layer": site.layer,
            "layer_type": f"sae_{site.site}",
            "n_latents": site.sae.n_latents,
            "k": site.sae.k,
            **stats,
            "accuracy_own": float(own.mean()),
            "accuracy_spliced": float(recon.mean()),
            "accuracy_zero": float(zero.mean()),
            "accuracy_drop": float(own.mean() - recon.mean()),
            "accuracy_drop_low": float(low),
            "accuracy_drop_high": float(high),
            "n_test": len(labels),
        }
        row["poor"] = bool(
            row["variance_explained"] < flag["min_variance_explained"]
            or row["dead_fraction"] > flag["max_dead_fraction"]
            or row["accuracy_drop"] > flag["max_accuracy_drop"]
        )
        rows.append(row)
    return pd.DataFrame(rows)


def poor_words(row, flag: dict) -> str:
    """Why an SAE is flagged, in words ('' when it is not): the thresholds it misses."""
    reasons = []
    if row["variance_explained"] < flag["min_variance_explained"]:
        reasons.append(f"explains {row['variance_explained']:.0%} of the variance")
    if row["dead_fraction"] > flag["max_dead_fraction"]:
        reasons.append(f"{row['dead_fraction']:.0%} dead latents")
    if row["accuracy_drop"] > flag["max_accuracy_drop"]:
        reasons.append(f"accuracy drops by {row['accuracy_drop']:.3f}")
    return "poor: " + ", ".join(reasons) if reasons else ""


def fidelity_markdown(table: pd.DataFrame, model: str, flag: dict, n_test: int) -> str:
    """The SAE fidelity page: the verdict in words first, then the table."""
    lines = [f"# SAE fidelity: {model}", ""]
    if table.empty:
        return "\n".join([*lines, "No SAE is spliced into this model.", ""])
    poor = table[table["poor"]]
    lines.append(
        f"{len(table)} SAEs, {len(table) - len(poor)} good enough to stand in for their site "
        f"(variance explained at least {flag['min_variance_explained']:.0%}, at most "
        f"{flag['max_dead_fraction']:.0%} dead latents, test accuracy with the site replaced by "
        f"the reconstruction at most {flag['max_accuracy_drop']:.3f} below the model's own; "
        f"{n_test} test sequences)."
    )
    if len(poor):
        names = ", ".join(f"{r.site} layer {r.layer}" for r in poor.itertuples())
        lines += [
            "",
            f"**Flagged as poor: {names}.** Their latents are still scored and masked (the "
            "error term keeps the model exact), but a finding about them describes a poor "
            "dictionary of that site, not the site.",
        ]
    lines += [
        "",
        "Accuracy: the classifier as it is (own), with the site replaced by the SAE's "
        "reconstruction (spliced; error term dropped) and with the site zeroed (zero). The drop "
        "own - spliced has a paired bootstrap 95% interval over test sequences.",
        "",
    ]
    body = [
        [
            f"{r['site']} layer {r['layer']}",
            str(r["n_latents"]),
            str(r["k"]),
            f"{r['variance_explained']:.3f}",
            f"{r['dead_fraction']:.3f}",
            f"{r['mean_active']:.1f}",
            f"{r['accuracy_own']:.3f}",
            f"{r['accuracy_spliced']:.3f}",
            f"{r['accuracy_zero']:.3f}",
            f"{r['accuracy_drop']:+.3f} [{r['accuracy_drop_low']:+.3f}, "
            f"{r['accuracy_drop_high']:+.3f}]",
            poor_words(r, flag) or "good",
        ]
        for _, r in table.iterrows()
    ]
    header = ["SAE", "latents", "k", "variance explained", "dead", "active per token",
              "accuracy own", "spliced", "zero", "drop [95% CI]", "verdict"]  # fmt: skip
    lines.append(md_table(header, body))
    return "\n".join(lines) + "\n"
