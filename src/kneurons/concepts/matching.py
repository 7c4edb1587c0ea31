"""Concept matching: how well each unit (neuron or SAE latent), read as an on/off detector,
finds the residues of a known concept (InterPLM's per-residue F1; docs/methods.md, "Concept
matching").

A concept is one planted motif of the synthetic task (its pattern: a class's motif, wherever it
is planted, also as a distractor in another class's sequence; or a decoy) or one site kind of
a UniProt table (`active_site`, `binding_site`): `concepts_of`. Its residues are the residues
inside its sites (1-based, inclusive, as the sites table; position p is token p after BOS).
Positions are those of the sequence the model reads: sequences longer than `data.max_length`
are cropped N-terminally by default, so a site past the crop simply has no residue there; with
`data.crop: center` a cropped sequence's positions are shifted against UniProt's, so such
sequences are left out (`usable_examples`).

A unit is "on" at a residue when its response exceeds a fraction of its largest response over
the validation residues (`thresholds`, as InterPLM). The response is the activation for SAE
latents (>= 0 after their TopK) and for ffn_in (read before the GELU: the sign says whether the
unit fires), and |activation| for the other neuron types (the sign of a query, key or value
unit is not a property of the model; attn_out and ffn_out write into the residual stream either
way): the convention of the neuron profiles (`kneurons.profiles.scan.SIGNED_LAYER_TYPES`). A
unit whose largest validation response is <= 0 is never on.

Counts stream through forward hooks, batch by batch, module by module: per module only the
per-unit maxima, and per threshold the true positives (labels^T @ on, concepts x units) and the
residues on; no activation matrix is kept. Validation is scanned twice (maxima, then counts),
test once. Per (concept, unit) the threshold with the best validation F1 is chosen and the
unit's test precision, recall and F1 are read at it (`unit_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kneurons.model.batching import iter_batches, tokenize
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import forward_hooks
from kneurons.profiles.scan import SIGNED_LAYER_TYPES
from kneurons.residues.recovery import SITE_KINDS
from kneurons.vocab import UnitKey, unit_kind

THRESHOLDS = (0.0, 0.15, 0.3, 0.5, 0.6, 0.8)  # fractions of a unit's validation maximum
MAX_TOKENS = 4096  # padded tokens per forward batch (the hooks' temporaries scale with it)
MOTIF_KINDS = ("motif", "distractor")  # one motif planted as its class's or as a distractor
CONCEPT_COLUMNS = ("concept", "site_kind", "motif", "label")
UNIT_COLUMNS = (
    "concept",
    "kind",  # "neuron" or "latent"
    "layer_type",
    "layer",
    "unit",
    "threshold",  # the fraction of the unit's validation maximum chosen on validation
    "threshold_value",  # that fraction times the maximum (NaN: the unit is never on)
    "val_precision",
    "val_recall",
    "val_f1",
    "test_precision",
    "test_recall",
    "test_f1",
)


def is_signed(layer_type: str) -> bool:
    """Whether a unit's response is its signed activation (latents, ffn_in) or |activation|."""
    return layer_type in SIGNED_LAYER_TYPES or unit_kind(layer_type) == "latent"


# --- concepts and their residues -------------------------------------------------------------


