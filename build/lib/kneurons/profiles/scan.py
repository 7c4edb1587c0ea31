"""What a selected neuron responds to: its most active sequence windows (one forward pass over
a sample of test sequences). Their composition and site overlap: `kneurons.profiles.composition`;
the markdown page: `kneurons.profiles.report`; the logos: `kneurons.profiles.figures`.

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
- composition and site overlap (`profile_neurons`, from `kneurons.profiles.composition`): the
  residue frequencies over each unit's windows against the background, and the share of its
  windows whose peak lies inside a site of each kind of the sites table (`peak_sites`).
Tables: `windows` (one row per unit x window), `composition` (unit x amino acid) and the per-unit
profile table (`unit_table`), bundled as `Profiles`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kneurons.model.batching import iter_batches, tokenize
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import forward_hooks
from kneurons.profiles.composition import (
    UNIT_COLUMNS,
    Profiles,
    background_composition,
    expected_fractions,
    site_overlap,
    unit_table,
    window_composition,
)
from kneurons.residues.recovery import SITE_KINDS, site_mask
from kneurons.vocab import ALL_CLASSES, UnitKey, order_of

SIGNED_LAYER_TYPES = frozenset({"ffn_in"})  # ranked by signed activation (see the docstring)
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
