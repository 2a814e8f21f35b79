"""Record what a fixed set of campaigns does, to show that a refactoring changes no behaviour.

    python scripts/record_runs.py --out runs.json [--real]        # record
    python scripts/record_runs.py --compare runs.json [--real]    # run again, report differences

Each campaign's record is what it decided and what it got: every simulation (molecule, batch,
status, IE to 1e-6 eV) in order (a real run's sorted within each batch, as its results
arrive in any order), every iteration (training size, new successes, model version),
and the final status and best molecule. Replays (instant, deterministic) cover both modes,
every acquisition, retraining, waves, trust checks and stop rules; ``--real`` adds batch runs
with real xTB through Parsl (batch mode: its picks do not depend on when results arrive).
Timings are left out on purpose: they are the only thing allowed to differ. Each record also
keeps the run's last message and ``stopping`` block, and for the runs in ``FIGURE_RUNS`` the
pixels (SHA-256) of four figures regenerated from its records: the campaign plot, the
utilization timeline, the model's error and the IE distribution.

A replay charges the measured seconds of each training and scoring to its simulated clock, so
on a loaded machine a streaming replay sees its simulations finish in another order around a
new model, and picks differently. Recorded replays charge a fixed 0.05 s instead (see
:func:`fixed_model_cost`): their picks then depend on the code alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from course_utils import records as rec
from course_utils.campaign import simulators
from course_utils.campaign.runner import run_campaign

SPACE = "truth:qm9:4000"
BASE = {"initial_training_count": 10, "max_training_count": 40, "batch_size": 6,
        "search_space": SPACE, "simulator": "replay"}
REPLAYS: dict[str, dict[str, Any]] = {
    **{f"batch-{acq}-seed{seed}": {"acquisition": acq, "seed": seed}
       for acq in ("greedy", "ucb", "epsilon-greedy", "random") for seed in (0, 1)},
    **{f"streaming-{acq}-seed{seed}": {"acquisition": acq, "seed": seed, "mode": "streaming",
                                       "workers": 2}
       for acq in ("greedy", "ucb") for seed in (0, 3)},
    "batch-growth-valid": {"seed": 2, "retrain": "growth:0.25", "valid_fraction": 0.2},
    "streaming-count-waves": {"seed": 2, "mode": "streaming", "workers": 2, "retrain": "count:5",
                              "arrival": "waves:3,every:8"},
    "batch-trust": {"seed": 5, "trust_tol": 0.3, "trust_streak": 2, "max_training_count": 60},
    "batch-converged": {"seed": 6, "stop": "converged:window=2,delta=0.05",
                        "max_training_count": 80},
    "batch-predicted": {"seed": 7, "stop": "predicted:delta=0.05,min_points=15",
                        "max_training_count": 80},
    # the models that learn, with the acquisitions that use their uncertainty
    "batch-rf-thompson": {"seed": 8, "model": "rf", "acquisition": "thompson"},
    "batch-gp-training-ei": {"seed": 9, "model": "gp:mean=training", "acquisition": "ei"},
    "batch-gp-pi": {"seed": 10, "model": "gp", "acquisition": "pi"},
}
REAL: dict[str, dict[str, Any]] = {
    f"real-batch-{acq}-seed{seed}": {"acquisition": acq, "seed": seed, "simulator": "xtb",
                                     "initial_training_count": 6, "max_training_count": 14,
                                     "batch_size": 4, "workers": 2}
    for acq, seed in (("greedy", 0), ("epsilon-greedy", 1))
}


MODEL_COST_S = 0.05
#: Runs whose figures are regenerated from their records and compared pixel by pixel.
FIGURE_RUNS = ("batch-greedy-seed0", "streaming-ucb-seed3", "batch-gp-training-ei", "batch-converged")


@contextmanager
def fixed_model_cost(seconds: float = MODEL_COST_S) -> Iterator[None]:
    """While open, the replay simulator's clock reads ``seconds`` more at each look, so every
    training, scoring and prediction it charges costs ``seconds`` of simulated time."""
    ticks = iter(range(1, 1 << 62))
    fake = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n[:1] == "_"})
    fake.perf_counter = lambda: next(ticks) * seconds
    real, simulators.time = simulators.time, fake
    try:
        yield
    finally:
        simulators.time = real


def record(name: str, overrides: dict[str, Any], root: Path) -> dict[str, Any]:
    out = root / name
    parameters = {**BASE, **overrides}
    if parameters["simulator"] == "replay":
        with fixed_model_cost():
            result = run_campaign(parameters, out, progress=False, plot=False)
    else:
        result = run_campaign(parameters, out, progress=False, plot=False)
    sims = rec.read_simulations(out)
    iters = rec.read_iterations(out)
    best = result.results.get("best") or {}
    extra = {"message": result.results["message"], "stopping": result.results.get("stopping")}
    if name in FIGURE_RUNS:
        extra["figures"] = figure_pixels(out)
    rows = [[r.smiles, int(r.batch), r.status, None if r.ie != r.ie else round(float(r.ie), 6)]
            for r in sims.itertuples()]
    if parameters["simulator"] != "replay":  # real results arrive in any order within a batch
        rows.sort(key=lambda row: (row[1], row[0]))
    return {
        "simulations": rows,
        "iterations": [[int(r.iteration), int(r.training_size), int(r.n_new),
                        None if not isinstance(r.model_version, str) else r.model_version]
                       for r in iters.itertuples()] if "model_version" in iters else
                      [[int(r.iteration), int(r.training_size), int(r.n_new), None]
                       for r in iters.itertuples()],
        "status": result.results["status"],
        "best": [best.get("smiles"), round(float(best["ie"]), 6) if best else None],
        **extra,
    }


def figure_pixels(run_dir: Path) -> dict[str, str | None]:
    """SHA-256 of the pixels of four figures drawn again from ``run_dir``'s records."""
    import hashlib

    import numpy as np
    from PIL import Image

    from course_utils.figures.campaign import (
        load_truth,
        plot_campaign,
        plot_ie_distribution,
        plot_model_error,
        plot_utilization,
    )

    folder = run_dir / "figures-again"
    folder.mkdir(exist_ok=True)
    drawn = {
        "campaign": plot_campaign(run_dir, filename=folder / "campaign.png"),
        "utilization": plot_utilization(run_dir, folder / "utilization.png"),
        "model_error": plot_model_error(run_dir, folder / "model_error.png"),
        "ie_distribution": plot_ie_distribution(run_dir, folder / "ie.png", load_truth("qm9")),
    }
    return {name: None if path is None else
            hashlib.sha256(np.asarray(Image.open(path).convert("RGBA")).tobytes()).hexdigest()
            for name, path in drawn.items()}


