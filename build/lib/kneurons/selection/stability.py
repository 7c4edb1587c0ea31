"""How stable a method's selection is: would the same neurons be chosen from other examples, or
from another fine-tuning of the same model?

- Split half (one model): every score file of a scored method holds, beside `score` (the mean over
  all scoring examples), `score_a` and `score_b`: the same mean over two disjoint halves of the
  examples (`kneurons.scoring.files.split_halves`). Per method, layer type and retention level the
  top r% of each half is taken over all layers of the type (as scope layer_type selects) and
  compared.
- Across models: models that start from the same weights and differ only in their fine-tuning
  seed (`models.<name>.finetune_seed`) rank the same units (a neuron's index means the same thing
  in both); their top r% by `score` are compared the same way.

Measures (README, "Stability of the selection"):
- `jaccard` = |A & B| / |A | B| of the two top-r% sets, beside `jaccard_chance`, the exact
  expectation of that Jaccard for two unrelated uniform selections of the same size (the overlap
  I of two k-subsets of n units is hypergeometric(n, k, k); E[I / (2k - I)]), and `p_overlap`,
  the hypergeometric chance that unrelated selections overlap at least this much;
- `spearman`: rank correlation of the two score vectors over all units of the layer type; for
  split halves also `spearman_brown` = 2 rho / (1 + rho), the correlation the Spearman-Brown
  formula predicts for two full samples of examples (each half has half the examples, so the
  split-half figures understate the stability of the full-sample selection); NaN for ρ ≤ 0,
  where the formula does not apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from kneurons.io import read_parquet_metadata
from kneurons.selection.ranking import all_class_rows, num_kept, rank_pool
from kneurons.statistics import expected_random_jaccard

STABILITY_COLUMNS = (
    "model",
    "model_b",
    "comparison",
    "method",
    "layer_type",
    "retention",
    "n_units",
    "n_kept",
    "overlap",
    "jaccard",
    "jaccard_chance",
    "p_overlap",
    "spearman",
    "spearman_brown",
)


def overlap_p_value(overlap: int, k: int, n: int) -> float:
    """P(I >= overlap) for the overlap I of two unrelated uniform k-subsets of n units."""
    if n < 1 or k < 1:
        return float("nan")
    return float(stats.hypergeom.sf(overlap - 1, n, k, k))


def _top(frame: pd.DataFrame, column: str, retention: float) -> set:
    units = frame.loc[:, ["layer_type", "layer", "neuron"]].assign(score=frame[column])
    ranked = rank_pool(units, "layer_type")
    keep = ranked["rank"].to_numpy() < num_kept(retention, len(ranked))
    return set(zip(ranked.loc[keep, "layer"], ranked.loc[keep, "neuron"], strict=True))


def compare(
    a: pd.DataFrame, b: pd.DataFrame, column_a: str, column_b: str, retentions: Iterable[float]
) -> list[dict]:
    """Rows of the measures for two score vectors over the same units of one layer type."""
    keys = ["layer_type", "layer", "neuron"]
    both = a.loc[:, [*keys, column_a]].merge(
        b.loc[:, [*keys, column_b]].rename(columns={column_b: "_b"}), on=keys, validate="1:1"
    )
    if len(both) != len(a) or len(both) != len(b):
        raise ValueError("the two score vectors cover different units")
    x, y = both[column_a].to_numpy(float), both["_b"].to_numpy(float)
    valid = np.isfinite(x) & np.isfinite(y)
    rho = np.nan
    if valid.sum() > 2 and np.ptp(x[valid]) > 0 and np.ptp(y[valid]) > 0:
        rho = float(stats.spearmanr(x[valid], y[valid]).statistic)
    rows = []
    n = len(both)
    for retention in sorted(set(float(r) for r in retentions), reverse=True):
        k = num_kept(retention, n)
        if not valid.all():
            top_a = top_b = None
        else:
            top_a = _top(both, column_a, retention)
            top_b = _top(both, "_b", retention)
        inter = len(top_a & top_b) if top_a is not None else np.nan
        rows.append(
            {
                "retention": retention,
                "n_units": n,
                "n_kept": k,
                "overlap": inter,
                "jaccard": inter / (2 * k - inter) if top_a is not None and k else np.nan,
                "jaccard_chance": expected_random_jaccard(k, n),
                "p_overlap": overlap_p_value(int(inter), k, n) if top_a is not None else np.nan,
                "spearman": rho,
            }
        )
    return rows


def spearman_brown(rho: float) -> float:
    """2 rho / (1 + rho): the correlation predicted for samples twice the size. Defined for a
    positive split-half correlation only (the formula assumes two parallel halves; for ρ ≤ 0
    it would predict an even more negative full-sample correlation): NaN otherwise."""
    return 2 * rho / (1 + rho) if np.isfinite(rho) and rho > 0 else float("nan")


def split_half_stability(
    scores: pd.DataFrame, retentions: Sequence[float], model: str, method: str
) -> pd.DataFrame:
    """Split-half measures of one method's all-class scores (every layer type in `scores`:
    columns layer_type, layer, neuron, score_a, score_b). Columns `STABILITY_COLUMNS`."""
    rows = []
    for layer_type, frame in scores.groupby("layer_type", sort=False):
        for row in compare(frame, frame, "score_a", "score_b", retentions):
            rho = row["spearman"]
            rows.append(
                {
                    "model": model,
                    "model_b": model,
                    "comparison": "split_half",
                    "method": method,
                    "layer_type": layer_type,
                    **row,
                    "spearman_brown": spearman_brown(rho),
                }
            )
    return _frame(rows)


def cross_model_stability(
    scores: Mapping[str, pd.DataFrame], retentions: Sequence[float], method: str
) -> pd.DataFrame:
    """Every pair of models' selections of one method (`scores`: model -> all-class rows with
    `score`, the same units in each). Columns `STABILITY_COLUMNS` (spearman_brown NaN)."""
    rows = []
    models = list(scores)
    for i, model_a in enumerate(models):
        for model_b in models[i + 1 :]:
            a, b = scores[model_a], scores[model_b]
            for layer_type, frame_a in a.groupby("layer_type", sort=False):
                frame_b = b[b["layer_type"] == layer_type]
                for row in compare(frame_a, frame_b, "score", "score", retentions):
                    rows.append(
                        {
                            "model": model_a,
                            "model_b": model_b,
                            "comparison": "finetune_seed",
                            "method": method,
                            "layer_type": layer_type,
                            **row,
                            "spearman_brown": np.nan,
                        }
                    )
    return _frame(rows)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(STABILITY_COLUMNS))
    for col in ("n_units", "n_kept"):
        frame[col] = frame[col].astype("int64")
    return frame


def read_method_scores(paths: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Method -> the all-class rows of its score files (from each file's metadata `method`)."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for path in paths:
        method = read_parquet_metadata(path)["method"]
        frames.setdefault(method, []).append(all_class_rows(pd.read_parquet(path)))
    return {m: pd.concat(f, ignore_index=True) for m, f in frames.items()}
