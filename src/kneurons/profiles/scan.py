"""What a selected neuron responds to: its most active sequence windows, their composition and
their overlap with known sites (one forward pass over a sample of test sequences).

For the top units of each method and layer type (`top_units`: the all-class ranking of scope
`layer_type`, i.e. over all layers of the type):
- activation: the unit's output at each residue (BOS, EOS and padding left out). A unit is "most
  active" where its *response* is largest: |activation| for query, key, value, attn_out and
  ffn_out, the signed activation for ffn_in (`SIGNED_LAYER_TYPES`). Why: the sign of a query,
  key or value unit is not a property of the model (negating q_i and k_i of a head together, or
  v_i and out_proj's column i, leaves the network unchanged), and attn_out / ffn_out units write
  their output into the residual stream either way, so their size is what counts, as in the
  activation score (mean |a|); ffn_in is read before the GELU, which passes large positive
  values and gates negative ones to ~0, so there the sign says whether the unit fires.
- windows (`top_windows`): per unit, its peak residue in each sequence (largest response; the
  first on ties); the `top_k` sequences with the largest peaks give one window each (so one
  repetitive sequence cannot fill the list): peak ± `half_width` residues, clipped to the
  sequence. Positions are 1-based (position 1 = first residue = token 1 after BOS), windows
  inclusive at both ends, as UniProt features and the sites table.
- composition (`window_composition`): per unit, the residue frequencies over its windows against
  the background (all residues of the scanned sequences), as log2 enrichment shrunk towards the
  background by a pseudocount.
- site overlap (`site_overlap`): per unit and site kind of the sites table (planted motifs and
  decoys of the synthetic data, annotated active / binding sites of a UniProt table), the share
  of its windows whose peak lies inside such a site, against the share of all scanned residues
  inside one (what a peak drawn at random would give), with a one-sided binomial p-value.
Tables: `windows` (one row per unit x window), `composition` (unit x amino acid) and the per-unit
profile table (`unit_table`); markdown (`profiles_markdown`) and logos (`plot_logos`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kneurons.figures import pyplot, save_figure
from kneurons.format import MISSING_CELL, class_header, fmt_g, fmt_p, md_table
from kneurons.model.batching import iter_batches, tokenize
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import forward_hooks
from kneurons.profiles.report import (
    REFERENCE,
    binomial_sf,
    method_sequence,
    overlap_sentence,
    pooled_overlap,
    site_kinds,
)
from kneurons.residues.recovery import SITE_KINDS, site_mask
from kneurons.vocab import ALL_CLASSES, LAYER_TYPES, UnitKey, order_of, parse_method

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"  # the 20 standard residues; others are left out of counts
SIGNED_LAYER_TYPES = frozenset({"ffn_in"})  # ranked by signed activation (see the docstring)
UNIT_COLUMNS = ("method", "layer_type", "layer", "neuron", "rank")
WINDOW_COLUMNS = (
    *UNIT_COLUMNS,
    "window_rank",  # 0 = the unit's most active sequence
    "accession",
    "label",  # the sequence's class index
    "ec_class",  # the sequence's class name (the label's text when the table has none)
    "position",  # peak residue, 1-based
    "residue",  # the residue at the peak
    "activation",  # the unit's signed output at the peak
    "response",  # what was ranked: |activation|, or the activation for SIGNED_LAYER_TYPES
    "window_start",  # 1-based, inclusive, clipped to the sequence
    "window_end",
    "window",  # the residues window_start..window_end
    "peak_sites",  # site kinds the peak lies in, comma-separated ("" = none)
)
COMPOSITION_COLUMNS = (
    *UNIT_COLUMNS,
    "residue",
    "count",  # in the unit's windows
    "frequency",  # count / residues in the windows
    "background",  # frequency over all scanned residues
    "log2_enrichment",  # log2((count + a * background) / (n + a) / background), a = pseudocount
)
PSEUDOCOUNT = 20.0  # pseudo-residues in background proportions (about one per amino acid)
MAX_TOKENS = 16384  # padded tokens per forward batch


def is_signed(layer_type: str) -> bool:
    return layer_type in SIGNED_LAYER_TYPES


def response(values: np.ndarray, signed: bool | np.ndarray) -> np.ndarray:
    """How active a unit is at each residue: the value itself where `signed`, else |value|."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(signed, values, np.abs(values))


