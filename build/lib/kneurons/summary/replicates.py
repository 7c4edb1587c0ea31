"""Findings across replicates: models fine-tuned from the same weights on the same split with
different seeds (`models.<id>.replicates`, or entries that differ only in `finetune_seed`;
`kneurons.configuration`). Does a finding of one fine-tuning hold in the others?

A cell is one method's test against its random selections: (method, target, mode, scope,
direction, retention) of `masked_eval.parquet` (`measure` accuracy), or (method, target, mode,
scope, direction) of `auc.parquet`, the area under accuracy vs retention (`measure` auc,
`retention` NaN). In each replicate it is a finding as in that model's Findings
(`kneurons.summary.baseline.is_finding`, the test `kneurons.summary.findings` applies: q ≤ alpha
and the Δ interval on the side the direction expects). `replicate_findings` counts, per cell,
the replicates where it is one (k of N) beside every replicate's Δ; `replicate_markdown` says
it in words, with the pairwise overlap of the replicates' selections
(`kneurons.selection.stability.cross_model_stability`) after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kneurons.format import fmt, fmt_signed, isnan, md_table, pct
from kneurons.summary.baseline import is_finding  # the Findings' test (summary.findings)
from kneurons.vocab import DIRECTIONS, MODES, RANDOM, SCOPES, TARGET_ORDER, UNMASKED, order_of

ACCURACY, AUC = "accuracy", "auc"
KEY_COLUMNS = ("measure", "method", "target", "mode", "scope", "direction", "retention")
COUNT_COLUMNS = ("n_replicates", "n_tested", "n_findings")
# per replicate model m: delta_<m>, q_value_<m>, finding_<m>, after the columns above
PER_REPLICATE = ("delta", "q_value", "finding")
_TEST_COLUMNS = ("delta", "delta_ci_low", "delta_ci_high", "q_value")


def replicate_column(what: str, model: str) -> str:
    return f"{what}_{model}"


def tested_cells(masked: pd.DataFrame, auc: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """One model's method cells (no random seed, no unmasked row) of both tables: the key
    columns, Δ with its interval, q and `finding`. ValueError when a cell appears twice."""
    acc = masked[~masked["method_family"].isin([RANDOM, UNMASKED])].assign(measure=ACCURACY)
    area = auc[auc["method"] != RANDOM].assign(measure=AUC, retention=np.nan)
    columns = [*KEY_COLUMNS, *_TEST_COLUMNS]
    frames = [frame.loc[:, columns] for frame in (acc, area) if len(frame)]
    cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    cells["retention"] = cells["retention"].astype(float)
    cells["finding"] = [is_finding(row, alpha) for _, row in cells.iterrows()]
    keys = [_key(row) for _, row in cells.iterrows()]
    if len(set(keys)) != len(keys):
        raise ValueError("a summary table has two rows of one cell")
    return cells


def _key(row) -> tuple:
    """A cell's key with NaN retention (AUC) as None, so that equal keys compare equal."""
    return tuple(
        None if col == "retention" and isnan(row[col]) else row[col] for col in KEY_COLUMNS
    )


