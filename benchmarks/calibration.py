"""Calibration of the test against random selections (issue 23): false-positive rate and power.

A summary tests each cell (a selection method's masked-model accuracy at one retention level)
against S random selections ("seeds") of the same size, evaluated on the same n test
sequences. This benchmark simulates such cells, with per-sequence correctness, and counts how
often each test calls the method better than random:

- OLD: p = max(p_t, p_boot), exactly as `kneurons.summary.baseline._cell_tests` computes it
  (`t_p_value`; `paired_delta` on `bootstrap_counts` / `bootstrap_accuracy`;
  `combined_p_value`). A NaN p-value (every seed tied and the method beyond them) is no finding.
- NEW: `statistics.random_test` as it is now, fed the resampled means of `resample_counts` with
  the test sequences' classes as strata and their homology clusters as clusters (how the
  summary calls it). Δ = method − mean of the seeds; z = Δ / sqrt(max(s²(1 + 1/S), v_seq))
  against Student's t (p_z; s² the seeds' variance, v_seq the test set's resampling variance
  of Δ); with k seeds tied with or beyond the method p ≥ (k + 1) / (S + 1) (p_rank); and at a
  floor or ceiling (at least `statistics.FLOOR_SHARE` of the seeds share one value) a method
  beyond every seed is judged against the seeds that escape the floor: p = (m + 1) / (S + 1) x
  the t tail of the method among the m escapes (their spread at least the test set's noise;
  (m + 1) / (S + 1) alone with fewer than 2 escapes).
- draft (SUPERSEDED, for reference only): the first version of NEW, recomputed here from the
  same quantities (`draft_test`): variance s²(1 + 1/S) + v_seq (the sum), p = p_z for a method
  beyond every seed (k = 0) and max(p_z, p_rank) otherwise, p_rank where the scale is 0; no
  floor reading.
- t only: OLD's t p-value alone.

Why the floor reading: on a "bimodal floor" most random selections sit on the floor and a few
leave it by many sequences. Often no seed leaves it (with S = 10 and a 20% escape chance, one
cell in nine), so s² is 0 or small while the method, one more random draw, escapes; Δ is then
large against a spread that the seeds never showed, and a normal model (the draft, or NEW's p_z
alone) calls it a finding. NEW reads the null as a point mass at the floor plus an escape
distribution, and asks how likely a random selection is to escape (estimated with a +1, as the
rank p-value does) and then to land beyond the method. A second version held every method
beyond the seeds to 1 / (S + 1) at a floor; it was calibrated too but found nothing at a floor
with 10 seeds (power ≤ 0.006 at d = 0.2) and cost the planted-motif run its key 10% finding
(random seeds at the 0.25 floor, IG at 0.633). The cost of the reading now: at a floor with few
escapes claims stay near (m + 1) / (S + 1) (power 0.59 at d = 0.2, α = 0.05, 10 seeds; 0.94 with
20), and saturated "less" cells lose power against the draft (0.78 against 1.00 at d = 0.2).

Null cells: the method is one more random selection, drawn exactly like the seeds, so every
rejection is a false positive; the printed rate at alpha = 0.05 and 0.01 comes with its
Monte-Carlo 95% Wilson interval, and a test is "calibrated" in a scenario when that interval
contains alpha or lies below it. Planted effects: the method's selection-level mean accuracy is
shifted by d in the direction of the alternative, and the rejection rate is the power.

Simulation (one cell = one simulated test set and S + 1 selections):
- n test sequences in K classes with fixed, possibly unbalanced, shares; optional homology
  clusters of 1-5 sequences of one class.
- normal / saturated cells: per-class recall of each selection on the logit scale around the
  cell's class means (a selection-wide and a per-class random effect), and per-sequence
  correctness by thresholding a latent normal that mixes the sequence's ease (shared by all
  selections; shared within a cluster) with selection-specific noise (also correlated within a
  cluster). Each sequence's marginal probability of being correct is its class recall.
- floored cells: every selection collapses onto one sink class (it predicts the largest class;
  accuracy = that class's share) and with probability 0.2 leaves the floor by a few sequences
  (1 + Poisson(2), the easier ones more likely; whole clusters with clusters on), so most seeds
  tie. The "escapes" and "bimodal" variants let them leave it by more (1 + Poisson(6, 12, 25)):
  near a collapse some random selections keep the model working and most do not.

Run (one process, seeded, deterministic; one BLAS thread):

    python benchmarks/calibration.py            # 2000 simulations per null, 500 per effect,
                                                # n_boot 500: 6 minutes on a busy 2-core box
    python benchmarks/calibration.py --quick    # 400 / 150, n_boot 200: about 1 minute
    python benchmarks/calibration.py --only bimodal --sims 5000 --no-power
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    # One BLAS thread (set before numpy loads): the tests are many small matrix products, which
    # a multi-threaded BLAS makes several times slower on a busy machine. Not when imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from kneurons import statistics as st  # noqa: E402

# the simulated cells live beside this file: found also when it is loaded by path (the tests)
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_sim import (  # noqa: E402, F401  (re-exported: tests use them from here)
    EFFECTS,
    LEVEL,
    SATURATED,
    SEVEN,
    Result,
    Scenario,
    TestSet,
    class_recalls,
    class_sizes,
    effect_scenarios,
    make_test_set,
    new_test,
    null_scenarios,
    old_test,
    run_scenario,
    simulate_cell,
)

ALPHAS = (0.05, 0.01)


# The draft of the new test (SUPERSEDED; not in kneurons.statistics), recomputed from the
# quantities random_test works with, next to the current test.


def recompute(res: Result, variance: str, floor_rule: bool) -> np.ndarray:
    """random_test's p-value from the quantities in `res`. `variance`: "sum" (s²(1 + 1/S) +
    v_seq, the draft) or "max" (max(s²(1 + 1/S), v_seq), NEW); `floor_rule`: where at least
    FLOOR_SHARE of the seeds share one accuracy the rank bound (k + 1) / (S + 1) applies also to
    a method beyond every seed (the second version; NEW now reads a floor as the tied mass plus
    the seeds that escape it, `kneurons.statistics._floor_p_value`, which needs the seeds'
    values and is not recomputed here)."""
    if variance not in ("sum", "max"):
        raise ValueError(f"variance must be 'sum' or 'max', got {variance!r}")
    n_seeds = res.scenario.n_seeds
    sign = 1.0 if res.scenario.alternative == "greater" else -1.0
    p_rank = (res.k + 1) / (n_seeds + 1)
    seeds = res.s2 * (1 + 1 / n_seeds)
    scale = np.sqrt(seeds + res.v_seq if variance == "sum" else np.maximum(seeds, res.v_seq))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_z = np.where(scale > 0, stats.t.sf(sign * res.delta / scale, df=n_seeds - 1), np.nan)
    z_alone = res.k == 0
    if floor_rule:
        z_alone &= ~res.floored
    p = np.where(z_alone, p_z, np.fmax(p_z, p_rank))
    return np.where(scale > 0, p, p_rank)  # nothing varies: the rank p-value


def draft_test(res: Result) -> np.ndarray:
    """The SUPERSEDED first version of the new test: variance s²(1 + 1/S) + v_seq, p = p_z for a
    method beyond every seed and max(p_z, p_rank) otherwise, p_rank where the scale is 0, no
    floor rule. It overclaims on bimodal floors (module docstring)."""
    return recompute(res, "sum", floor_rule=False)


def rejection_rate(p: np.ndarray, alpha: float) -> tuple[int, float]:
    """(count, rate) of p <= alpha; NaN (no test possible) is no rejection."""
    k = int(np.sum(np.nan_to_num(p, nan=1.0) <= alpha))
    return k, k / p.size


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    if k == 0 or k == n:  # the closed form, without rounding
        bound = float(1.0 / (1.0 + n / stats.norm.ppf(0.5 + confidence / 2) ** 2))
        return (0.0, bound) if k == 0 else (1.0 - bound, 1.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def calibrated(k: int, n: int, alpha: float) -> bool:
    """The rate's Monte-Carlo interval contains alpha or lies below it."""
    return wilson(k, n)[0] <= alpha