def concepts_of(sites: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sites with a `concept` column, one row per concept: `CONCEPT_COLUMNS`).

    With a `motif` column (the planted-motif table), a concept is one pattern: `motif:<pattern>`
    for a class's motif (its distractor plantings in other classes' sequences are the same
    residues to a detector), `decoy:<pattern>` for a decoy; `label` names the class(es) that
    own the motif ("" for a decoy). Without it, a concept is a site kind (`active_site`, ...).
    Concepts are listed in the display order of the site kinds, then by name.
    """
    sites = sites.copy()
    kinds = sites["kind"].astype(str)
    if "motif" in sites.columns:
        base = kinds.where(~kinds.isin(MOTIF_KINDS), "motif")
        sites["concept"] = base + ":" + sites["motif"].astype(str)
        owners = sites[kinds == "motif"] if "label" in sites.columns else sites.iloc[:0]
        labels = owners.groupby("concept")["label"].agg(
            lambda v: ",".join(sorted({str(x) for x in v}))
        )
        motifs = sites.groupby("concept")["motif"].first().astype(str)
    else:
        base = kinds
        sites["concept"] = kinds
        labels, motifs = pd.Series(dtype=str), pd.Series(dtype=str)
    site_kind = dict(zip(sites["concept"], base, strict=True))
    rank = {kind: i for i, kind in enumerate(SITE_KINDS)}
    names = sorted(set(sites["concept"]), key=lambda c: (rank.get(site_kind[c], len(rank)), c))
    table = pd.DataFrame(
        {
            "concept": names,
            "site_kind": [site_kind[c] for c in names],
            "motif": [motifs.get(c, "") for c in names],
            "label": [labels.get(c, "") for c in names],
        },
        columns=list(CONCEPT_COLUMNS),
    )
    return sites, table


def usable_examples(examples: pd.DataFrame, crop: str = "n_terminal") -> pd.DataFrame:
    """The rows whose positions are UniProt's: all of them, except cropped sequences under
    `crop: center` (their first residue is not position 1)."""
    if crop == "center" and "cropped" in examples.columns:
        examples = examples[~examples["cropped"].astype(bool)]
    return examples.reset_index(drop=True)


def residue_labels(
    examples: pd.DataFrame, sites: pd.DataFrame, concepts: Sequence[str]
) -> list[np.ndarray]:
    """Per row of `examples` (accession, sequence), an (L, concepts) bool array: residue i
    (0-based; position i + 1) lies in a site of that concept (`sites` with `concept`)."""
    column = {concept: c for c, concept in enumerate(concepts)}
    lengths = examples["sequence"].str.len().to_numpy()
    out = [np.zeros((int(n), len(concepts)), dtype=bool) for n in lengths]
    row = {acc: i for i, acc in enumerate(examples["accession"])}
    for site in sites.itertuples(index=False):
        i = row.get(site.accession)
        if i is None or site.concept not in column:
            continue
        start, end = max(int(site.start), 1), min(int(site.end), int(lengths[i]))
        if start <= end:
            out[i][start - 1 : end, column[site.concept]] = True
    return out


# --- the scans ---------------------------------------------------------------------------------


def _residue_rows(lengths: Sequence[int], width: int, device) -> torch.Tensor:
    """(B, width) bool: positions 1..L of each row (the residues; not BOS, EOS, padding)."""
    pos = torch.arange(width, device=device)
    n = torch.as_tensor(list(lengths), device=device).unsqueeze(1)
    return (pos >= 1) & (pos <= n)


@torch.no_grad()
def _scan(
    model: EsmClassifier,
    alphabet,
    sequences: Sequence[str],
    modules: Sequence[UnitKey],
    on_batch: Callable[[UnitKey, torch.Tensor, list[int]], None],
    max_tokens: int = MAX_TOKENS,
) -> None:
    """Run `sequences` through the model; for each batch and module, call
    `on_batch(module, response (residues, units), batch indices)`: the residues of the batch's
    sequences in batch order, the response as `is_signed` says, float32 on the model's device.
    """
    model.eval()
    device = model.head.weight.device
    tokens = tokenize(alphabet, sequences)
    state: dict[str, object] = {}
    signed = {key: is_signed(key[0]) for key in modules}

    def hook(key):
        def capture(_module, _inputs, output):  # (T, B, units)
            values = output.detach().transpose(0, 1)[state["mask"]].float()
            on_batch(key, values if signed[key] else values.abs(), state["idx"])

        return capture

    with forward_hooks(model, {key: hook(key) for key in modules}):
        for idx, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            state["idx"] = idx
            state["mask"] = _residue_rows([len(sequences[i]) for i in idx], batch.shape[1], device)
            model(batch.to(device))


def unit_maxima(
    model: EsmClassifier,
    alphabet,
    sequences: Sequence[str],
    modules: Sequence[UnitKey],
    max_tokens: int = MAX_TOKENS,
) -> dict[UnitKey, torch.Tensor]:
    """Per module, each unit's largest response over the residues of `sequences`."""
    maxima: dict[UnitKey, torch.Tensor] = {}

    def update(key, response, _idx):
        if len(response) == 0:
            return
        top = response.amax(0)
        maxima[key] = top if key not in maxima else torch.maximum(maxima[key], top)

    _scan(model, alphabet, sequences, modules, update, max_tokens)
    return maxima


@dataclass
class Counts:
    """Detection counts of one module over one set of residues: `true` (thresholds, concepts,
    units) residues on and in the concept, `on` (thresholds, units) residues on, `positives`
    (concepts) residues in the concept, `n_residues`."""

    true: np.ndarray
    on: np.ndarray
    positives: np.ndarray
    n_residues: int


