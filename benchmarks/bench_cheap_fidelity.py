"""Cheap fidelity against the full protocol: how close, how well it ranks, how much faster.

The cheap fidelity is GFN2-xTB's vertical IE at the MMFF geometry (no xTB relaxation). On a seeded
random sample of the QM9 molecules the shipped ground-truth table covers (the table holds the full
protocol's values, with the engine named in it), it prints the cheap values' MAE, bias, Pearson
and Spearman correlations, and how many of the sample's true top 10 % are also in the cheap top
10 %. Then it times both protocols side by side on a seeded sub-sample, single-threaded,
alternating molecule by molecule so a busy machine slows both alike.

Usage: python benchmarks/bench_cheap_fidelity.py [--sample 500] [--seed 0] [--speed-sample 40]
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial

import numpy as np
import pandas as pd


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _cheap(smiles: str, engine: str) -> float:
    from course_utils.chemistry import ChemistryError, compute_vertical

    try:
        return compute_vertical(smiles, engine=engine, threads=1, fidelity="cheap")
    except ChemistryError:
        return math.nan


def top_fraction_agreement(truth: pd.Series, guess: pd.Series, fraction: float = 0.1) -> float:
    """Share of the true top ``fraction`` (highest IE) that is also in the guessed top fraction."""
    k = max(1, math.ceil(fraction * len(truth)))
    return len(set(truth.nlargest(k).index) & set(guess.nlargest(k).index)) / k


def accuracy(truth: pd.Series, cheap: pd.Series) -> dict[str, float]:
    """How the cheap values (NaN where they failed) compare with the full protocol's."""
    ok = cheap.notna()
    t, c = truth[ok], cheap[ok]
    error = (c - t).abs()
    return {"n": int(ok.sum()), "failed": int((~ok).sum()), "mae": float(error.mean()),
            "bias": float((c - t).mean()), "max_abs": float(error.max()), "worst": error.idxmax(),
            "within_0.2": float((error <= 0.2).mean()),
            "pearson": float(t.corr(c)), "spearman": float(t.corr(c, method="spearman")),
            "top10": top_fraction_agreement(t, c)}


def speed(smiles: list[str], engine: str, truth: pd.Series) -> dict[str, float]:
    """Mean seconds per molecule of each protocol, timed alternately on the same molecules."""
    from course_utils.chemistry import compute_vertical

    compute_vertical("O", engine=engine, threads=1)  # imports and engine set-up are not timed
    compute_vertical("O", engine=engine, threads=1, fidelity="cheap")
    full_s, cheap_s, drift = [], [], []
    for s in smiles:
        seconds, value = _timed(partial(compute_vertical, s, engine=engine, threads=1))
        full_s.append(seconds)
        drift.append(abs(value - truth[s]))
        cheap_s.append(_timed(partial(_cheap, s, engine))[0])
    return {"full": float(np.mean(full_s)), "cheap": float(np.mean(cheap_s)),
            "ratio": float(np.sum(full_s) / np.sum(cheap_s)), "table_drift": float(max(drift))}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=500, help="molecules compared (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--speed-sample", type=int, default=40,
                        help="molecules timed with both protocols (default 40)")
    args = parser.parse_args(argv)

    from course_utils.ground_truth.shipped import load_ground_truth

    table = load_ground_truth("qm9")
    coverage = table.attrs["coverage"]
    ok = table[table["status"] == "ok"]
    engine = str(ok["engine"].mode().iloc[0])
    ok = ok[ok["engine"] == engine]
    sample = ok.sample(n=min(args.sample, len(ok)), random_state=args.seed)
    truth = pd.Series(sample["ie"].to_numpy(), index=sample["smiles"].to_numpy())

    wall, values = _timed(lambda: [_cheap(s, engine) for s in truth.index])
    cheap = pd.Series(values, index=truth.index)
    acc = accuracy(truth, cheap)
    timed = list(truth.sample(n=min(args.speed_sample, len(truth)), random_state=args.seed).index)
    fast = speed(timed, engine, truth)

    print(f"{coverage}; sampled {len(truth)} of its {len(ok):,} successful molecules "
          f"(seed {args.seed}), engine {engine}, 1 thread")
    print("cheap = GFN2-xTB vertical IE at the MMFF geometry; full = the table's protocol "
          "(xTB relaxation first)")
    print(f"  molecules compared           {acc['n']:>8}   (cheap failed on {acc['failed']})")
    print(f"  MAE, cheap vs full           {acc['mae']:8.3f} eV")
    print(f"  mean error (cheap - full)    {acc['bias']:+8.3f} eV")
    print(f"  within 0.2 eV of full        {acc['within_0.2']:8.1%}   (worst: {acc['max_abs']:.3f} eV,"
          f" {acc['worst']})")
    print(f"  Pearson r                    {acc['pearson']:8.3f}")
    print(f"  Spearman rho                 {acc['spearman']:8.3f}")
    print(f"  true top 10 % in cheap top 10 % {acc['top10']:5.1%}   "
          f"(of {max(1, math.ceil(0.1 * acc['n']))} molecules)")
    print(f"  cheap, whole sample          {wall / len(truth):8.3f} s per molecule")
    print(f"speed, same {len(timed)} molecules, alternating (seed {args.seed}):")
    print(f"  full protocol                {fast['full']:8.3f} s per molecule")
    print(f"  cheap fidelity               {fast['cheap']:8.3f} s per molecule")
    print(f"  full / cheap                 {fast['ratio']:8.1f}x")
    print(f"  full re-run vs table         {fast['table_drift']:8.4f} eV max difference")
    return {**acc, **{f"speed_{k}": v for k, v in fast.items()}}


if __name__ == "__main__":
    main()
