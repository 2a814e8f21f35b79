"""A faithful re-implementation of the original tutorial's algorithm, for side-by-side timing.

Written from the description in shared/DESIGN.md §4, keeping the original's costs on purpose:
each simulation runs in a fresh Python process (re-importing RDKit, ASE and xTB), xTB's
OpenMP threads are not limited, and every iteration recomputes the Morgan fingerprints of the
whole search space inside an sklearn Pipeline. Not used by the course; benchmarks only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline


def compute_vertical_original(smiles: str) -> float:
    """The original protocol: XYZ text round trip, XTB calculators, no thread limit (eV)."""
    from ase.io import read
    from ase.optimize.lbfgs import LBFGSLineSearch
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from xtb.ase.calculator import XTB

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    AllChem.MMFFOptimizeMolecule(mol)
    conf = mol.GetConformer()
    lines = [str(mol.GetNumAtoms()), smiles]
    for i, atom in enumerate(mol.GetAtoms()):
        p = conf.GetAtomPosition(i)
        lines.append(f"{atom.GetSymbol()} {p.x} {p.y} {p.z}")
    atoms = read(StringIO("\n".join(lines) + "\n"), format="xyz")
    atoms.calc = XTB(accuracy=0.05)
    LBFGSLineSearch(atoms, logfile=None).run(fmax=0.02, steps=250)
    neutral = atoms.get_potential_energy()
    atoms.set_initial_charges([1] + [0] * (len(atoms) - 1))
    atoms.set_initial_magnetic_moments([1] + [0] * (len(atoms) - 1))
    return XTB(accuracy=0.05).get_potential_energy(atoms) - neutral


def _simulate_in_fresh_process(smiles: str) -> float:
    """One simulation = one new Python process, with OpenMP left to use every core."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "COURSE_UTILS_XTB_THREADS", "OPENBLAS_NUM_THREADS",
                        "MKL_NUM_THREADS")}
    code = ("import sys; sys.path.insert(0, sys.argv[2]); "
            "from original_tutorial import compute_vertical_original as f; "
            "print(f(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, smiles, os.path.dirname(__file__)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return float(proc.stdout.strip().splitlines()[-1])


def legacy_fingerprint(smiles: str, length: int = 256, radius: int = 4) -> np.ndarray:
    """The tutorial's fingerprint: deprecated RDKit call, unpacked to bools."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import AllChem

    with rdBase.BlockLogs():  # today's RDKit logs a deprecation line per call; the original's did not
        fp = AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(smiles), radius, length)
    return np.array(list(fp), dtype=bool)


class MorganFingerprintTransformer(BaseEstimator, TransformerMixin):
    """The tutorial's transformer: fingerprints recomputed from SMILES on every call."""

    def __init__(self, length: int = 256, radius: int = 4) -> None:
        self.length = length
        self.radius = radius

    def fit(self, X, y=None):
        return self

    def transform(self, X, y=None):
        return np.vstack([legacy_fingerprint(s, self.length, self.radius) for s in X])


def original_pipeline() -> Pipeline:
    """The tutorial's model: KNN (k=4, distance-weighted, Jaccard) on Morgan fingerprints."""
    return Pipeline([
        ("fingerprint", MorganFingerprintTransformer(length=256, radius=4)),
        ("knn", KNeighborsRegressor(n_neighbors=4, weights="distance", metric="jaccard",
                                    n_jobs=-1)),
    ])


def run_original_loop(space: list[str], initial: int, maximum: int, batch: int, seed: int,
                      workers: int = 2) -> pd.DataFrame:
    """The 8/24/4-style loop: random batch, then train -> score all -> top batch -> simulate."""
    rng = np.random.default_rng(seed)
    done: dict[str, float] = {}
    tried: set[str] = set()

    def simulate(candidates: list[str]) -> None:
        with ThreadPoolExecutor(workers) as pool:
            for smiles, future in [(s, pool.submit(_simulate_in_fresh_process, s))
                                   for s in candidates]:
                tried.add(smiles)
                try:
                    done[smiles] = future.result()
                except RuntimeError:
                    pass

    simulate(list(rng.choice(space, size=initial, replace=False)))
    while len(done) < maximum:
        train = pd.DataFrame({"smiles": list(done), "ie": list(done.values())})
        model = original_pipeline().fit(train["smiles"], train["ie"])
        predicted = pd.DataFrame({"smiles": space, "ie": model.predict(space)})
        ranked = predicted.sort_values("ie", ascending=False)["smiles"]
        picks = [s for s in ranked if s not in tried][: min(batch, maximum - len(done))]
        simulate(picks)
    return pd.DataFrame({"smiles": list(done), "ie": list(done.values())})
