"""Adaptive refinement of the IG path, and the completeness gaps of integrated gradients.

`refine_panels`: a first pass of every (example, module) over [0, 1], then the panels holding the
completeness gap of the pairs above their tolerance (`kneurons.scoring.quadrature`) are halved,
round after round (adaptive composite quadrature over `kneurons.scoring.integrals.panel_integrals`),
until each pair meets its tolerance or its node budget. `_gap_frame` records the gap of every
pair (the `gaps` of a `ScoreResult`); `gap_summary` sums them up per module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kneurons.scoring.integrals import WHOLE, _whole_path
from kneurons.scoring.quadrature import completeness_tolerance


@dataclass
class Refinement:
    """What `refine_panels` computed: per pair its values (the sum of its panels') and F(0),
    F(1) per example, nodes and panels per pair, the pairs still above tolerance, (pair, round)
    refinements and rounds."""

    values: dict
    f0: dict
    f1: dict
    nodes: dict = field(default_factory=dict)
    panels: dict = field(default_factory=dict)
    above: list = field(default_factory=list)
    refined: int = 0
    rounds: int = 0


def refine_panels(integrate, pairs, steps, rtol, atol, max_steps, label) -> Refinement:
    """The adaptive rule (`integrated_gradients_scores`): a first pass of every pair over
    [0, 1] with `steps` nodes, `integrate(tasks, progress_label)` being `panel_integrals` bound
    to the rule (values of any array shape: the gap uses their sum); then, for the pairs above
    atol + rtol |F(1) - F(0)|, halve the panels that hold the gap, until each pair meets its
    tolerance or reaches `max_steps` nodes. rtol None: the first pass only, nothing judged."""
    first = integrate([(pair, WHOLE) for pair in pairs], label)
    values, f0 = _whole_path(first)
    f1 = first.f1
    parts = {pair: [_Part(*WHOLE, values[pair], f0[pair], f1[pair[0]])] for pair in pairs}
    pending = [] if rtol is None else _above(pairs, values, f0, f1, rtol, atol)
    out = Refinement(values, f0, f1)
    while pending:
        chosen = {}
        for pair in pending:
            tolerance = completeness_tolerance(f1[pair[0]] - f0[pair], rtol, atol)
            budget = (max_steps - steps * len(parts[pair])) // steps
            split = _to_split(parts[pair], tolerance, budget)
            if split:
                chosen[pair] = split
        if not chosen:
            break
        out.rounds += 1
        out.refined += len(chosen)
        tasks = [
            (pair, half)
            for pair, split in chosen.items()
            for part in split
            for half in ((part.lo, part.mid), (part.mid, part.hi))
        ]
        n = len(tasks) // 2
        more = integrate(tasks, f"{label} (refinement {out.rounds}: {n} panels halved)")
        for pair, split in chosen.items():
            for part in split:
                left = more.values[(pair, (part.lo, part.mid))]
                right = more.values[(pair, (part.mid, part.hi))]
                f_mid = more.f0[(pair, (part.mid, part.hi))]
                at = parts[pair].index(part)
                parts[pair][at : at + 1] = [
                    _Part(part.lo, part.mid, left, part.f_lo, f_mid),
                    _Part(part.mid, part.hi, right, f_mid, part.f_hi),
                ]
            values[pair] = np.sum([part.values for part in parts[pair]], axis=0)
        pending = _above(pending, values, f0, f1, rtol, atol)
    out.nodes = {pair: steps * len(parts[pair]) for pair in pairs}
    out.panels = {pair: len(parts[pair]) for pair in pairs}
    out.above = pending
    return out


@dataclass(eq=False)
class _Part:
    """One panel [lo, hi] of an (example, module)'s path: its attributions and F at both ends."""

    lo: float
    hi: float
    values: np.ndarray
    f_lo: float
    f_hi: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.lo + self.hi)

    @property
    def gap(self) -> float:
        """Completeness on the panel alone: sum of its attributions - (F(hi) - F(lo))."""
        return float(self.values.sum()) - (self.f_hi - self.f_lo)


def _to_split(parts: list[_Part], tolerance: float, budget: int) -> list[_Part]:
    """The panels to halve: those whose |gap| exceeds their share of the tolerance (tolerance x
    width; the shares add up to the tolerance, so while the total gap exceeds it at least one
    panel does), largest |gap| first, at most `budget` of them."""
    if budget < 1:
        return []
    over = [p for p in parts if abs(p.gap) > tolerance * (p.hi - p.lo)]
    over = over or parts  # rounding can hide the offender: then halve the worst anyway
    return sorted(over, key=lambda p: -abs(p.gap))[:budget]


def _above(pairs, ig, f0, f1, rtol: float, atol: float) -> list:
    """The (example, module) pairs whose |completeness gap| exceeds their tolerance."""
    out = []
    for e, m in pairs:
        delta = f1[e] - f0[(e, m)]
        if abs(float(ig[(e, m)].sum()) - delta) > completeness_tolerance(delta, rtol, atol):
            out.append((e, m))
    return out


def _gap_frame(pairs, labels, ig, f0, f1, steps: dict, panels: dict, rtol, atol) -> pd.DataFrame:
    rows = []
    for example, (layer_type, layer) in pairs:
        pair = (example, (layer_type, layer))
        sum_ig = float(ig[pair].sum())
        delta = f1[example] - f0[pair]
        rows.append(
            {"example": example, "label": int(labels[example]), "layer_type": layer_type,
             "layer": layer, "steps": steps[pair], "panels": panels[pair], "f0": f0[pair],
             "f1": f1[example], "sum_ig": sum_ig, "gap": sum_ig - delta}
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    if rtol is not None and not frame.empty:
        tolerance = completeness_tolerance(frame["f1"] - frame["f0"], rtol, atol)
        frame["tolerance"] = tolerance
        frame["above_tolerance"] = frame["gap"].abs() > tolerance
    return frame


def gap_summary(gaps: pd.DataFrame) -> dict:
    """Completeness gap summary for one module: mean, mean |gap|, max |gap|, mean |F1-F0|."""
    delta = (gaps["f1"] - gaps["f0"]).abs()
    summary = {
        "n_examples": int(len(gaps)),
        "gap_mean": float(gaps["gap"].mean()),
        "gap_mean_abs": float(gaps["gap"].abs().mean()),
        "gap_max_abs": float(gaps["gap"].abs().max()),
        "delta_mean_abs": float(delta.mean()),
    }
    if "steps" in gaps:
        summary["steps_max"] = int(gaps["steps"].max())
        summary["n_more_steps"] = int((gaps["steps"] > gaps["steps"].min()).sum())
    if "above_tolerance" in gaps:
        rel = gaps["gap"].abs() / delta.where(delta > 0)
        summary["rel_gap_max"] = float(rel.max()) if rel.notna().any() else float("nan")
        summary["n_above_tolerance"] = int(gaps["above_tolerance"].sum())
    return summary