def top_units(ranking: pd.DataFrame, method: str, n_units: int) -> pd.DataFrame:
    """The best `n_units` of a selection file of scope layer_type (all-class rows, rank < n),
    by rank: method, layer_type, layer, neuron, rank, score."""
    rows = ranking[ranking["label"] == ALL_CLASSES]  # scope layer_type: no group rankings
    rows = rows[rows["rank"] < n_units].sort_values("rank", kind="mergesort")
    out = rows.loc[:, ["layer_type", "layer", "neuron", "rank", "score"]].reset_index(drop=True)
    out.insert(0, "method", method)
    for column in ("layer", "neuron", "rank"):
        out[column] = out[column].astype(np.int64)
    return out


@dataclass
class Peaks:
    """Per (sequence, unit): the 0-based residue index of the peak, its signed activation and
    its response. Arrays of shape (n_sequences, n_units)."""

    index: np.ndarray
    activation: np.ndarray
    response: np.ndarray

    @classmethod
    def empty(cls, n_sequences: int, n_units: int) -> Peaks:
        return cls(
            np.zeros((n_sequences, n_units), dtype=np.int64),
            np.full((n_sequences, n_units), np.nan),
            np.full((n_sequences, n_units), -np.inf),
        )

    def set(self, row: int, activation: np.ndarray, signed: np.ndarray) -> None:
        """Record sequence `row` from its (L, units) activations."""
        activation = np.asarray(activation, dtype=np.float64)
        if len(activation) == 0:
            return
        strength = response(activation, signed)
        index = strength.argmax(0)
        cols = np.arange(activation.shape[1])
        self.index[row] = index
        self.activation[row] = activation[index, cols]
        self.response[row] = strength[index, cols]


def unit_signs(units: pd.DataFrame) -> np.ndarray:
    return np.array([is_signed(lt) for lt in units["layer_type"]], dtype=bool)


def peaks_of(activations: Sequence[np.ndarray], units: pd.DataFrame) -> Peaks:
    """The peaks of per-sequence activations, each (L, len(units)), columns in `units` order."""
    peaks = Peaks.empty(len(activations), len(units))
    signed = unit_signs(units)
    for row, activation in enumerate(activations):
        peaks.set(row, activation, signed)
    return peaks