# ---------------------------------------------------------------------------------------------
# Printing


def _rate(p: np.ndarray, alpha: float, interval: bool = True) -> str:
    k, rate = rejection_rate(p, alpha)
    if not interval:
        return f"{rate:.3f}"
    low, high = wilson(k, p.size)
    return f"{rate:.3f} [{low:.3f},{high:.3f}]"


def describe(s: Scenario) -> str:
    parts = [f"n={s.n}", f"K={len(s.shares)}", f"S={s.n_seeds}", s.alternative]
    if s.clusters:
        parts.append("clust")
    return " ".join(parts)


TESTS = ("OLD", "draft", "NEW")  # with intervals and verdicts; then "t only" (rate alone)
WIDTH = 22


def p_values(res: Result) -> dict[str, np.ndarray]:
    """Each test's p-value per simulated cell."""
    return {"OLD": res.p_old, "draft": draft_test(res), "NEW": res.p_new, "t only": res.p_t}


def verdict(p: np.ndarray, alpha: float) -> bool:
    return calibrated(rejection_rate(p, alpha)[0], p.size, alpha)


def _columns(res: Result, alpha: float, mark: bool) -> list[str]:
    """OLD, draft and NEW with their intervals (and ! where the interval lies above alpha, if
    `mark`), then t alone (rate only)."""
    p = p_values(res)
    cols = []
    for test in TESTS:
        text = _rate(p[test], alpha) + (" !" if mark and not verdict(p[test], alpha) else "")
        cols.append(f"{text:<{WIDTH}}")
    return [*cols, f"{_rate(p['t only'], alpha, False):>6}"]


