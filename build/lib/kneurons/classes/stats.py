"""Statistics of the class-specific targets (`kneurons.classes.rankings`): is a class's own set of
units knowledge of that class's sequences, or something that merely looks like it?

For a row (class c's own units multiplied by a factor; or a random seed's units, which serve
every class c) four effects are measured on the test set, each against the random units of the
same size, layer type, factor and retention (the band over seeds):

- **own-class effect** (`own_*`): the change of class c's sequences' mean true-class probability
  (p(c) on class-c inputs). Also set against the *cross-class reference* (`cross_*`): what the
  other classes' own units (same method and cell) do to class c's sequences, the off-diagonal
  of the method's matrix. Units that hold class c's knowledge should do more to class c than
  any other class's top units do.
- **off-target effect** (`off_*`): the other class e with the largest DROP of its sequences'
  mean true-class probability, and that drop (the most negative Δ_e). A drop is the harmful
  direction for both operations: suppressing, it is damage beyond class c (a model collapsing
  onto a sink drops every class but the sink); amplifying, it is probability mass pushed onto c
  from the other classes' inputs, which the old statistic (own Δ minus the mean Δ of the
  others) counted as specificity. A rise of another class is not off-target damage (for
  suppression it is where class c's lost mass may go) and is left to the input test. The
  largest drop is taken on every resample and for every random seed alike, so the random band
  is that of the same statistic.
- **input versus output** (`input_*`, `output_*`): the change of the log-odds of p(c) on class
  c's inputs minus its change on the other classes' inputs (`input_effect`), and the change on
  the other classes' inputs alone (`logodds_other_inputs`, the push on the output). Units that
  add a constant to class c's logit whatever the sequence shift the log-odds of p(c) by exactly
  that constant on every input: an OUTPUT push, not knowledge of class-c sequences, and its
  input effect is 0 (log-odds, not probability, because a constant push moves a probability of
  0.9 and one of 0.05 by different amounts). On a model whose labels are independent of the
  sequences, class c's inputs and the others are exchangeable, so the input effect has mean 0
  whatever the units do: this test is what keeps a label-permuted run from calling anything
  specific, without the at-chance guard.
- **sink collapse** (`sink_*`): the changed model predicts one class for at least `SINK_SHARE`
  of the test sequences while that class is at least `SINK_EXCESS` less of the test set (e.g.
  >= 80% predicted, <= 50% present): the units broke the model into a default answer, and
  every other class's drop is generic damage.

Tests. Every p-value against random is `kneurons.statistics.random_test` (seeds and test
sequences vary jointly; ties with seeds count against the method), one-sided: own-class, input
and output effects in the direction of the factor (suppress/dampen: lower, amplify: higher),
off-target effect lower. Test sequences are resampled within each class (and by homology
cluster when the test set has a `cluster` column; `resample_counts`), the same resamples for
every row. Benjamini-Hochberg q-values run over one family per test: every scored (method,
layer type, factor, retention, class) row of the table. A test is *beyond random* at q <= alpha
with its Δ interval on the expected side of 0.

The call (`effect_kind`, first match wins): random rows are `random`; without a test
`untested`; a sink collapse `collapse`; own-class effect not beyond random: `off-target` if the
off-target drop is, else `output` if the output push is, else `none`; own-class effect beyond
random but input effect not: `output`; off-target drop beyond random and the own-class effect
(minus random, in the expected direction) not larger than it (minus random) by `margin`:
`off-target`; own-class effect not beyond the other classes' units on class c (paired bootstrap
interval of own − mean cross-class effect on the expected side of 0): `generic`; else
`specific`. When the unchanged model is at chance (accuracy interval reaching the majority-class
rate, or the exact binomial test of its accuracy above that rate not significant at alpha)
`specific` becomes `at-chance`: nothing there is a finding. `specific` is True only for
`specific`.

Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.classes.effects import (
    check_evals,
    class_index,
    logodds,
    matrix,
    probabilities,
)
from kneurons.classes.rankings import (
    CLASS_KEY_COLUMNS,
    GROUP,
    SINK_EXCESS,
    SINK_SHARE,
    alternative_of_factor,
)
from kneurons.statistics import (
    above_chance_p_value,
    band,
    bh_adjust,
    percentile_interval,
    random_test,
    resample_counts,
    resampled_means,
)
from kneurons.vocab import RANDOM

# test -> its one-sided alternative ("factor": the factor's direction, `alternative_of_factor`)
TESTS = {"own": "factor", "off": "less", "input": "factor", "output": "factor"}


class _Data:
    """The evaluations as arrays: R rows, N test sequences, K classes, B resamples."""

    def __init__(self, evals, y_true, classes, n_boot, seed, clusters):
        self.y = np.asarray(y_true, dtype=np.int64)
        n = len(self.y)
        self.index = class_index(self.y, classes)
        self.counts = resample_counts(n, n_boot, seed, strata=self.y, clusters=clusters)
        probs = probabilities(evals, "probs", n)
        base_probs = probabilities(evals, "base_probs", n)
        self.true_delta = matrix(evals, "true_prob") - matrix(evals, "base_true_prob")
        self.acc_delta = matrix(evals, "correct") - matrix(evals, "base_correct")
        self.logodds_delta = logodds(probs) - logodds(base_probs)
        self.prob_delta = probs - base_probs
        self.predicted = matrix(evals, "predicted").astype(np.int64)
        self.base_predicted = matrix(evals.iloc[:1], "base_predicted")[0].astype(np.int64)
        self.base_correct = matrix(evals.iloc[:1], "base_correct")[0]

    def mean(self, values: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed (R,) and resampled (R, B) means of per-sequence values (R, N) over idx."""
        return values[:, idx].mean(axis=1), resampled_means(values[:, idx], self.counts[:, idx])

    def others(self, c: int) -> np.ndarray:
        return np.flatnonzero(self.y != c)