def windows_from_peaks(
    examples: pd.DataFrame,
    units: pd.DataFrame,
    peaks: Peaks,
    top_k: int,
    half_width: int,
    sites: pd.DataFrame | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The `WINDOW_COLUMNS` table: each unit's `top_k` sequences by peak response, one window
    each; sequences without residues never count. Equal peaks across sequences are ordered by
    a seeded random permutation, not by the table's order: a unit of layer 0 sees each residue
    alone, so every sequence holding its favourite residue ties, and the table's order (often
    by class) would pick the windows (`cutoff_ties` counts such ties).
    """
    sequences = examples["sequence"].tolist()
    accessions = examples["accession"].tolist()
    labels = examples["label"].tolist() if "label" in examples else [-1] * len(examples)
    classes = examples["ec_class"] if "ec_class" in examples else pd.Series(labels)
    classes = classes.astype(str).tolist()
    tiebreak = np.random.default_rng(seed).permutation(len(sequences))
    rows = []
    for u, unit in enumerate(units.itertuples(index=False)):
        strength = peaks.response[:, u]
        order = np.lexsort((tiebreak, -strength))  # by response, ties by the permutation
        order = [s for s in order if np.isfinite(strength[s])][:top_k]
        for window_rank, s in enumerate(order):
            seq = sequences[s]
            peak = int(peaks.index[s, u])  # 0-based
            start, end = max(0, peak - half_width), min(len(seq) - 1, peak + half_width)
            rows.append(
                {
                    "method": unit.method,
                    "layer_type": unit.layer_type,
                    "layer": int(unit.layer),
                    "neuron": int(unit.neuron),
                    "rank": int(unit.rank),
                    "window_rank": window_rank,
                    "accession": accessions[s],
                    "label": int(labels[s]),
                    "ec_class": classes[s],
                    "position": peak + 1,
                    "residue": seq[peak],
                    "activation": float(peaks.activation[s, u]),
                    "response": float(strength[s]),
                    "window_start": start + 1,
                    "window_end": end + 1,
                    "window": seq[start : end + 1],
                }
            )
    windows = pd.DataFrame(rows, columns=[c for c in WINDOW_COLUMNS if c != "peak_sites"])
    for column in ("layer", "neuron", "rank", "window_rank", "label", "position"):
        windows[column] = windows[column].astype(np.int64)
    for column in ("window_start", "window_end"):
        windows[column] = windows[column].astype(np.int64)
    windows["peak_sites"] = peak_sites(windows, sites)
    return windows


def top_windows(
    examples: pd.DataFrame,
    activations: Sequence[np.ndarray],
    units: pd.DataFrame,
    top_k: int,
    half_width: int,
    sites: pd.DataFrame | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """`windows_from_peaks` of per-sequence activations ((L, units) per row of `examples`)."""
    peaks = peaks_of(activations, units)
    return windows_from_peaks(examples, units, peaks, top_k, half_width, sites, seed)


def cutoff_ties(peaks: Peaks, top_k: int, rtol: float = 1e-6) -> np.ndarray:
    """Per unit: how many scanned sequences have a peak equal (within `rtol`) to the weakest
    of its `top_k` windows. 1 is a clean cut; more means the windows among those sequences
    were drawn by the seeded tie-break (a profile of a unit that reads residues alone)."""
    out = np.zeros(peaks.response.shape[1], dtype=np.int64)
    for u in range(len(out)):
        strength = peaks.response[:, u]
        strength = strength[np.isfinite(strength)]
        if len(strength) == 0:
            continue
        cut = np.sort(strength)[::-1][min(top_k, len(strength)) - 1]
        out[u] = int(np.isclose(strength, cut, rtol=rtol, atol=0.0).sum())
    return out


def peak_sites(windows: pd.DataFrame, sites: pd.DataFrame | None) -> pd.Series:
    """Per window, the site kinds its peak lies in (comma-separated, display order; "" = none)."""
    out = [[] for _ in range(len(windows))]
    if sites is not None and len(sites) and len(windows):
        for kind in order_of(sites["kind"], SITE_KINDS):
            inside = site_mask(windows, sites[sites["kind"] == kind])
            for i in np.flatnonzero(inside):
                out[i].append(kind)
    return pd.Series([",".join(kinds) for kinds in out], index=windows.index, dtype="str")


# --- the forward pass ------------------------------------------------------------------------


@torch.no_grad()
def scan_peaks(
    model: EsmClassifier,
    alphabet,
    sequences: Sequence[str],
    units: pd.DataFrame,
    max_tokens: int = MAX_TOKENS,
) -> Peaks:
    """One forward pass over `sequences`: the peaks of every unit of `units`, in its row order
    (a unit listed by several methods is computed once). Only the units' columns are kept from
    each module's output, and of them only each sequence's peak, so memory stays small."""
    model.eval()
    keys = list(dict.fromkeys(zip(units["layer_type"], units["layer"].astype(int),
                                  units["neuron"].astype(int), strict=True)))  # fmt: skip
    modules: dict[UnitKey, list[int]] = {}
    for layer_type, layer, neuron in keys:
        modules.setdefault((layer_type, layer), []).append(neuron)
    order = [(module, neuron) for module, neurons in modules.items() for neuron in neurons]
    column = {(lt, layer, neuron): i for i, ((lt, layer), neuron) in enumerate(order)}
    peaks = Peaks.empty(len(sequences), len(order))
    signed = np.array([is_signed(lt) for (lt, _), _ in order], dtype=bool)
    for i, by_module in unit_activations(model, alphabet, sequences, modules, max_tokens):
        peaks.set(i, np.concatenate([by_module[module] for module in modules], axis=1), signed)
    rows = [column[key] for key in zip(units["layer_type"], units["layer"].astype(int),
                                       units["neuron"].astype(int), strict=True)]  # fmt: skip
    return Peaks(peaks.index[:, rows], peaks.activation[:, rows], peaks.response[:, rows])


def unit_activations(
    model: EsmClassifier,
    alphabet,
    sequences: Sequence[str],
    modules: Mapping[UnitKey, Sequence[int]],
    max_tokens: int = MAX_TOKENS,
) -> Iterator[tuple[int, dict[UnitKey, np.ndarray]]]:
    """(index in `sequences`, module -> (L, its listed neurons) outputs at the sequence's
    residues) for every sequence, batch by batch (length-sorted; BOS, EOS and padding dropped),
    on the model's device."""
    device = model.head.weight.device
    tokens = tokenize(alphabet, sequences)
    index = {key: torch.as_tensor(list(neurons), dtype=torch.long, device=device)
             for key, neurons in modules.items()}  # fmt: skip
    captured: dict[UnitKey, torch.Tensor] = {}

    def capture(key):
        def hook(_module, _inputs, output):  # (T, B, units) -> (T, B, listed): a copy
            captured[key] = output.index_select(-1, index[key]).float().cpu()

        return hook

    with forward_hooks(model, {key: capture(key) for key in modules}):
        for idx, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            model(batch.to(device))
            for b, i in enumerate(idx):
                n = len(sequences[i])
                yield i, {key: out[1 : n + 1, b].numpy() for key, out in captured.items()}