_TEST_HEAD = " ".join(f"{name:<{WIDTH}}" for name in TESTS) + f" {'t only':>6}"


def print_nulls(results: list[Result]) -> list[tuple[str, float, dict[str, bool]]]:
    """The false-positive table; returns (scenario, alpha, {test: calibrated}) verdicts."""
    print("\nFalse-positive rate under the null (the method is one more random selection)")
    print(
        "OLD = max(p_t, p_boot) (baseline._cell_tests); draft = the SUPERSEDED first version of "
        "the new test (variance sum, no floor rule; `draft_test`);\nNEW = statistics.random_test "
        "(variance max; a floor read as the tied mass plus the seeds that escape it);\n"
        "rate [Monte-Carlo 95% Wilson interval], ! = the "
        "interval lies above alpha\nacc: mean seed accuracy; ties: the method ties a seed; "
        "beyond: the method is strictly beyond every seed; floor: at least "
        f"{st.FLOOR_SHARE:g} of the seeds share one accuracy\n(NEW reads a floor); "
        "t only: OLD's p_t alone"
    )
    head = (
        f"{'scenario':<38} {'setting':<24} {'acc':>5} {'ties':>5} {'beyond':>6} {'floor':>5} "
        f"{'alpha':>5}  " + _TEST_HEAD
    )
    print(head)
    print("-" * len(head))
    verdicts = []
    for res in results:
        s = res.scenario
        p = p_values(res)
        bad = {test: [] for test in TESTS}
        for j, alpha in enumerate(ALPHAS):
            ok = {test: verdict(p[test], alpha) for test in (*TESTS, "t only")}
            verdicts.append((s.name, alpha, ok))
            for test in TESTS:
                bad[test] += [] if ok[test] else [alpha]
            if j == 0:
                lead = (
                    f"{s.name:<38} {describe(s):<24} {res.seeds_mean.mean():>5.2f} "
                    f"{res.tied.mean():>5.2f} {res.beyond_all.mean():>6.3f} "
                    f"{res.floored.mean():>5.2f}"
                )
            else:
                lead = " " * len(lead)
            print(f"{lead} {alpha:>5.2f}  " + " ".join(_columns(res, alpha, mark=True)))
        words = "; ".join(
            f"{test} " + ("calibrated" if not alphas else f"MISCALIBRATED at alpha {alphas}")
            for test, alphas in bad.items()
        )
        print(f"  verdict {s.name}: {words}  ({res.n_sims} sims, {res.seconds:.0f} s)")
    return verdicts


