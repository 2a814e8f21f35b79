"""Plots of what a campaign really found: the best *simulated* ionization energy so far.

The original tutorial plotted the model's predictions, which a distance-weighted KNN cannot push
above its best training value; these plots use simulation records only, and compare them with
the expected result of picking molecules at random.
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from course_utils import records as rec

IE_LABEL = "best simulated IE so far (eV)"


def best_so_far(simulations: pd.DataFrame) -> pd.DataFrame:
    """Successful simulations in arrival order with the running maximum of IE (eV)."""
    ok = simulations[simulations["status"] == rec.STATUS_OK].copy()
    ok = ok.sort_values("elapsed_s", kind="stable").reset_index(drop=True)
    ok["n_simulations"] = np.arange(1, len(ok) + 1)
    ok["best_ie"] = ok["ie"].astype(float).cummax()
    return ok[["n_simulations", "elapsed_s", "smiles", "ie", "best_ie"]]


@cache
def random_reference_energies() -> np.ndarray:
    """GFN2-xTB IEs (eV) of a seeded random QM9 sample (scripts/build_random_reference.py)."""
    path = resources.files("course_utils") / "data" / "qm9_random_ie.csv"
    with resources.as_file(path) as file:
        return np.sort(pd.read_csv(file)["ie"].to_numpy(dtype=float))


def expected_random_best(n_values: np.ndarray | list[int]) -> np.ndarray:
    """Expected best IE after n random picks, from the empirical QM9 distribution (eV)."""
    energies = random_reference_energies()
    quantiles = np.arange(len(energies) + 1) / len(energies)
    out = []
    for n in np.asarray(n_values, dtype=float):
        cdf_pow = quantiles**n  # P(max of n draws <= i-th smallest value)
        out.append(float(np.sum(energies * np.diff(cdf_pow))))
    return np.array(out)


def _mean_simulation_seconds(simulations: pd.DataFrame) -> float:
    ok = simulations[simulations["status"] == rec.STATUS_OK]
    durations = (ok["end_time"].astype(float) - ok["start_time"].astype(float)).dropna()
    return float(durations.mean()) if len(durations) else float("nan")


def plot_campaign(
    out_dir: str | os.PathLike,
    *,
    workers: int = 1,
    filename: str = rec.PLOT_FILE,
    title: str | None = None,
) -> Path:
    """Draw best simulated IE against simulations and against wall time; save it as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    sims = rec.read_simulations(out)
    curve = best_so_far(sims)
    if title is None:
        title = _title(out)
    n_max = max(int(curve["n_simulations"].max()), 1)
    n_ref = np.arange(1, n_max + 1)
    ref = expected_random_best(n_ref)

    fig, (ax_n, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ax_n.step(curve["n_simulations"], curve["best_ie"], where="post", lw=2,
              label="this campaign (simulated)")
    ax_n.scatter(curve["n_simulations"], curve["ie"], s=12, alpha=0.5, color="grey",
                 label="each simulation")
    ax_n.plot(n_ref, ref, ls="--", color="tab:red", label="random search (expected)")
    ax_n.set_xlabel("successful simulations")
    ax_n.set_ylabel(IE_LABEL)
    ax_n.legend(loc="upper left", fontsize=8)

    ax_t.step(curve["elapsed_s"], curve["best_ie"], where="post", lw=2,
              label="this campaign (simulated)")
    per_sim = _mean_simulation_seconds(sims)
    if np.isfinite(per_sim):
        ax_t.plot(n_ref * per_sim / max(workers, 1), ref, ls="--", color="tab:red",
                  label=f"random search (expected, {per_sim:.2f} s/sim on {workers} workers)")
    replayed = _parameters(out).get("simulator") == "replay"  # a custom title may not say so
    ax_t.set_xlabel("simulated wall time (s), from the table's recorded seconds" if replayed
                    else "wall time (s)")
    ax_t.set_ylabel(IE_LABEL)
    ax_t.legend(loc="upper left", fontsize=8)
    measured_against = _global_best_line(out, (ax_n, ax_t))
    fig.suptitle(title, fontsize=10)
    path = out / filename
    # The ground truth the figure shows, as text inside the PNG: a stored notebook output can
    # then be checked against the shipped table (tests/test_stored_outputs.py).
    fig.savefig(path, dpi=120, metadata={"Title": title, "Description": measured_against})
    plt.close(fig)
    return path


def _global_best_line(out: Path, axes) -> str | None:
    """The true optimum, from the ground-truth table, with the coverage it rests on; returns
    what it drew as one sentence (None when the run has no evaluation)."""
    path = out / rec.RESULTS_FILE
    try:
        evaluation = json.loads(path.read_text()).get("evaluation") if path.exists() else None
    except ValueError:
        return None
    best = (evaluation or {}).get("global_best")
    if not best:
        return None
    coverage = evaluation["coverage"]
    label = (f"global best {best['ie']:.2f} eV ({best['smiles']}); "
             f"regret {evaluation['regret_ev']:.2f} eV" if evaluation.get("regret_ev") is not None
             else f"global best {best['ie']:.2f} eV ({best['smiles']})")
    if not coverage["complete"]:
        label += f"\n{coverage['text']}"
    for ax in axes:
        ax.axhline(best["ie"], color="black", lw=1, ls=":", label=label)
        ax.legend(loc="upper left", fontsize=7)
    space = _parameters(out).get("search_space", "")
    return (f"search space {space}; {coverage['text']}; "
            f"global best {best['ie']:.3f} eV ({best['smiles']})")


def _parameters(out: Path) -> dict:
    path = out / rec.PARAMETERS_FILE
    try:
        values = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}
    return values if isinstance(values, dict) else {}


def _title(out: Path) -> str:
    p = _parameters(out)
    if not p:
        return "ML-in-the-loop campaign"
    replay = ("REPLAY from the ground-truth table (simulated clock), "
              if p.get("simulator") == "replay" else "")
    return (f"{replay}{p.get('acquisition')} / {p.get('mode')}: initial "
            f"{p.get('initial_training_count')}, max {p.get('max_training_count')}, "
            f"batch {p.get('batch_size')}, seed {p.get('seed')}")
