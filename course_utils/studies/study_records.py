"""A replayed study's per-run records, shipped so that a notebook can show the whole study.

Notebook 10 compares every model with every acquisition over 20 seeds: 340 replayed campaigns,
about five minutes on two cores. nbval executes every notebook again in CI, where that is too
long, and a smaller grid in the stored outputs would show a different (noisier) result than the
prose states. So the study is replayed once, by ``scripts/build_model_study.py``, into records:
one row per run and successful simulation (``strategy``, ``seed``, ``n``, ``smiles``), with a
provenance file beside them (the code's commit, the study's settings, strategies and seeds, the
table's coverage). The notebook reads them, rebuilds every curve from the ground-truth table,
and replays a few runs live, which must pick the same molecules (:func:`differences`).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.campaign.simulators import measured_table
from course_utils.studies.marks import yardsticks
from course_utils.studies.replays import CURVE_COLUMNS, replay_grid, run_curve, slug

#: The columns of the records: everything else is rebuilt from the ground-truth table.
RECORD_COLUMNS = ["strategy", "seed", "n", "smiles"]
#: Notebook 10's study: every model with every acquisition, and random search beside them.
MODELS = ("knn", "gp", "gp:mean=training", "rf")
ACQUISITIONS = ("greedy", "ucb", "ei", "thompson")
#: Where the shipped records of notebook 10's study live (relative to the repository).
MODEL_STUDY_FILE = Path("notebooks") / "data" / "10_model_study.csv.gz"


class StudyError(ValueError):
    """Records that cannot be read, or that are not the study asked for (one line)."""


@dataclass(frozen=True)
class Study:
    """What a replayed study runs: the strategies (name -> campaign parameters), the seeds and
    the settings every run shares (notebook 5's protocol by default)."""

    strategies: dict[str, dict[str, Any]]
    seeds: list[int]
    budget: int = 200
    initial: int = 20
    batch_size: int = 20
    search_space: str = "qm9"
    workers: int = 2
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def model_grid(cls, models: Sequence[str] = MODELS,
                   acquisitions: Sequence[str] = ACQUISITIONS, n_seeds: int = 20,
                   random: bool = True, **settings: Any) -> Study:
        """Every model with every acquisition (named ``"<model> <acquisition>"``), and random
        search (no model) when ``random``; seeds ``0 ... n_seeds - 1``."""
        strategies = {f"{m} {a}": {"model": m, "acquisition": a}
                      for m in models for a in acquisitions}
        if random:
            strategies["random"] = {"acquisition": "random"}
        return cls(strategies, list(range(int(n_seeds))), **settings)

    def settings(self) -> dict[str, Any]:
        """The study as plain JSON values (what the provenance file records)."""
        return json.loads(json.dumps(asdict(self)))


def replay_study(study: Study, out_dir: str | os.PathLike, *,
                 strategies: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                 processes: int = 2) -> pd.DataFrame:
    """Replay the study (or the given ``strategies`` and ``seeds`` of it) into ``out_dir``;
    the curves of :func:`~course_utils.studies.replays.replay_grid`."""
    names = list(study.strategies) if strategies is None else list(strategies)
    unknown = [name for name in names if name not in study.strategies]
    if unknown:
        raise StudyError(f"not strategies of the study: {unknown}; it has "
                         f"{', '.join(study.strategies)}")
    return replay_grid({name: study.strategies[name] for name in names},
                       list(study.seeds if seeds is None else seeds), budget=study.budget,
                       initial=study.initial, batch_size=study.batch_size,
                       search_space=study.search_space, workers=study.workers,
                       processes=processes, out_dir=out_dir, parameters=study.parameters)


def provenance_path(path: str | os.PathLike) -> Path:
    """``x.csv.gz`` -> ``x.provenance.json``, beside it."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + ".provenance.json")


def write_study(curves: pd.DataFrame, study: Study, path: str | os.PathLike,
                provenance: Mapping[str, Any] | None = None) -> Path:
    """Write the records of ``curves`` (every run of ``study``) to ``path`` (gzip CSV) and the
    provenance file beside it: the study's settings, the table's coverage and ``provenance``
    (how and by which code they were made)."""
    expected = {(s, seed) for s in study.strategies for seed in study.seeds}
    runs = set(curves.groupby(["strategy", "seed"]).groups)
    if runs != expected:
        raise StudyError(f"the curves hold {len(runs)} runs, the study {len(expected)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = curves[RECORD_COLUMNS]
    # no name and no time in the gzip header: the same records give the same bytes
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                 mtime=0) as packed:
        packed.write(records.to_csv(index=False).encode())
    marks = yardsticks(study.search_space)
    text = {**dict(provenance or {}), "study": study.settings(), "coverage": marks.coverage,
            "rows": len(records), "columns": RECORD_COLUMNS,
            "rebuilt_from": "the ground-truth table (ie, best_ie, top100_recall_so_far)"}
    provenance_path(path).write_text(json.dumps(text, indent=1) + "\n")
    return path


@dataclass(frozen=True)
class ShippedStudy:
    """Records read back: the study, its curves (rebuilt) and the provenance file's text."""

    study: Study
    curves: pd.DataFrame
    provenance: dict[str, Any]


def read_study(path: str | os.PathLike) -> ShippedStudy:
    """The records at ``path`` as curves (the columns of ``replay_grid``, ``elapsed_s`` empty:
    the simulated clock includes real model time, so it is not a record), each IE looked up in
    the ground-truth table the study was measured against."""
    path = Path(path)
    try:
        provenance = json.loads(provenance_path(path).read_text())
        records = pd.read_csv(path)
        study = Study(**provenance["study"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StudyError(f"cannot read the study records {path}: {err}") from err
    if list(records.columns) != RECORD_COLUMNS:
        raise StudyError(f"{path}: columns {list(records.columns)}, expected {RECORD_COLUMNS}")
    table, _ = measured_table(study.search_space)
    ok = table[table["status"] == "ok"]
    ie = dict(zip(ok["smiles"], pd.to_numeric(ok["ie"]), strict=True))
    missing = sorted(set(records["smiles"]) - set(ie))
    if missing:
        raise StudyError(f"{path}: {len(missing)} molecules have no IE in the table, e.g. "
                         f"{missing[0]}")
    marks = yardsticks(study.search_space)
    parts = []
    for (strategy, seed), run in records.groupby(["strategy", "seed"], sort=False):
        run = run.sort_values("n")
        sims = pd.DataFrame({"smiles": run["smiles"].to_numpy(),
                             "ie": run["smiles"].map(ie).to_numpy(), "status": "ok",
                             "elapsed_s": float("nan")})
        curve = run_curve(sims, marks)
        curve.insert(0, "seed", int(seed))
        curve.insert(0, "strategy", strategy)
        parts.append(curve)
    curves = pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]
    curves.attrs = {"search_space": study.search_space, "ground_truth": None,
                    "coverage": marks.coverage, "budget": study.budget,
                    "initial": study.initial, "batch_size": study.batch_size,
                    "workers": study.workers, "strategies": list(study.strategies),
                    "seeds": list(study.seeds), "records": str(path)}
    return ShippedStudy(study, curves, provenance)


#: Two simulations whose simulated end times are closer than this ended "at the same instant".
SAME_INSTANT_S = 1e-9


def differences(shipped: pd.DataFrame, replayed: pd.DataFrame,
                runs_dir: str | os.PathLike | None = None) -> list[str]:
    """Runs of ``replayed`` whose picks (molecules, in order) differ from the same strategy and
    seed in ``shipped``, one line each; empty when every replayed run is the shipped one.

    With ``runs_dir`` (the replay's ``out_dir``), a line says when the first difference comes
    where two simulations of the replay ended at the same simulated instant: the replay's clock
    includes the real time the model took, so float rounding then decides which is recorded
    first, and the run can differ from the records without any change of strategy.
    """
    out = []
    for (strategy, seed), run in replayed.groupby(["strategy", "seed"], sort=False):
        mine = run.sort_values("n")["smiles"].tolist()
        theirs = shipped[(shipped["strategy"] == strategy) & (shipped["seed"] == seed)]
        theirs = theirs.sort_values("n")["smiles"].tolist()
        if mine != theirs:
            pairs = zip(mine, theirs, strict=False)  # a shorter run differs where it ends
            first = next((i for i, (a, b) in enumerate(pairs) if a != b),
                         min(len(mine), len(theirs)))
            line = (f"{strategy} seed {seed}: differs from simulation {first + 1} on "
                    f"({len(mine)} replayed, {len(theirs)} shipped)")
            if runs_dir is not None and _same_instant(Path(runs_dir) / slug(strategy)
                                                      / f"seed-{int(seed):03d}", first):
                line += ("; there two simulations ended at the same simulated instant, and "
                         "rounding of the clock decided their order")
            out.append(line)
    return out


def _same_instant(run_dir: Path, position: int) -> bool:
    """Whether successful simulation ``position`` (0-based, record order) of the run ended
    within :data:`SAME_INSTANT_S` of another simulation of its batch."""
    try:
        sims = pd.read_csv(run_dir / "simulations.csv")
    except (OSError, ValueError):
        return False
    ok = sims[sims["status"] == "ok"].reset_index(drop=True)
    if position >= len(ok):
        return False
    row = ok.iloc[position]
    batch = ok[(ok["batch"] == row["batch"]) & (ok.index != position)]
    return bool((abs(batch["end_time"] - row["end_time"]) < SAME_INSTANT_S).any())