def cut_values(maximum: torch.Tensor, fractions: Sequence[float]) -> torch.Tensor:
    """(thresholds, units): fraction x maximum; +inf where the maximum is <= 0 (never on)."""
    fractions = torch.as_tensor(list(fractions), dtype=torch.float32, device=maximum.device)
    cut = fractions.unsqueeze(1) * maximum.float().unsqueeze(0)
    return torch.where(maximum.unsqueeze(0) > 0, cut, torch.full_like(cut, float("inf")))


def detection_counts(
    model: EsmClassifier,
    alphabet,
    sequences: Sequence[str],
    labels: Sequence[np.ndarray],
    modules: Sequence[UnitKey],
    maxima: Mapping[UnitKey, torch.Tensor],
    fractions: Sequence[float],
    max_tokens: int = MAX_TOKENS,
) -> dict[UnitKey, Counts]:
    """Per module, the `Counts` of its units at each threshold (a fraction of the unit's
    `maxima`) over the residues of `sequences`, whose concept labels are `labels`
    (`residue_labels`, one array per sequence)."""
    device = model.head.weight.device
    n_concepts = labels[0].shape[1] if len(labels) else 0
    cuts = {key: cut_values(maxima[key].to(device), fractions) for key in modules}
    true: dict[UnitKey, torch.Tensor] = {}
    on: dict[UnitKey, torch.Tensor] = {}
    batch_labels: dict[tuple[int, ...], torch.Tensor] = {}

    def labels_of(idx):  # one (residues, concepts) float tensor per batch, shared by modules
        key = tuple(idx)
        if key not in batch_labels:
            batch_labels.clear()
            stacked = np.concatenate([labels[i] for i in idx]) if idx else np.zeros((0, 0))
            batch_labels[key] = torch.as_tensor(stacked, dtype=torch.float32, device=device)
        return batch_labels[key]

    def update(key, response, idx):
        y = labels_of(idx).T  # (concepts, residues)
        cut = cuts[key]
        if key not in true:
            true[key] = torch.zeros((len(cut), n_concepts, cut.shape[1]), dtype=torch.float64,
                                    device=device)  # fmt: skip
            on[key] = torch.zeros(cut.shape, dtype=torch.float64, device=device)
        for f in range(len(cut)):
            hit = (response > cut[f]).float()  # (residues, units)
            true[key][f] += (y @ hit).double()  # exact: per-batch counts are far below 2^24
            on[key][f] += hit.sum(0).double()

    _scan(model, alphabet, sequences, modules, update, max_tokens)
    stacked = np.concatenate(list(labels)) if len(labels) else np.zeros((0, n_concepts), bool)
    positives = stacked.sum(0).astype(np.int64)
    return {
        key: Counts(true[key].cpu().numpy().round().astype(np.int64),
                    on[key].cpu().numpy().round().astype(np.int64), positives, len(stacked))
        for key in modules
    }  # fmt: skip


# --- precision, recall, F1 and the choice of threshold -----------------------------------------


def scores(true: np.ndarray, on: np.ndarray, positives: np.ndarray):
    """(precision, recall, F1), each shaped like `true` (..., concepts, units), from the counts
    (`on` (..., units), `positives` (concepts)). Precision of a unit never on, recall of a
    concept without residues, and F1 where both are empty are 0 (nothing detected)."""
    true = np.asarray(true, dtype=np.float64)
    on = np.asarray(on, dtype=np.float64)[..., None, :]
    pos = np.asarray(positives, dtype=np.float64)[:, None]
    precision = np.divide(true, on, out=np.zeros_like(true), where=on > 0)
    recall = np.divide(true, pos, out=np.zeros_like(true), where=pos > 0)
    total = on + pos
    f1 = np.divide(2 * true, total, out=np.zeros_like(true), where=total > 0)
    return precision, recall, f1