def record_all(real: bool) -> dict[str, Any]:
    runs = {**REPLAYS, **(REAL if real else {})}
    with tempfile.TemporaryDirectory(prefix="record-runs-") as tmp:
        return {name: record(name, overrides, Path(tmp)) for name, overrides in runs.items()}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            out.append(f"{name}: only in {'the record' if name in old else 'this run'}")
            continue
        for key in ("simulations", "iterations", "status", "best", "message", "stopping",
                    "figures"):
            if key not in old[name] or key not in new[name]:
                continue  # kept since the record was made (message, stopping, figures)
            a, b = old[name].get(key), new[name].get(key)
            if a == b:
                continue
            if not isinstance(a, list) or not isinstance(b, list):
                out.append(f"{name}: {key} {a!r} against {b!r}")
                continue
            pairs = zip(a, b, strict=False)
            where = next((i for i, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)))
            out.append(f"{name}: {key} differ (first at {where}: {a[where:where + 1]} "
                       f"against {b[where:where + 1]})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the record here")
    group.add_argument("--compare", type=Path, help="compare a new run with this record")
    parser.add_argument("--real", action="store_true", help="also real xTB batch runs")
    args = parser.parse_args(argv)
    runs = record_all(args.real)
    if args.out:
        args.out.write_text(json.dumps(runs, indent=1) + "\n")
        print(f"recorded {len(runs)} campaigns in {args.out}")
        return 0
    old = json.loads(args.compare.read_text())
    if not args.real:
        old = {k: v for k, v in old.items() if k in REPLAYS}
    diff = differences(old, runs)
    for line in diff:
        print(line)
    print(f"{len(runs)} campaigns: {'identical' if not diff else f'{len(diff)} differences'}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