def replicate_findings(
    summaries: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], alpha: float
) -> pd.DataFrame:
    """Per cell of any replicate (`summaries`: model -> (masked_eval, auc) tables, in replicate
    order): `n_replicates` (N), `n_tested` (replicates where the cell has a q-value),
    `n_findings` (k: replicates where it is a finding at `alpha`), then per model its Δ, q and
    finding (`replicate_column`). A cell missing from a replicate counts as not tested there.
    Rows in the order of the Findings: variant, measure (accuracy, then AUC), target, method,
    retention (descending)."""
    models = list(summaries)
    per_model = {}
    for model, (masked, auc) in summaries.items():
        cells = tested_cells(masked, auc, alpha)
        per_model[model] = {_key(row): row for _, row in cells.iterrows()}
    keys = list(dict.fromkeys(key for cells in per_model.values() for key in cells))
    records = []
    for key in keys:
        record = dict(zip(KEY_COLUMNS, key, strict=True))
        record["retention"] = np.nan if key[-1] is None else float(key[-1])
        rows = [per_model[model].get(key) for model in models]
        record["n_replicates"] = len(models)
        record["n_tested"] = sum(row is not None and not isnan(row["q_value"]) for row in rows)
        record["n_findings"] = sum(row is not None and bool(row["finding"]) for row in rows)
        for model, row in zip(models, rows, strict=True):
            missing = row is None
            record[replicate_column("delta", model)] = np.nan if missing else row["delta"]
            record[replicate_column("q_value", model)] = np.nan if missing else row["q_value"]
            record[replicate_column("finding", model)] = False if missing else row["finding"]
        records.append(record)
    columns = [*KEY_COLUMNS, *COUNT_COLUMNS] + [
        replicate_column(what, model) for model in models for what in PER_REPLICATE
    ]
    table = pd.DataFrame(records, columns=columns)
    for col in COUNT_COLUMNS:
        table[col] = table[col].astype("int64")
    for model in models:
        for what in ("delta", "q_value"):
            table[replicate_column(what, model)] = table[replicate_column(what, model)].astype(
                float
            )
        table[replicate_column("finding", model)] = table[
            replicate_column("finding", model)
        ].astype(bool)
    return _ordered(table)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table.reset_index(drop=True)
    ranks = {
        "mode": {v: i for i, v in enumerate(order_of(table["mode"], MODES))},
        "scope": {v: i for i, v in enumerate(order_of(table["scope"], SCOPES))},
        "direction": {v: i for i, v in enumerate(order_of(table["direction"], DIRECTIONS))},
        "measure": {ACCURACY: 0, AUC: 1},
        "target": {v: i for i, v in enumerate(order_of(table["target"], TARGET_ORDER))},
        "method": {v: i for i, v in enumerate(sorted(set(table["method"])))},
    }
    order = table.assign(
        **{f"_{col}": table[col].map(rank) for col, rank in ranks.items()},
        _retention=-table["retention"].fillna(np.inf),
    )
    sort = ["_mode", "_scope", "_direction", "_measure", "_target", "_method", "_retention"]
    order = order.sort_values(sort, kind="stable")
    return order.drop(columns=sort).reset_index(drop=True)


def models_of(table: pd.DataFrame) -> list[str]:
    """The replicate models of a `replicate_findings` table, in order."""
    prefix = "delta_"
    return [col[len(prefix) :] for col in table.columns if col.startswith(prefix)]


def _cell_name(row) -> str:
    where = (
        ", area under accuracy vs retention"
        if row["measure"] == AUC
        else f" at {pct(row['retention'])}"
    )
    return f"**{row['method']}**, {row['target']}{where}"


def finding_lines(table: pd.DataFrame) -> list[str]:
    """One bullet per cell that is a finding in at least one replicate: "holds in k of N
    replicates", with every replicate's Δ (a finding's marked *) and, where some replicate
    could not test it, in how many it was tested."""
    models = models_of(table)
    lines = []
    for _, row in table[table["n_findings"] > 0].iterrows():
        deltas = ", ".join(
            fmt_signed(row[replicate_column("delta", m)])
            + ("*" if row[replicate_column("finding", m)] else "")
            for m in models
        )
        k, n, tested = int(row["n_findings"]), int(row["n_replicates"]), int(row["n_tested"])
        untested = f", tested in {tested}" if tested < n else ""
        lines.append(f"{_cell_name(row)}: holds in {k} of {n} replicates{untested} (Δ {deltas}).")
    return lines