# --- composition and site overlap --------------------------------------------------------------


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


def profile_neurons(
    model: EsmClassifier,
    alphabet,
    examples: pd.DataFrame,
    units: pd.DataFrame,
    sites: pd.DataFrame,
    top_k: int,
    half_width: int,
    seed: int = 0,
    max_tokens: int = MAX_TOKENS,
) -> Profiles:
    """The profiles of `units` (`top_units` of several methods) over the sequences of
    `examples` (accession, sequence, label): one forward pass, then the tables; `seed` breaks
    ties between sequences (`windows_from_peaks`)."""
    sites = sites[sites["accession"].isin(set(examples["accession"]))]  # the scanned ones
    peaks = scan_peaks(model, alphabet, examples["sequence"].tolist(), units, max_tokens)
    windows = windows_from_peaks(examples, units, peaks, top_k, half_width, sites, seed)
    background = background_composition(examples["sequence"])
    composition = window_composition(windows, background)
    expected = expected_fractions(examples, sites)
    overlap = site_overlap(windows, expected)
    ties = cutoff_ties(peaks, top_k)
    table = unit_table(units.assign(cutoff_ties=ties), windows, composition, overlap)
    n_residues = int(examples["sequence"].str.len().sum())
    return Profiles(windows, composition, table, len(examples), n_residues, expected, top_k,
                    half_width)  # fmt: skip


# --- markdown and logos ---------------------------------------------------------------------


def _sorted_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    types = order_of(table["layer_type"], LAYER_TYPES)
    methods = method_sequence(table["method"])
    present = set(zip(table["method"], table["layer_type"], strict=True))
    return [(m, lt) for lt in types for m in methods if (m, lt) in present]


