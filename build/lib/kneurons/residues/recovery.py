"""How well residue maps find known sites: AUROC of site residues, tables and markdown (the plot:
`kneurons.residues.figures`).

Sites are planted motifs (synthetic data; kinds `motif`, `decoy`) or annotated active/binding
sites of a UniProt table (`active_site`, `binding_site`; `kneurons.data.sites`); a residue map
(`kneurons.residues.maps`) has one row per (accession, position) and the columns of
`MAP_VALUES`. A map recovers a site kind when its site residues outrank the other residues of
the same sequence: AUROC 1, chance 0.5. Because a residue map follows the model's own focus
through whatever units are kept, random selections already score high on planted motifs; a
contrast map (a selection's map minus the mean map of the random selections of its size,
`contrast_maps`) keeps what the selection adds, and its AUROC is set against the random seeds'
own (leave-one-out) contrast AUROC.
Imports no torch (this is the site_recovery job, separate from the residue maps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.vocab import RANDOM, TARGET_ORDER, is_random, order_of, parse_method

MAP_VALUES = ("activation", "ig")  # the value columns of a residue map
SITE_KINDS = ("motif", "active_site", "binding_site", "decoy", "distractor")  # display order
NULL_SITE_KINDS = ("decoy",)  # planted in every class, so no label: AUROC expected near 0.5
MAP_KEY = ["accession", "position"]  # one residue of a residue map
PLAIN, CONTRAST = "plain", "contrast"  # `map_kind`: own map; minus the random selections' mean
MAP_KINDS = (PLAIN, CONTRAST)
MIN_CONTRAST_SEEDS = 2  # leave-one-out needs another seed to contrast each random seed with
LARGE_SCALE = 2.0  # scale_ratio from which a contrast is mostly the selection's own map


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


def _selection(frame: pd.DataFrame) -> tuple[str, str, float]:
    """(method, layer type, retention) of a residue map (one selection per file)."""
    head = frame.iloc[0]
    return str(head["method"]), str(head["layer_type"]), float(head["retention"])


def align_maps(maps: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    """The maps of one (layer type, retention), cut to the (accession, position) rows that every
    one of them holds and put in one order, so that their value columns line up residue by
    residue. Maps of different test sequences cannot be compared that way: a ValueError names
    the method whose sequences differ from the first map's."""
    first, _, _ = _selection(maps[0])
    reference = set(maps[0]["accession"])
    indexed = []
    for frame in maps:
        method, layer_type, retention = _selection(frame)
        accessions = set(frame["accession"])
        if accessions != reference:
            missing, extra = sorted(reference - accessions), sorted(accessions - reference)
            raise ValueError(
                f"residue map of {method} ({layer_type}, keep {retention:g}%) covers other "
                f"sequences than that of {first}: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(extra)} extra (e.g. {extra[:3]}); maps of one layer type and retention "
                "must map the same sequences to be compared"
            )
        one = frame.set_index(MAP_KEY)
        if not one.index.is_unique:
            raise ValueError(f"residue map of {method} ({layer_type}) repeats residues")
        indexed.append(one)
    common = indexed[0].index
    for one in indexed[1:]:
        common = common.intersection(one.index)
    common = common.sort_values()
    return [one.loc[common].reset_index() for one in indexed]