def unit_table(
    module: UnitKey,
    val: Counts,
    test: Counts,
    maximum: np.ndarray,
    fractions: Sequence[float],
    concepts: Sequence[str],
) -> pd.DataFrame:
    """One row per (concept, unit) of `module` (`UNIT_COLUMNS`): the threshold with the best
    validation F1 (the lowest fraction on ties), the validation scores there and the test
    scores at the same threshold (the same fraction of the validation maximum)."""
    layer_type, layer = module
    val_p, val_r, val_f = scores(val.true, val.on, val.positives)  # (F, C, U)
    test_p, test_r, test_f = scores(test.true, test.on, test.positives)
    best = val_f.argmax(0)  # (C, U): first maximum = lowest fraction
    n_concepts, n_units = best.shape
    c_idx, u_idx = np.meshgrid(np.arange(n_concepts), np.arange(n_units), indexing="ij")

    def at(values):
        return values[best, c_idx, u_idx].ravel()

    fractions = np.asarray(list(fractions), dtype=np.float64)
    maximum = np.asarray(maximum, dtype=np.float64)
    value = fractions[best] * maximum[None, :]
    value = np.where(maximum[None, :] > 0, value, np.nan)
    return pd.DataFrame(
        {
            "concept": np.repeat(np.asarray(list(concepts), dtype=object), n_units),
            "kind": unit_kind(layer_type),
            "layer_type": layer_type,
            "layer": np.int64(layer),
            "unit": np.tile(np.arange(n_units, dtype=np.int64), n_concepts),
            "threshold": fractions[best].ravel(),
            "threshold_value": value.ravel(),
            "val_precision": at(val_p),
            "val_recall": at(val_r),
            "val_f1": at(val_f),
            "test_precision": at(test_p),
            "test_recall": at(test_r),
            "test_f1": at(test_f),
        },
        columns=list(UNIT_COLUMNS),
    )


@dataclass
class Matching:
    """The result of `match_concepts`: every (concept, unit) row (`UNIT_COLUMNS`), the concepts
    (`CONCEPT_COLUMNS` plus `n_val_residues`, `n_test_residues`, `n_val_sequences`,
    `n_test_sequences`: sequences holding one of its residues) and the residues scanned."""

    units: pd.DataFrame
    concepts: pd.DataFrame
    n_val_residues: int
    n_test_residues: int
    n_val_sequences: int
    n_test_sequences: int


def match_concepts(
    model: EsmClassifier,
    alphabet,
    val: pd.DataFrame,
    test: pd.DataFrame,
    sites: pd.DataFrame,
    modules: Sequence[UnitKey],
    thresholds: Sequence[float] = THRESHOLDS,
    max_tokens: int = MAX_TOKENS,
    log=None,
) -> Matching:
    """Match every unit of `modules` with every concept of `sites` (`concepts_of`): maxima and
    counts on `val`, counts on `test` (accession, sequence), the threshold chosen on `val`."""
    sites, concepts = concepts_of(sites)
    names = concepts["concept"].tolist()
    val_labels = residue_labels(val, sites, names)
    test_labels = residue_labels(test, sites, names)
    val_seqs, test_seqs = val["sequence"].tolist(), test["sequence"].tolist()
    frames = []
    if names and len(val_seqs) and len(test_seqs) and len(modules):
        # every module in the same passes: each hook reduces its module's output to counts
        # at once, so only the per-unit maxima and counts are kept (bounded memory)
        maxima = unit_maxima(model, alphabet, val_seqs, modules, max_tokens)
        val_counts = detection_counts(model, alphabet, val_seqs, val_labels, modules, maxima,
                                      thresholds, max_tokens)  # fmt: skip
        test_counts = detection_counts(model, alphabet, test_seqs, test_labels, modules, maxima,
                                       thresholds, max_tokens)  # fmt: skip
        for module in modules:
            frames.append(unit_table(module, val_counts[module], test_counts[module],
                                     maxima[module].cpu().numpy(), thresholds, names))  # fmt: skip
            if log is not None:
                log.info("%s layer %d: %d units", module[0], module[1], maxima[module].numel())
    units = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(UNIT_COLUMNS))
    )
    for split, labels in (("val", val_labels), ("test", test_labels)):
        per_seq = np.stack([lab.any(0) for lab in labels]) if labels else None
        total = sum((lab.sum(0) for lab in labels), np.zeros(len(names), dtype=np.int64))
        concepts[f"n_{split}_residues"] = np.asarray(total, dtype=np.int64)
        concepts[f"n_{split}_sequences"] = (
            per_seq.sum(0).astype(np.int64) if per_seq is not None else np.zeros(len(names), int)
        )
    return Matching(
        units,
        concepts,
        int(sum(len(s) for s in val_seqs)),
        int(sum(len(s) for s in test_seqs)),
        len(val_seqs),
        len(test_seqs),
    )
