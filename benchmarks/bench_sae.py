"""Benchmark of SAE training (kneurons.sae.train): activations per second on the 8M shape, against
the arithmetic floor, and what the SAEs add to a recorded run.

    python benchmarks/bench_sae.py                       # both sites, the synthetic_sae settings
    python benchmarks/bench_sae.py --tokens 20000 --epochs 1
    python benchmarks/bench_sae.py --results results/synthetic-c1090a20   # + a run's job times

Setup: activations of the ESM-2 8M shape's two SAE sites, width 320 (resid) and 1280 (ffn),
drawn as sparse sums of random directions (the throughput does not depend on the values), SAEs
of `--expansion-resid` / `--expansion-ffn` x width latents with k `--k`, Adam, minibatches of
`--batch-size`, `--threads` torch threads, fp32 on CPU, one process. Measured per site: training
activations per second (every epoch's minibatches, the auxiliary loss and the decoder
normalisation included; the validation pass excluded), and the floor: the dense matmuls one
activation needs (encoder forward, decoder forward, and their two backward products each:
6 x width x latents multiply-adds) at the matmul rate measured here on a (batch x width) @
(width x latents) product; ratio = measured / floor rate.

With `--results DIR` (a run folder, results/<dataset>): the job seconds that run's benchmark
files record for the SAE rules (train_sae, sae_fidelity, match_concepts) and for the scoring
jobs, beside the total of every job, i.e. what the SAEs added to the planted-motif run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from kneurons.sae.train import train_sae


def sparse_activations(n: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    atoms = torch.randn(4 * width, width, generator=gen)
    codes = (torch.rand(n, 4 * width, generator=gen) > 0.99).float()
    return codes @ atoms


def matmul_rate(batch: int, width: int, latents: int, repeats: int = 5) -> float:
    """Multiply-adds per second of a (batch x width) @ (width x latents) product (best of n)."""
    a, b = torch.randn(batch, width), torch.randn(width, latents)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return batch * width * latents / best


def site_row(name: str, width: int, expansion: float, args) -> dict:
    train = sparse_activations(args.tokens, width, seed=0)
    val = sparse_activations(max(1000, args.tokens // 10), width, seed=1)
    start = time.perf_counter()
    trained = train_sae(
        train, val, expansion=expansion, k=args.k, epochs=args.epochs,
        batch_size=args.batch_size, patience=args.epochs, seed=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    latents = trained.sae.n_latents
    rate = matmul_rate(args.batch_size, width, latents)
    floor = rate / (6 * width * latents)  # activations per second if only the matmuls ran
    measured = trained.tokens_seen / trained.seconds
    return {
        "site": name,
        "width": width,
        "latents": latents,
        "k": args.k,
        "activations": trained.tokens_seen,
        "seconds": round(seconds, 2),
        "activations_per_s": round(measured),
        "floor_per_s": round(floor),
        "measured / floor": round(measured / floor, 2),
        "matmul GFLOP/s": round(2 * rate / 1e9, 1),
    }


def run_costs(folder: Path) -> pd.DataFrame:
    """Seconds per rule from a run folder's benchmark files (Snakemake's `benchmark:` TSVs)."""
    rows = []
    for path in (folder / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(folder / "benchmarks").parts[0].removesuffix(".tsv")
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[0])
        rows.append({"rule": rule, "seconds": seconds})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.groupby("rule")["seconds"].agg(["count", "sum"]).sort_values("sum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--expansion-resid", type=float, default=4)
    parser.add_argument("--expansion-ffn", type=float, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"SAE training, 8M shape, {args.tokens} activations x {args.epochs} epochs, "
          f"{args.threads} threads, fp32 CPU")  # fmt: skip
    rows = [
        site_row("resid", 320, args.expansion_resid, args),
        site_row("ffn", 1280, args.expansion_ffn, args),
    ]
    print(pd.DataFrame(rows).to_string(index=False))
    if args.results is not None:
        costs = run_costs(args.results)
        if costs.empty:
            print(f"\n{args.results}: no benchmark files")
            return
        total = costs["sum"].sum()
        sae = costs.loc[costs.index.isin(["train_sae", "sae_fidelity", "match_concepts"]), "sum"]
        print(f"\njob seconds by rule in {args.results} (all jobs: {total:.0f} s):")
        print(costs.round(1).to_string())
        print(f"SAE rules (train_sae, sae_fidelity, match_concepts): {sae.sum():.0f} s, "
              f"{sae.sum() / total:.1%} of all job time")  # fmt: skip


if __name__ == "__main__":
    main()