def profiles_markdown(profiles: Profiles, model: str, n_examples: int = 3) -> str:
    """neuron_profiles.md: per layer type and method, the top units with their most enriched
    residues, site overlap and `n_examples` most active windows, and a sentence per site kind
    comparing the units' overlap with random-0's."""
    table, windows = profiles.table, profiles.windows
    kinds = site_kinds(table)
    top_k, half_width = profiles.top_k, profiles.half_width
    lines = [
        f"# Neuron profiles: {model}",
        "",
        f"{profiles.n_sequences} test sequences ({profiles.n_residues} residues) scanned in one "
        "forward pass. For the top units of each method's all-class ranking of each layer type "
        f"(over all its layers): the {top_k} sequences where the unit is most active, one window "
        f"each (peak residue ± {half_width}, clipped to the sequence). Most active: largest "
        "|activation| (query, key, value, attn_out, ffn_out: the sign of these units carries no "
        "meaning of its own), largest signed activation for ffn_in (read before the GELU). "
        f"{REFERENCE} is the random reference: units drawn without looking at the task. Enriched "
        "residues: log2 of the windows' frequency (with a pseudocount) over the background of all "
        "scanned residues. Ties at cut: scanned sequences whose peak equals the weakest kept "
        "window's (1 = a clean cut; more, e.g. for layer-0 units, which see each residue alone: "
        "the kept windows among them were drawn at random, seeded).",
        "",
    ]
    if profiles.n_sequences <= top_k:
        lines += [
            f"**Only {profiles.n_sequences} sequences for {top_k} windows per unit**: every unit "
            "has a window in every sequence, so only where it peaks tells units apart (raise "
            "profiles.n_sequences or lower profiles.top_k).",
            "",
        ]
    if kinds:
        chance = ", ".join(f"{k} {100 * profiles.expected[k]:.1f}%" for k in kinds)
        lines += [f"Share of scanned residues inside sites (chance of a peak): {chance}.", ""]
    else:
        lines += ["The input has no site annotations: composition only.", ""]
    pooled = pooled_overlap(table)
    for method, layer_type in _sorted_pairs(table):
        units = table[(table["method"] == method) & (table["layer_type"] == layer_type)]
        lines += [f"## {layer_type}: {method}", ""]
        part = pooled[(pooled["method"] == method) & (pooled["layer_type"] == layer_type)]
        for _, row in part.iterrows():
            lines.append(f"- {overlap_sentence(row)}")
        if len(part):
            lines.append("")
        header = ["rank", "unit", "mean response", "ties at cut", "top residues (log2 enr.)"]
        header += [f"{k} (p)" for k in kinds] + ["top class", "most active windows"]
        align = ["r", "l", "r", "r", "l", *["r"] * len(kinds), "l", "l"]
        rows = []
        for unit in units.sort_values("rank").itertuples(index=False):
            mine = windows[
                (windows["method"] == method)
                & (windows["layer_type"] == layer_type)
                & (windows["layer"] == unit.layer)
                & (windows["neuron"] == unit.neuron)
            ].sort_values("window_rank")
            ties = str(unit.cutoff_ties) if hasattr(unit, "cutoff_ties") else MISSING_CELL
            cells = [str(unit.rank), f"L{unit.layer} #{unit.neuron}", fmt_g(unit.mean_response),
                     ties, unit.top_residues or MISSING_CELL]  # fmt: skip
            for kind in kinds:
                n_in = getattr(unit, f"n_inside_{kind}")
                p = getattr(unit, f"p_{kind}")
                cells.append(f"{n_in}/{unit.n_windows} ({fmt_p(p)})")
            if unit.n_windows:
                share = f"{100 * unit.top_class_share:.0f}%"
                cells.append(f"{class_header(unit.top_class)} ({share})")
            else:
                cells.append(MISSING_CELL)
            shown = [
                f"{w.window}@{w.accession}:{w.position}" for w in mine.head(n_examples).itertuples()
            ]
            cells.append(" ".join(f"`{s}`" for s in shown))
            rows.append(cells)
        lines += [md_table(header, rows, align), ""]
    return "\n".join(lines)


# Letter colours by side-chain chemistry (the usual protein logo scheme).
CHEMISTRY = {
    **dict.fromkeys("DE", "#d62728"),  # acidic
    **dict.fromkeys("KRH", "#1f77b4"),  # basic
    **dict.fromkeys("GSTYC", "#2ca02c"),  # polar
    **dict.fromkeys("NQ", "#9467bd"),  # amide
    **dict.fromkeys("AVLIPWFM", "#222222"),  # hydrophobic
}