def replicate_markdown(
    table: pd.DataFrame,
    group: str,
    alpha: float,
    stability: pd.DataFrame | None = None,
) -> str:
    """The cross-replicate Findings of one replicate group (`table`: `replicate_findings`),
    per masking variant, then the replicates' selection overlap (`stability`: rows of
    `cross_model_stability`; only the pairs within `models_of(table)` are used)."""
    models = models_of(table)
    n = len(models)
    parts = [
        f"## Findings across replicates: {group}",
        "",
        f"{n} replicates ({', '.join(models)}): the same starting weights fine-tuned on the "
        "same split with different seeds, each scored, selected and evaluated on its own. A "
        "cell is a finding in a replicate as in that model's Findings: q ≤ "
        f"{alpha:g} and the Δ interval (method − random selections of the same size) excluding 0 "
        "on the side the direction expects. Each line: in how many replicates the cell is a "
        "finding, and every replicate's Δ in the order above (* a finding).",
        "",
    ]
    found = table[table["n_findings"] > 0]
    if table.empty or not (table["n_tested"] > 0).any():
        parts += ["**No cell was tested in any replicate**: nothing to compare.", ""]
    elif found.empty:
        parts += [
            f"**No cell is a finding in any of the {n} replicates** (q ≤ {alpha:g} with a Δ "
            "interval excluding 0).",
            "",
        ]
    else:
        every = int((found["n_findings"] == n).sum())
        parts += [
            f"Of the {len(found)} cells that are a finding in at least one replicate, {every} "
            f"{'holds' if every == 1 else 'hold'} in all {n} and {len(found) - every} in only "
            "some.",
            "",
        ]
        for variant, rows in found.groupby(["mode", "scope", "direction"], sort=False):
            parts += [f"**{' / '.join(variant)}** (mode / scope / direction):", ""]
            parts += [f"- {line}" for line in finding_lines(rows)] + [""]
    overlap = stability_lines(stability, models)
    if overlap:
        parts += overlap
    return "\n".join(parts).rstrip() + "\n"


def stability_lines(stability: pd.DataFrame | None, models: Sequence[str]) -> list[str]:
    """The pairwise overlap of the replicates' top-r% selections per method and layer type: the
    mean Jaccard over the pairs (lowest, highest) at every retention level, beside chance."""
    if stability is None or stability.empty:
        return []
    mine = stability[
        (stability["comparison"] == "finetune_seed")
        & stability["model"].isin(models)
        & stability["model_b"].isin(models)
    ]
    if mine.empty:
        return []
    retentions = sorted(mine["retention"].unique(), reverse=True)
    n_pairs = len(mine.groupby(["model", "model_b"]))
    header = ["method", "layer type", *(f"J {pct(r)} (chance)" for r in retentions), "ρ"]
    rows = []
    for (method, layer_type), group in mine.groupby(["method", "layer_type"], sort=True):
        row = [method, layer_type]
        for r in retentions:
            at = group[group["retention"] == r]
            if at.empty:
                row.append("—")
                continue
            j = at["jaccard"]
            spread = f" [{fmt(j.min(), 2)}, {fmt(j.max(), 2)}]" if len(at) > 1 else ""
            row.append(f"{fmt(j.mean(), 2)}{spread} ({fmt(at['jaccard_chance'].mean(), 3)})")
        row.append(fmt(group.drop_duplicates(["model", "model_b"])["spearman"].mean(), 2))
        rows.append(row)
    return [
        "### Selections across replicates",
        "",
        f"Overlap of the replicates' top r% (over all layers of the type) per method and "
        f"layer type: J, the Jaccard of two replicates' selections, averaged over the {n_pairs} "
        "pairs ([lowest, highest] pair), beside chance, the Jaccard of two unrelated "
        "selections of that size; ρ: the mean Spearman correlation of two replicates' scores "
        "over all units. Every pair, with the chance of its overlap (p_overlap): "
        "results/summary/stability_across_models.parquet.",
        "",
        md_table(header, rows, align=["l", "l", *(["r"] * (len(header) - 2))]),
        "",
    ]