def _class_statistics(data: _Data, c: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per test statistic of class c: observed (R,) and resampled (R, B) for every row."""
    own = data.mean(data.true_delta, data.index[c])
    drops = [data.mean(data.true_delta, idx) for e, idx in data.index.items() if e != c]
    off = (np.min([d[0] for d in drops], axis=0), np.min([d[1] for d in drops], axis=0))
    on_own = data.mean(data.logodds_delta[:, :, c], data.index[c])
    on_other = data.mean(data.logodds_delta[:, :, c], data.others(c))
    return {
        "own": own,
        "off": off,
        "input": (on_own[0] - on_other[0], on_own[1] - on_other[1]),
        "output": on_other,
        "_on_own": on_own,
    }


# ---------------------------------------------------------------------------------------------
# One row of the table


def _tested(stat, i, random_rows, alternative, level, seed) -> dict:
    """random_test of row i's statistic against the random rows' values (same resamples)."""
    observed, boot = stat
    result = random_test(
        float(observed[i]),
        observed[random_rows],
        boot[i],
        boot[random_rows],
        alternative=alternative,
        level=level,
        seed=seed,
    )
    return {
        "delta": result["delta"],
        "delta_ci_low": result["delta_ci_low"],
        "delta_ci_high": result["delta_ci_high"],
        "p": result["p_value"],
    }


def _random_band(values: np.ndarray, level: float) -> dict:
    stats = band(values, level)
    return {k: stats[k] for k in ("mean", "std", "band_low", "band_high", "n")}


def _descriptive(data: _Data, stats: dict, i: int, c: int, classes, level: float) -> dict:
    """What row i does for class c, without a test."""
    own_obs, own_boot = stats["own"]
    low, high = percentile_interval(own_boot[i], level)
    others = [e for e in data.index if e != c]
    drops = [float(data.true_delta[i, data.index[e]].mean()) for e in others]
    worst = others[int(np.argmin(drops))]
    return {
        "n_class": len(data.index[c]),
        "own_prob": float(own_obs[i]),
        "own_prob_ci_low": float(low),
        "own_prob_ci_high": float(high),
        "own_acc": float(data.acc_delta[i, data.index[c]].mean()),
        "off_class": str(classes[worst]),
        "off_prob": float(min(drops)),
        "off_acc": float(data.acc_delta[i, data.index[worst]].mean()),
        "others_prob_mean": float(np.mean(drops)),
        "pc_other_inputs": float(data.prob_delta[i, data.others(c), c].mean()),
        "logodds_own_inputs": float(stats["_on_own"][0][i]),
        "logodds_other_inputs": float(stats["output"][0][i]),
        "input_effect": float(stats["input"][0][i]),
    }


def _cross(stats: dict, i: int, cross_rows: np.ndarray, alternative: str | None, level) -> dict:
    """Row i's own-class effect against the other classes' units on class c (same cell)."""
    nan = float("nan")
    own_obs, own_boot = stats["own"]
    out = {"cross_n": len(cross_rows), "cross_mean": nan, "cross_extreme": nan}
    out.update(own_minus_cross=nan, own_minus_cross_ci_low=nan, own_minus_cross_ci_high=nan)
    if len(cross_rows) == 0 or alternative is None:
        out["own_beyond_cross"] = False
        return out
    cross = own_obs[cross_rows]
    out["cross_mean"] = float(cross.mean())
    out["cross_extreme"] = float(cross.min() if alternative == "less" else cross.max())
    differences = own_boot[i] - own_boot[cross_rows].mean(axis=0)
    low, high = percentile_interval(differences, level)
    out["own_minus_cross"] = float(own_obs[i] - cross.mean())
    out["own_minus_cross_ci_low"], out["own_minus_cross_ci_high"] = float(low), float(high)
    out["own_beyond_cross"] = bool(high < 0 if alternative == "less" else low > 0)
    return out


def _row(data, stats, row, i, c, classes, random_rows, cross_rows, level, seed) -> dict:
    out = {k: row[k] for k in CLASS_KEY_COLUMNS}
    out["label"], out["selected_class"] = c, str(classes[c])
    out.update(_descriptive(data, stats, i, c, classes, level))
    is_random = row["method_family"] == RANDOM
    factor_alternative = alternative_of_factor(row["factor"])
    out.update(_cross(stats, i, cross_rows, factor_alternative, level))
    testable = not is_random and factor_alternative is not None and len(random_rows) > 0
    for test, kind in TESTS.items():
        band_ = _random_band(stats[test][0][random_rows], level)
        for k, v in band_.items():
            out[f"{test}_random_{k}"] = v if not is_random else np.nan
        alternative = factor_alternative if kind == "factor" else kind
        tested = (
            _tested(stats[test], i, random_rows, alternative, level, seed)
            if testable
            else dict.fromkeys(("delta", "delta_ci_low", "delta_ci_high", "p"), np.nan)
        )
        for k, v in tested.items():
            out[f"{test}_{k}"] = v
    return out


# ---------------------------------------------------------------------------------------------
# The table


def _rows_of_class(data: _Data, base: pd.DataFrame, c: int, classes, level, seed) -> list:
    """The rows of selected class c: class c's own units of every method, and every random
    seed's units, each against the random seeds of its (layer type, factor, retention)."""
    stats = _class_statistics(data, c)
    rows = []
    for _, group in base.groupby(GROUP, sort=True):
        is_random = (group["method_family"] == RANDOM).to_numpy()
        random_rows = group.index[is_random].to_numpy()
        for i, row in group.iterrows():
            if row["method_family"] != RANDOM and int(row["label"]) != c:
                continue
            # the other classes' own units of the same method (none for a random seed)
            same = ~is_random & (group["method"] == row["method"]).to_numpy()
            cross = group.index[same & (group["label"] != c).to_numpy()].to_numpy()
            out = _row(data, stats, row, i, c, classes, random_rows, cross, level, seed)
            rows.append({"_row": i, **out})
    return rows


def specificity_table(
    evals: pd.DataFrame,
    y_true,
    classes: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    margin: float = 0.05,
    clusters=None,
    shared: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (evaluation row, selected class c): the own-class, cross-class, off-target,
    input and output effects of the module docstring with their random bands, tests and
    q-values, the sink-collapse flag, the call (`effect_kind`, `specific`), and the unchanged
    model's accuracy against chance (the majority-class rate). Random rows appear once per
    class (their units serve every class) with the effects but no tests. `clusters` (one per
    test sequence) resamples homology clusters whole; `shared`
    (`kneurons.classes.rankings.shared_units`)
    adds the refinement counts. Empty with fewer than two classes with test sequences.

    Columns besides the keys (Δ: changed minus unchanged model; "minus random": minus the mean
    of the random seeds of the same cell and class):
    - own-class effect: `own_prob` (Δ mean true-class probability of class c's sequences, with
      `_ci_low`/`_ci_high`), `own_acc` (Δ their accuracy); per test t in own, off, input,
      output: `t_random_mean`/`_std`/`_band_low`/`_band_high`/`_n` (the seeds' values),
      `t_delta` (minus random) with `t_delta_ci_low`/`_high`, `t_p`, `t_q`, `t_beyond`;
    - cross-class reference: `cross_n`, `cross_mean`, `cross_extreme` (the other classes' own
      units on class c's sequences), `own_minus_cross` with its interval, `own_beyond_cross`;
    - off-target: `off_class`, `off_prob` (its Δ), `off_acc`, `others_prob_mean` (mean Δ of
      all other classes), `margin_met`;
    - input versus output: `logodds_own_inputs`, `logodds_other_inputs` (Δ log-odds of p(c) on
      class c's and on the other classes' sequences), `input_effect` (their difference),
      `pc_other_inputs` (Δ mean p(c) on the other classes' sequences);
    - sink: `sink_class`, `sink_share`, `sink_test_share`, `sink_collapse`, and the same of the
      unchanged model (`base_sink_*`);
    - the call: `effect_kind`, `specific`, `alpha`, `margin`; the model: `base_accuracy`,
      `base_accuracy_ci_low`, `base_above_chance_p` (exact one-sided binomial test),
      `chance` (majority-class rate), `majority_label`, `model_at_chance`."""
    check_evals(evals, y_true, classes)
    data_index = class_index(y_true, classes)
    if len(data_index) < 2 or evals.empty:
        return pd.DataFrame()
    base = evals.reset_index(drop=True)
    data = _Data(base, y_true, classes, n_boot, seed, clusters)
    rows = [r for c in data.index for r in _rows_of_class(data, base, c, classes, level, seed)]
    table = pd.DataFrame(rows)
    table = _add_sink(table, data, classes)
    table = _add_calls(table, alpha, margin)
    table = _add_chance(table, data, level, alpha)
    table = table.drop(columns="_row").sort_values([*GROUP, "method", "label"], kind="stable")
    table = table.reset_index(drop=True)
    table["seed"] = table["seed"].astype("Int64")
    table["selected_class"] = table["selected_class"].astype("string")
    if shared is not None and not shared.empty:
        table = table.merge(shared, on=["method", "layer_type", "retention", "label"], how="left")
    return table


def sink(predicted: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
    """The most predicted class, its share of the predictions and of the test set, and whether
    that is a collapse: predicted for >= SINK_SHARE of the sequences while its test share is at
    least SINK_EXCESS lower."""
    shares = np.bincount(predicted, minlength=n_classes) / len(predicted)
    s = int(np.argmax(shares))
    test_share = float(np.mean(y == s))
    collapse = shares[s] >= SINK_SHARE and shares[s] - test_share >= SINK_EXCESS
    return {"class": s, "share": float(shares[s]), "test_share": test_share, "collapse": collapse}


def _add_sink(table: pd.DataFrame, data: _Data, classes) -> pd.DataFrame:
    per_row = [sink(p, data.y, len(classes)) for p in data.predicted]
    rows = table["_row"].to_numpy()
    table["sink_class"] = [str(classes[per_row[i]["class"]]) for i in rows]
    table["sink_share"] = [per_row[i]["share"] for i in rows]
    table["sink_test_share"] = [per_row[i]["test_share"] for i in rows]
    table["sink_collapse"] = [bool(per_row[i]["collapse"]) for i in rows]
    unchanged = sink(data.base_predicted, data.y, len(classes))
    table["base_sink_class"] = str(classes[unchanged["class"]])
    table["base_sink_share"] = unchanged["share"]
    table["base_sink_collapse"] = bool(unchanged["collapse"])
    return table


def _beyond(table: pd.DataFrame, test: str, alpha: float) -> np.ndarray:
    """q <= alpha and the Δ interval on the test's expected side of 0."""
    q = table[f"{test}_q"].to_numpy()
    low = table[f"{test}_delta_ci_low"].to_numpy()
    high = table[f"{test}_delta_ci_high"].to_numpy()
    if TESTS[test] == "less":
        side = high < 0
    else:
        less = np.array([alternative_of_factor(f) == "less" for f in table["factor"]])
        side = np.where(less, high < 0, low > 0)
    return (q <= alpha) & side


def _add_calls(table: pd.DataFrame, alpha: float, margin: float) -> pd.DataFrame:
    for test in TESTS:
        table[f"{test}_q"] = bh_adjust(table[f"{test}_p"].to_numpy())
        table[f"{test}_beyond"] = _beyond(table, test, alpha)
    sign = np.array([-1.0 if alternative_of_factor(f) == "less" else 1.0 for f in table["factor"]])
    own_strength = sign * table["own_delta"].to_numpy()
    off_strength = np.maximum(0.0, -table["off_delta"].to_numpy())
    table["margin_met"] = own_strength - off_strength >= margin
    table["alpha"] = float(alpha)
    table["margin"] = float(margin)
    table["effect_kind"] = [effect_kind(r) for _, r in table.iterrows()]
    return table


def effect_kind(row) -> str:
    """The call of one row (module docstring), before the at-chance guard."""
    if row["method_family"] == RANDOM:
        return "random"
    if row["own_p"] is None or math.isnan(row["own_p"]):
        return "untested"
    if row["sink_collapse"]:
        return "collapse"
    if not row["own_beyond"]:
        if row["off_beyond"]:
            return "off-target"
        return "output" if row["output_beyond"] else "none"
    if not row["input_beyond"]:
        return "output"
    if row["off_beyond"] and not row["margin_met"]:
        return "off-target"
    if row["cross_n"] > 0 and not row["own_beyond_cross"]:
        return "generic"
    return "specific"


def majority_rate(y_true) -> tuple[int, float]:
    """The majority class of the test set and its share: the accuracy of always answering it,
    the chance level a classifier must beat."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64))
    return int(np.argmax(counts)), float(counts.max() / counts.sum())


def _add_chance(table: pd.DataFrame, data: _Data, level: float, alpha: float) -> pd.DataFrame:
    """The unchanged model against chance (the majority rate), as the summary's Findings judge
    it (`kneurons.summary.findings.at_chance`): at chance when its accuracy interval (same
    resamples) reaches chance or the exact one-sided binomial test of its accuracy above
    chance has p > alpha. At chance no row is `specific` (`at-chance` instead)."""
    resampled = resampled_means(data.base_correct, data.counts)[0]
    majority, chance = majority_rate(data.y)
    accuracy = float(data.base_correct.mean())
    p_above = above_chance_p_value(accuracy, len(data.y), chance)
    table["base_accuracy"] = accuracy
    table["base_accuracy_ci_low"] = float(percentile_interval(resampled, level)[0])
    table["base_above_chance_p"] = p_above
    table["chance"] = chance
    table["majority_label"] = majority
    at_chance = bool(table["base_accuracy_ci_low"].iloc[0] <= chance or not p_above <= alpha)
    table["model_at_chance"] = at_chance
    if at_chance:
        table.loc[table["effect_kind"] == "specific", "effect_kind"] = "at-chance"
    table["specific"] = table["effect_kind"] == "specific"
    return table
