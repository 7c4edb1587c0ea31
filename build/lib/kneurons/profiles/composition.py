"""The tables of a profile, from the windows of `kneurons.profiles.scan`: their residue
composition, their overlap with known sites and the per-unit profile table (`Profiles` bundles
them). Imports no torch.

- composition (`window_composition`): per unit, the residue frequencies over its windows against
  the background (all residues of the scanned sequences), as log2 enrichment shrunk towards the
  background by a pseudocount.
- site overlap (`site_overlap`): per unit and site kind of the sites table (planted motifs and
  decoys of the synthetic data, annotated active / binding sites of a UniProt table), the share
  of its windows whose peak lies inside such a site, against the share of all scanned residues
  inside one (what a peak drawn at random would give), with a one-sided binomial p-value.
Tables: `composition` (`COMPOSITION_COLUMNS`: unit x amino acid), the per-unit site overlap
(`site_overlap`) and the per-unit profile table (`unit_table`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kneurons.residues.recovery import SITE_KINDS, site_mask
from kneurons.vocab import order_of, parse_method

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"  # the 20 standard residues; others are left out of counts
UNIT_COLUMNS = ("method", "layer_type", "layer", "neuron", "rank")
COMPOSITION_COLUMNS = (
    *UNIT_COLUMNS,
    "residue",
    "count",  # in the unit's windows
    "frequency",  # count / residues in the windows
    "background",  # frequency over all scanned residues
    "log2_enrichment",  # log2((count + a * background) / (n + a) / background), a = pseudocount
)
PSEUDOCOUNT = 20.0  # pseudo-residues in background proportions (about one per amino acid)


def binomial_sf(k: int, n: int, p: float) -> float:
    """One-sided P(X >= k) for X ~ Binomial(n, p): how surprising k hits of n are at chance p."""
    if n == 0 or k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    return float(stats.binom.sf(k - 1, n, min(p, 1.0)))


def residue_counts(strings: Iterable[str]) -> pd.Series:
    """Counts of the 20 standard amino acids (others left out), indexed by residue."""
    counts = dict.fromkeys(AMINO_ACIDS, 0)
    for text in strings:
        for residue in text:
            if residue in counts:
                counts[residue] += 1
    return pd.Series(counts, dtype=np.int64)


def background_composition(sequences: Iterable[str]) -> pd.Series:
    """Frequency of each standard amino acid over all residues of `sequences`."""
    counts = residue_counts(sequences)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def enrichment(
    counts: pd.Series, background: pd.Series, pseudocount: float = PSEUDOCOUNT
) -> pd.Series:
    """log2 of the smoothed window frequency over the background frequency: the counts get
    `pseudocount` residues in background proportions, so a residue seen a few times in a few
    windows is not called enriched (no data -> 0); NaN for residues absent from the background.
    """
    n = counts.sum()
    smoothed = (counts + pseudocount * background) / (n + pseudocount)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log2(smoothed / background.where(background > 0))
    return out.astype(np.float64)


def window_composition(
    windows: pd.DataFrame, background: pd.Series, pseudocount: float = PSEUDOCOUNT
) -> pd.DataFrame:
    """`COMPOSITION_COLUMNS`: per unit and standard amino acid, its count and frequency in the
    unit's windows, the background frequency and the log2 enrichment (`enrichment`)."""
    frames = []
    for key, rows in windows.groupby(list(UNIT_COLUMNS), sort=False):
        counts = residue_counts(rows["window"])
        n = counts.sum()
        frame = pd.DataFrame(
            {
                "residue": list(AMINO_ACIDS),
                "count": counts.to_numpy(),
                "frequency": (counts / n).to_numpy() if n else np.zeros(len(counts)),
                "background": background.reindex(list(AMINO_ACIDS)).to_numpy(),
                "log2_enrichment": enrichment(counts, background, pseudocount).to_numpy(),
            }
        )
        for name, value in reversed(list(zip(UNIT_COLUMNS, key, strict=True))):
            frame.insert(0, name, value)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(COMPOSITION_COLUMNS))
    return pd.concat(frames, ignore_index=True).loc[:, list(COMPOSITION_COLUMNS)]


def residue_table(examples: pd.DataFrame) -> pd.DataFrame:
    """Every residue of the scanned sequences: accession, position (1-based)."""
    lengths = examples["sequence"].str.len().to_numpy()
    return pd.DataFrame(
        {
            "accession": np.repeat(examples["accession"].to_numpy(), lengths),
            "position": np.concatenate([np.arange(1, n + 1) for n in lengths])
            if len(lengths)
            else np.zeros(0, dtype=np.int64),
        }
    )


def expected_fractions(examples: pd.DataFrame, sites: pd.DataFrame) -> dict[str, float]:
    """Per site kind: the share of all scanned residues that lie inside a site of that kind
    (a residue inside two sites of a kind counts once; sites past a sequence's end add
    nothing): the chance that a peak drawn uniformly from the residues lands in one."""
    residues = residue_table(examples)
    out = {}
    for kind in order_of(sites["kind"], SITE_KINDS) if len(sites) else []:
        inside = site_mask(residues, sites[sites["kind"] == kind])
        out[kind] = float(inside.mean()) if len(inside) else float("nan")
    return out