def print_power(results: list[Result]) -> None:
    print("\nPower for planted effects (the method's selection-level mean accuracy shifted by d")
    print("in the direction of the alternative; mean Δ: the realised mean of method - seeds;")
    print("floor: share of cells where NEW reads a floor: tied mass plus escapes)")
    head = (
        f"{'scenario':<30} {'setting':<24} {'mean Δ':>7} {'floor':>5} {'alpha':>5}  " + _TEST_HEAD
    )
    print(head)
    print("-" * len(head))
    for res in results:
        s = res.scenario
        for j, alpha in enumerate(ALPHAS):
            if j == 0:
                lead = (
                    f"{s.name:<30} {describe(s):<24} {res.delta.mean():>7.3f} "
                    f"{res.floored.mean():>5.2f}"
                )
            else:
                lead = " " * len(lead)
            print(f"{lead} {alpha:>5.2f}  " + " ".join(_columns(res, alpha, mark=False)))


def _run(scenario: Scenario, n_sims: int, args) -> Result:
    res = run_scenario(scenario, n_sims, args.n_boot, args.seed)
    print(f"  ran {scenario.name!r}: {n_sims} sims in {res.seconds:.1f} s", file=sys.stderr)
    return res


# ---------------------------------------------------------------------------------------------
# Sections


def null_section(args) -> tuple[list[Result], list[tuple[str, float, dict[str, bool]]]]:
    """The null scenarios (those named like --only): run, printed; their results and verdicts."""
    nulls = [s for s in null_scenarios() if args.only is None or args.only in s.name]
    results = [_run(s, args.sims, args) for s in nulls]
    verdicts = print_nulls(results) if results else []
    return results, verdicts


def power_section(args) -> None:
    """The planted effects (those named like --only): run, printed."""
    effects = [s for s in effect_scenarios() if args.only is None or args.only in s.name]
    power = [_run(s, args.power_sims, args) for s in effects]
    if power:
        print_power(power)


def summary_section(results: list[Result], verdicts, start: float) -> None:
    """Where NEW exceeds alpha, the calibrated pairs per test, and the wall time."""
    total = len(verdicts)
    print()
    by_name = {res.scenario.name: res for res in results}
    for name, alpha, ok in verdicts:
        if not ok["NEW"]:
            k, rate = rejection_rate(by_name[name].p_new, alpha)
            low, high = wilson(k, by_name[name].n_sims)
            print(
                f"SUMMARY: NEW test exceeds alpha={alpha} in scenario '{name}': rate {rate:.3f} "
                f"[{low:.3f},{high:.3f}], {rate - alpha:+.3f} over alpha"
            )
    counts = ", ".join(
        f"{test} {sum(ok[test] for *_, ok in verdicts)}/{total}"
        for test in ("NEW", "draft", "OLD", "t only")
    )
    print(f"SUMMARY: calibrated (scenario, alpha) pairs: {counts}")
    print(f"total wall time {time.perf_counter() - start:.0f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations per null scenario")
    parser.add_argument("--power-sims", type=int, default=500, help="simulations per effect")
    parser.add_argument("--n-boot", type=int, default=500, help="resamples per test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="400 / 150 simulations, n_boot 200")
    parser.add_argument("--only", default=None, help="run the scenarios whose name contains this")
    parser.add_argument("--no-power", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.sims, args.power_sims, args.n_boot = 400, 150, 200
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    print(
        f"calibration: {args.sims} sims per null, {args.power_sims} per effect, "
        f"n_boot {args.n_boot}, seed {args.seed}"
    )
    results, verdicts = null_section(args)
    if not args.no_power:
        power_section(args)
    summary_section(results, verdicts, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