def scale_by_sequence(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each value column divided, per sequence, by its mean |value| over the
    sequence's residues (a sequence of zeros stays zero): maps of different size, same shape."""
    out = frame.copy()
    for value in MAP_VALUES:
        size = out[value].abs().groupby(out["accession"]).transform("mean").to_numpy()
        out[value] = np.divide(
            out[value].to_numpy(dtype=np.float64),
            size,
            out=np.zeros(len(out)),
            where=size > 0,
        )
    return out


def contrast_maps(maps: Sequence[pd.DataFrame], scale: bool = False) -> list[pd.DataFrame]:
    """Contrast maps: each selection's map minus the mean map of the random selections of the
    same size (same layer type and retention), per value column, over the residues all of them
    map (`align_maps`). A random seed's contrast is its map minus the mean of the other seeds'
    maps (leave-one-out), so the seeds give the spread that a selection's contrast meets by
    chance. Needs at least `MIN_CONTRAST_SEEDS` random seeds; a (layer type, retention) with
    fewer gets no contrast maps.

    Why: the IG map of any selection follows what the model attends to through whatever units
    are kept, so a random 10% of the units already scores high on the planted motifs; the
    contrast keeps what the selection adds to that. (A random seed's baseline has one seed
    fewer than a method's, so its contrast is slightly noisier: a conservative spread.)
    Caveat: a map many times the random maps' size (IG through units that keep the model's
    output, beside random units that do not) has a contrast close to its own plain map;
    `scale_ratio` measures this, and `scale=True` divides every map by its per-sequence mean
    |value| first (`scale_by_sequence`), so that only the maps' shapes are compared.

    Returns the contrast maps in the input order, with the columns of the maps and, per value
    column, `{value}_baseline`: the random mean map that was subtracted."""
    groups: dict[tuple[str, float], list[int]] = {}
    for i, frame in enumerate(maps):
        if not frame.empty:
            _, layer_type, retention = _selection(frame)
            groups.setdefault((layer_type, retention), []).append(i)
    out: dict[int, pd.DataFrame] = {}
    for members in groups.values():
        random = np.array([is_random(_selection(maps[i])[0]) for i in members])
        n_random = int(random.sum())
        if n_random < MIN_CONTRAST_SEEDS:
            continue
        aligned = align_maps([maps[i] for i in members])
        if scale:
            aligned = [scale_by_sequence(frame) for frame in aligned]
        contrasts = [frame.copy() for frame in aligned]
        for value in MAP_VALUES:
            stack = np.stack([frame[value].to_numpy(dtype=np.float64) for frame in aligned])
            total = stack[random].sum(axis=0)
            for k, frame in enumerate(contrasts):
                if random[k]:
                    baseline = (total - stack[k]) / (n_random - 1)
                else:
                    baseline = total / n_random
                frame[value] = stack[k] - baseline
                frame[f"{value}_baseline"] = baseline
        out.update(zip(members, contrasts, strict=True))
    return [out[i] for i in sorted(out)]


def scale_ratio(contrast: pd.DataFrame, value: str) -> float:
    """How many times the random mean map's size the selection's own map is: the median over
    sequences of mean |map| / mean |random mean map| (a contrast map of `contrast_maps`). Near
    1 the contrast weighs both alike; far above 1 the contrast is mostly the selection's map."""
    baseline = contrast[f"{value}_baseline"].abs()
    own = (contrast[value] + contrast[f"{value}_baseline"]).abs()
    by = contrast["accession"]
    ratio = own.groupby(by).mean() / baseline.groupby(by).mean()
    ratio = ratio.replace([np.inf, -np.inf], np.nan).dropna()
    return float(ratio.median()) if len(ratio) else float("nan")


def _recovery_rows(frame: pd.DataFrame, sites: pd.DataFrame, map_kind: str) -> list[dict]:
    method, layer_type, retention = _selection(frame)
    family, seed = parse_method(method)
    rows = []
    for kind, kind_sites in sites.groupby("kind"):
        for value in MAP_VALUES:
            rows.append(
                {
                    "method": method,
                    "method_family": family,
                    "seed": seed,
                    "layer_type": layer_type,
                    "retention": retention,
                    "site_kind": kind,
                    "map": value,
                    "map_kind": map_kind,
                    **site_recovery(frame, kind_sites, value),
                    "scale_ratio": (
                        scale_ratio(frame, value) if map_kind == CONTRAST else float("nan")
                    ),
                }
            )
    return rows


def recovery_table(
    maps: Sequence[pd.DataFrame], sites: pd.DataFrame, contrast_scale: bool = False
) -> pd.DataFrame:
    """One row per (selection, site kind, map value, map kind) with the AUROC of site residues.

    `map_kind` is "plain" for the selection's own residue map and "contrast" for its map minus
    the random selections' mean map (`contrast_maps`, with `scale=contrast_scale`; only where
    there are at least `MIN_CONTRAST_SEEDS` random seeds); contrast rows also give
    `scale_ratio` (NaN on plain rows). IG is used signed: a residue that raises the true-class
    probability ranks high.
    """
    maps = [frame for frame in maps if not frame.empty]
    rows = [row for frame in maps for row in _recovery_rows(frame, sites, PLAIN)]
    if rows:
        for frame in contrast_maps(maps, scale=contrast_scale):
            rows += _recovery_rows(frame, sites, CONTRAST)
    table = pd.DataFrame(rows)
    if len(table):
        table["seed"] = table["seed"].astype("Int64")
    return table


def with_map_kind(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with a `map_kind` column: tables written before contrast maps hold plain rows."""
    if "map_kind" in table.columns:
        return table
    return table.assign(map_kind=PLAIN)


def plain_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the selections' own residue maps (what consumers of plain AUROC read)."""
    table = with_map_kind(table)
    return table[table["map_kind"] == PLAIN]


SPREAD_KEY = ["map_kind", "site_kind", "map", "layer_type", "retention"]


def random_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per (map kind, site kind, map, layer type, retention): the random seeds' AUROC as
    `random_mean`, `random_std` (0 for one seed), `random_min`, `random_max`, `n_seeds`."""
    table = with_map_kind(table)
    rand = table[(table["method_family"] == RANDOM) & table["auroc_mean"].notna()]
    columns = [*SPREAD_KEY, "random_mean", "random_std", "random_min", "random_max", "n_seeds"]
    if rand.empty:
        empty = {c: pd.Series(dtype=table[c].dtype) for c in SPREAD_KEY}
        return pd.DataFrame(empty | {c: pd.Series(dtype=float) for c in columns[5:]})
    g = rand.groupby(SPREAD_KEY, sort=False)["auroc_mean"]
    out = g.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out.columns = columns
    out["random_std"] = out["random_std"].fillna(0.0)
    return out


def contrast_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Each method's contrast AUROC beside the random seeds' contrast spread, per (site kind,
    map, layer type, retention), with `verdict`: "above" (over the highest seed's), "below"
    (under the lowest), "within", or "" when there is no spread to compare with. With n seeds,
    a selection no better than random lies above all of them 1 time in n + 1. `scale_ratio`
    comes along: far above 1 (`LARGE_SCALE`), "above" may only say that the selection's map is
    larger than the random ones (see `contrast_maps`)."""
    table = with_map_kind(table)
    mine = table[(table["map_kind"] == CONTRAST) & (table["method_family"] != RANDOM)]
    if "scale_ratio" not in mine.columns:
        mine = mine.assign(scale_ratio=np.nan)
    keep = ["method_family", "method", *SPREAD_KEY, "auroc_mean", "scale_ratio"]
    out = mine[keep].merge(random_spread(table), on=SPREAD_KEY, how="left")
    verdict = np.where(
        out["auroc_mean"] > out["random_max"],
        "above",
        np.where(out["auroc_mean"] < out["random_min"], "below", "within"),
    )
    missing = out["auroc_mean"].isna() | out["random_max"].isna()
    out["verdict"] = np.where(missing, "", verdict)
    return out.reset_index(drop=True)


def scale_note(ratio: float) -> str:
    """ ", map 27× the random mean's size" where a contrast is mostly the selection's own map."""
    if pd.isna(ratio) or ratio < LARGE_SCALE:
        return ""
    return f", map {ratio:.0f}× the random mean's size"


def verdict_words(row) -> str:
    """A method's contrast AUROC against the random seeds' spread, in words."""
    value = f"{row['auroc_mean']:.3f}" if pd.notna(row["auroc_mean"]) else "no AUROC"
    n = int(row["n_seeds"]) if pd.notna(row["n_seeds"]) else 0
    note = scale_note(row.get("scale_ratio", np.nan))
    if row["verdict"] == "above":
        return f"{value}, above all {n} random seeds (max {row['random_max']:.3f}{note})"
    if row["verdict"] == "below":
        return f"{value}, below all {n} random seeds (min {row['random_min']:.3f}{note})"
    if row["verdict"] == "within":
        note = f" ({note[2:]})" if note else ""
        return (
            f"{value}, within the {n} random seeds' range "
            f"[{row['random_min']:.3f}, {row['random_max']:.3f}]{note}"
        )
    return f"{value}, no random spread to compare with"


def missing_contrasts(table: pd.DataFrame) -> list[str]:
    """'layer type r%' of the selections without contrast rows for want of random seeds, with
    how many there are."""
    table = with_map_kind(table)
    plain = table[table["map_kind"] == PLAIN]
    contrast = table[table["map_kind"] == CONTRAST]
    have = set(zip(contrast["layer_type"], contrast["retention"], strict=True))
    out = []
    for (layer_type, retention), rows in plain.groupby(["layer_type", "retention"]):
        if (layer_type, retention) in have:
            continue
        n = rows.loc[rows["method_family"] == RANDOM, "method"].nunique()
        if n >= MIN_CONTRAST_SEEDS:
            continue  # a table written before contrast maps: nothing to explain
        out.append(f"{layer_type} {float(retention):g}% ({n} random seed{'s' * (n != 1)})")
    return out


def spread_cell(values: pd.Series) -> str:
    """Random seeds' AUROC as mean ± std [min, max] (std 0 for one seed)."""
    values = values.dropna()
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {std:.3f} [{values.min():.3f}, {values.max():.3f}]"


def _column(table: pd.DataFrame) -> pd.Series:
    """'key 10%': the (layer type, retention) of each row, as the markdown's column names."""
    pairs = zip(table["layer_type"], table["retention"], strict=True)
    names = [f"{layer_type} {float(r):g}%" for layer_type, r in pairs]
    return pd.Series(names, index=table.index, dtype=object)


def _verdict_line(family: str, rows: pd.DataFrame) -> str:
    """One method's contrast AUROC against the random seeds' spread, cell by cell, in words."""
    above = [
        f"{r.column} ({r.auroc_mean:.3f} > {r.random_max:.3f}{scale_note(r.scale_ratio)})"
        for r in rows.itertuples()
        if r.verdict == "above"
    ]
    other = [
        f"{r.column} ({r.auroc_mean:.3f} ≤ {r.random_max:.3f}{scale_note(r.scale_ratio)})"
        for r in rows.itertuples()
        if r.verdict in ("within", "below")
    ]
    parts = [f"above it at {', '.join(above)}" if above else "above it nowhere"]
    if other:
        parts.append(f"not above it at {', '.join(other)}")
    return f"- **{family}** contrast AUROC vs the random seeds' spread: " + "; ".join(parts) + "."


def completeness_note(maps: Sequence[pd.DataFrame], metadata: Sequence[dict]) -> list[str]:
    """Markdown lines naming the maps whose IG integrals (sequence x module) missed the
    accuracy policy's tolerance (`kneurons.residues.maps.ig_maps`; metadata of each map file), or
    saying that none did; nothing for maps written without the record."""
    judged, missed = 0, []
    for frame, meta in zip(maps, metadata, strict=True):
        record = meta.get("completeness")
        if not record:
            continue
        judged += 1
        if record["n_above_tolerance"]:
            method, layer_type, retention = _selection(frame)
            missed.append(
                f"{method} {layer_type} {retention:g}%: {record['n_above_tolerance']} of "
                f"{record['n_integrals']} (largest |gap| / |F(1) − F(0)| "
                f"{record['rel_gap_max']:.2g})"
            )
    if not judged:
        return []
    if not missed:
        return [
            f"IG maps: every (sequence, module) integral of the {judged} maps meets the "
            "completeness tolerance (atol + rtol |F(1) − F(0)|, refined where needed).",
            "",
        ]
    return [
        "**IG maps with integrals above the completeness tolerance** (their IG values for those "
        "sequences are approximate; raise `residues.max_steps`): " + "; ".join(missed) + ".",
        "",
    ]


def recovery_markdown(table: pd.DataFrame, model: str) -> str:
    """Per site kind and map: methods x (layer type, retention) AUROC of the plain and the
    contrast maps, random as mean ± std [min, max] over seeds; then, per method, whether its
    contrast AUROC lies above all random seeds' contrast AUROC."""
    lines = [f"# Site recovery: {model}", ""]
    if table.empty:
        return "\n".join([*lines, "No site annotations: nothing to recover.", ""])
    table = with_map_kind(table)
    lines += [
        "AUROC with which each residue map ranks site residues above the other residues of the "
        "same sequence (mean over sequences; 0.5 = chance; random: mean ± std [min, max] over "
        "seeds). **plain**: the selection's own map. A plain map follows the model's own focus "
        "through whatever units are kept, so random selections can already score high on the "
        "motifs; plain AUROC alone does not tell a method from random. **contrast**: the "
        "selection's map minus the mean map of the random selections of the same size (layer "
        "type, retention); each random seed's contrast is taken against the other seeds' mean, "
        "which gives the spread a selection reaches by chance. A method that finds the knowledge "
        "neurons lies above every random seed's contrast AUROC on the motifs (or annotated "
        "sites); with n seeds a random selection does that 1 time in n + 1. Decoys, planted in "
        "every class, carry no label: their contrast AUROC should stay near 0.5. Where a "
        f"selection's map is {LARGE_SCALE:g}× or more the random mean map's size (noted as "
        "'map k× the random mean's size': IG through units that keep the model's output, beside "
        "random units that lose it), its contrast is close to its plain map, and lying above "
        "the random spread may say no more than that.",
        "",
    ]
    missing = missing_contrasts(table)
    if missing:
        lines += [
            f"No contrast maps for {', '.join(missing)}: a contrast needs at least "
            f"{MIN_CONTRAST_SEEDS} random seeds of the same layer type and retention.",
            "",
        ]
    table = table.assign(column=_column(table))
    columns = [
        f"{layer_type} {float(r):g}%"
        for layer_type in order_of(table["layer_type"], TARGET_ORDER)
        for r in sorted(table.loc[table["layer_type"] == layer_type, "retention"].unique())[::-1]
    ]
    verdicts = contrast_verdicts(table)
    verdicts = verdicts.assign(column=_column(verdicts))
    for (kind, value), part in table.groupby(["site_kind", "map"], sort=True):
        lines += [f"## {kind}: {value} map", ""]
        lines.append("| method | map | " + " | ".join(columns) + " |")
        lines.append("| :--- | :--- |" + " ---: |" * len(columns))
        for family in family_order(part["method_family"].unique()):
            for map_kind in MAP_KINDS:
                rows = part[(part["method_family"] == family) & (part["map_kind"] == map_kind)]
                if rows.empty:
                    continue
                cells = []
                for column in columns:
                    values = rows.loc[rows["column"] == column, "auroc_mean"].dropna()
                    if values.empty:
                        cells.append("—")
                    elif family == RANDOM:
                        cells.append(spread_cell(values))
                    else:
                        cells.append(f"{values.iloc[0]:.3f}")
                lines.append(f"| {family} | {map_kind} | " + " | ".join(cells) + " |")
        lines.append("")
        mine = verdicts[(verdicts["site_kind"] == kind) & (verdicts["map"] == value)]
        mine = mine[mine["verdict"] != ""]
        if mine.empty:
            continue
        if kind in NULL_SITE_KINDS:
            lines += [
                f"{kind.capitalize()}s carry no label: a method's contrast AUROC should stay near "
                "0.5, not above the random seeds' spread (above it, the selection acts on a "
                "label-free pattern).",
                "",
            ]
        else:
            lines += [
                f"Above the random seeds' spread, the selection itself points at the {kind} "
                "residues, beyond what any selection of its size shows.",
                "",
            ]
        order = {c: i for i, c in enumerate(columns)}
        for family in family_order(mine["method_family"].unique()):
            rows = mine[mine["method_family"] == family]
            rows = rows.iloc[np.argsort([order.get(c, len(order)) for c in rows["column"]])]
            lines.append(_verdict_line(family, rows))
        lines.append("")
    return "\n".join(lines)


def family_order(families) -> list[str]:
    """Method families alphabetically, the random baseline last."""
    families = set(families)
    return sorted(f for f in families if f != RANDOM) + ([RANDOM] if RANDOM in families else [])