def site_overlap(windows: pd.DataFrame, expected: Mapping[str, float]) -> pd.DataFrame:
    """Per unit and site kind: n_windows, n_inside (windows whose peak lies in such a site,
    from `peak_sites`), fraction, expected, enrichment (fraction / expected) and p_value (one-
    sided binomial: n_inside or more of n_windows at chance `expected`)."""
    rows = []
    for key, unit in windows.groupby(list(UNIT_COLUMNS), sort=False):
        kinds = unit["peak_sites"].fillna("").str.split(",")
        for kind, chance in expected.items():
            n = len(unit)
            k = int(kinds.map(lambda ks, kind=kind: kind in ks).sum())
            fraction = k / n if n else np.nan
            rows.append(
                {
                    **dict(zip(UNIT_COLUMNS, key, strict=True)),
                    "site_kind": kind,
                    "n_windows": n,
                    "n_inside": k,
                    "fraction": fraction,
                    "expected": chance,
                    "enrichment": fraction / chance if chance > 0 else np.nan,
                    "p_value": binomial_sf(k, n, chance),
                }
            )
    columns = [*UNIT_COLUMNS, "site_kind", "n_windows", "n_inside", "fraction", "expected",
               "enrichment", "p_value"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def top_residues(composition: pd.DataFrame, n: int = 3) -> str:
    """The `n` most enriched residues seen in the windows, e.g. "W +2.31, C +1.90" ("" if none
    is enriched)."""
    seen = composition[(composition["count"] > 0) & (composition["log2_enrichment"] > 0)]
    seen = seen.sort_values(["log2_enrichment", "residue"], ascending=[False, True])
    return ", ".join(f"{r.residue} {r.log2_enrichment:+.2f}" for r in seen.head(n).itertuples())


def unit_table(
    units: pd.DataFrame,
    windows: pd.DataFrame,
    composition: pd.DataFrame,
    overlap: pd.DataFrame,
) -> pd.DataFrame:
    """One row per profiled unit (`units`: method, layer_type, layer, neuron, rank, score, and
    cutoff_ties when given, see `cutoff_ties`) with method_family, n_windows, mean_response
    (over its windows), top_residues (the 3 most enriched, with log2 enrichment), top_residue
    and top_log2_enrichment, top_class and top_class_share (the class most of its windows come
    from and their share), and per site kind K: n_inside_K, overlap_K (fraction), expected_K,
    enrichment_K, p_K."""
    keys = list(UNIT_COLUMNS)
    out = units.loc[:, [c for c in (*keys, "score", "cutoff_ties") if c in units]].copy()
    out.insert(1, "method_family", [parse_method(m)[0] for m in out["method"]])
    by_unit = windows.groupby(keys, sort=False)
    stats = by_unit.agg(n_windows=("window", "size"), mean_response=("response", "mean"))
    classes = by_unit["ec_class"].agg(lambda s: s.value_counts().sort_index().idxmax())
    shares = by_unit["ec_class"].agg(lambda s: s.value_counts().max() / len(s))
    stats = stats.assign(top_class=classes, top_class_share=shares).reset_index()
    out = out.merge(stats, on=keys, how="left")
    out["n_windows"] = out["n_windows"].fillna(0).astype(np.int64)
    out["top_class"] = out["top_class"].astype("str")
    tops = []
    for key, rows in composition.groupby(keys, sort=False):
        best = rows.sort_values(["log2_enrichment", "residue"], ascending=[False, True]).iloc[0]
        tops.append({**dict(zip(keys, key, strict=True)), "top_residues": top_residues(rows),
                     "top_residue": best["residue"],
                     "top_log2_enrichment": float(best["log2_enrichment"])})  # fmt: skip
    if tops:
        out = out.merge(pd.DataFrame(tops), on=keys, how="left")
    else:
        out = out.assign(top_residues="", top_residue="", top_log2_enrichment=np.nan)
    for kind, rows in overlap.groupby("site_kind", sort=False):
        part = rows.loc[:, [*keys, "n_inside", "fraction", "expected", "enrichment", "p_value"]]
        part = part.rename(
            columns={
                "n_inside": f"n_inside_{kind}",
                "fraction": f"overlap_{kind}",
                "expected": f"expected_{kind}",
                "enrichment": f"enrichment_{kind}",
                "p_value": f"p_{kind}",
            }
        )
        out = out.merge(part, on=keys, how="left")
        out[f"n_inside_{kind}"] = out[f"n_inside_{kind}"].fillna(0).astype(np.int64)
    return out


@dataclass
class Profiles:
    windows: pd.DataFrame  # WINDOW_COLUMNS
    composition: pd.DataFrame  # COMPOSITION_COLUMNS
    table: pd.DataFrame  # unit_table
    n_sequences: int
    n_residues: int
    expected: dict[str, float]  # site kind -> share of scanned residues inside such sites
    top_k: int
    half_width: int