def logo_matrix(windows: pd.DataFrame, half_width: int) -> pd.DataFrame:
    """Letter heights (bits) per window offset (-half_width .. +half_width, 0 = peak) and
    amino acid, from one unit's windows aligned at the peak: frequency x information content,
    with IC = log2(20) - entropy - (19 / (2 ln 2 n)), the small-sample correction for n letters
    at the offset (clipped windows have fewer letters at the ends), floored at 0."""
    offsets = np.arange(-half_width, half_width + 1)
    counts = pd.DataFrame(0.0, index=offsets, columns=list(AMINO_ACIDS))
    for w in windows.itertuples(index=False):
        first = w.window_start - w.position  # offset of the window's first residue
        for j, residue in enumerate(w.window):
            if residue in counts.columns:
                counts.at[first + j, residue] += 1
    n = counts.sum(axis=1)
    freq = counts.div(n.where(n > 0), axis=0).fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(freq * np.log2(freq.where(freq > 0))).sum(axis=1)
    correction = (len(AMINO_ACIDS) - 1) / (2 * np.log(2) * n.where(n > 0))
    ic = (np.log2(len(AMINO_ACIDS)) - entropy - correction).clip(lower=0).fillna(0.0)
    return freq.mul(ic, axis=0)


def draw_logo(ax, heights: pd.DataFrame) -> None:
    """Letters stacked by height at each offset (the tallest on top), drawn as glyph paths."""
    from matplotlib import transforms
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath

    font = FontProperties(family="DejaVu Sans", weight="bold")
    for x, column in heights.iterrows():
        bottom = 0.0
        for residue, height in column.sort_values(kind="mergesort").items():
            if height <= 1e-3:
                continue
            path = TextPath((0, 0), residue, size=1, prop=font)
            box = path.get_extents()
            shape = (transforms.Affine2D().translate(-box.x0, -box.y0)
                     .scale(0.85 / box.width, height / box.height)
                     .translate(x - 0.425, bottom))  # fmt: skip
            ax.add_patch(PathPatch(shape.transform_path(path), color=CHEMISTRY[residue], lw=0))
            bottom += height
    ax.set_xlim(heights.index.min() - 0.6, heights.index.max() + 0.6)
    ax.set_ylim(0, max(1.0, float(heights.sum(axis=1).max()) * 1.05))
    ax.set_xticks(list(heights.index))
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)


def plot_logos(
    windows: pd.DataFrame, units: pd.DataFrame, half_width: int, path_png, title: str = ""
) -> None:
    """One logo per unit of `units` (rows of the profile table, in order) from its windows."""
    plt = pyplot()
    n = max(1, len(units))
    fig, axes = plt.subplots(n, 1, figsize=(0.55 * (2 * half_width + 1) + 2.5, 1.9 * n + 0.8),
                             squeeze=False)  # fmt: skip
    kinds = [c.removeprefix("n_inside_") for c in units.columns if c.startswith("n_inside_")]
    for ax, unit in zip(axes[:, 0], units.itertuples(index=False), strict=False):
        mine = windows[
            (windows["method"] == unit.method)
            & (windows["layer_type"] == unit.layer_type)
            & (windows["layer"] == unit.layer)
            & (windows["neuron"] == unit.neuron)
        ]
        draw_logo(ax, logo_matrix(mine, half_width))
        notes = [f"{getattr(unit, f'n_inside_{k}')}/{unit.n_windows} peaks in {k}" for k in kinds]
        if getattr(unit, "cutoff_ties", 1) > 1:
            notes.append(f"{unit.cutoff_ties} sequences tie at the cut")
        sites = "; ".join(notes)
        ax.set_title(f"rank {unit.rank}: layer {unit.layer}, neuron {unit.neuron}"
                     + (f" ({sites})" if sites else ""), fontsize=9, loc="left")  # fmt: skip
        ax.set_ylabel("bits")
    if len(units) == 0:
        axes[0, 0].text(0.5, 0.5, "no units", ha="center", va="center")
        axes[0, 0].set_axis_off()
    axes[-1, 0].set_xlabel("residue offset from the unit's peak")
    fig.suptitle(title or "Most active windows of the top units", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path_png, svg=False, dpi=130)
