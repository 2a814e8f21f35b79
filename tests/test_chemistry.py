"""GFN2-xTB ionization energies: reference values, both engines, typed errors."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from course_utils import chemistry
from course_utils.chemistry import (
    ChemistryError,
    EmbeddingError,
    EngineUnavailableError,
    InvalidSmilesError,
    OptimizationNotConvergedError,
    available_engines,
    compute_vertical,
    resolve_engine,
)

REFERENCE_EV = {"O": 18.293, "OC": 15.459, "c1ccccc1": 14.215}
ENGINES = available_engines()


def test_at_least_one_engine_is_installed():
    assert ENGINES, "neither xtb-python nor tblite is importable"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("smiles", sorted(REFERENCE_EV))
def test_reference_ionization_energies(engine, smiles):
    assert compute_vertical(smiles, engine=engine) == pytest.approx(REFERENCE_EV[smiles], abs=0.01)


def _original_protocol(smiles: str) -> float:
    """The original tutorial's protocol, as re-implemented for the benchmarks."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from original_tutorial import compute_vertical_original

    return compute_vertical_original(smiles)


@pytest.mark.skipif("xtb" not in ENGINES, reason="the original protocol needs xtb-python")
@pytest.mark.parametrize("engine", ENGINES)
def test_random_qm9_molecules_match_the_original_protocol(engine):
    from course_utils.search_space import load_search_space, sample_smiles

    for smiles in sample_smiles(load_search_space("qm9"), 4, seed=2024):
        expected = _original_protocol(smiles)
        assert compute_vertical(smiles, engine=engine) == pytest.approx(expected, abs=0.01), smiles


def test_engines_agree_to_a_millielectronvolt():
    if len(ENGINES) < 2:
        pytest.skip("only one engine installed")
    values = [compute_vertical("CC(=O)N", engine=e) for e in ENGINES]
    assert abs(values[0] - values[1]) < 1e-3


def test_engine_selection(monkeypatch):
    monkeypatch.delenv(chemistry.ENGINE_ENV, raising=False)
    assert resolve_engine() == ENGINES[0]
    assert resolve_engine("auto") == ENGINES[0]
    if "xtb" in ENGINES:
        assert resolve_engine("xtb-python") == "xtb"
    monkeypatch.setenv(chemistry.ENGINE_ENV, ENGINES[-1])
    assert resolve_engine() == ENGINES[-1]
    with pytest.raises(ValueError, match="Unknown xTB engine"):
        resolve_engine("dftb")


def test_missing_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(chemistry, "_importable", lambda name: False)
    with pytest.raises(EngineUnavailableError, match="pip install"):
        resolve_engine("auto")
    with pytest.raises(EngineUnavailableError, match="tblite"):
        resolve_engine("tblite")


@pytest.mark.parametrize("bad", ["C1CC", "not a molecule", "", "   "])
def test_invalid_smiles_is_typed(bad):
    with pytest.raises(InvalidSmilesError) as info:
        compute_vertical(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.smiles == bad


def test_embedding_failure_is_typed_after_retries(monkeypatch):
    from rdkit.Chem import AllChem

    calls = []
    real = AllChem.EmbedMolecule

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AllChem, "EmbedMolecule", counting)
    with pytest.raises(EmbeddingError, match="C1#CC1") as info:
        compute_vertical("C1#CC1")  # cyclopropyne: no 3D geometry exists
    assert not isinstance(info.value, InvalidSmilesError)
    assert calls[0] == {"randomSeed": 1}
    assert any(c.get("useRandomCoords") for c in calls), "random coordinates were never tried"


def test_embedding_retry_rescues_a_molecule(monkeypatch):
    """When seed 1 fails, another seed is used instead of giving up or using a broken conformer."""
    from rdkit.Chem import AllChem

    real = AllChem.EmbedMolecule
    seeds = []

    def first_seed_fails(mol, **kwargs):
        seeds.append(kwargs.get("randomSeed"))
        if kwargs.get("randomSeed") == 1 and not kwargs.get("useRandomCoords"):
            return -1
        return real(mol, **kwargs)

    monkeypatch.setattr(AllChem, "EmbedMolecule", first_seed_fails)
    assert compute_vertical("O") == pytest.approx(18.293, abs=0.05)
    assert seeds[:2] == [1, chemistry.EMBED_RETRY_SEEDS[0]]


def test_non_converged_relaxation_is_typed(monkeypatch):
    monkeypatch.setattr(chemistry, "MAX_STEPS", 1)
    with pytest.raises(OptimizationNotConvergedError, match="did not reach fmax"):
        compute_vertical("CCCCCCO")


def test_errors_survive_pickling_for_parsl():
    err = pickle.loads(pickle.dumps(EmbeddingError("C1#CC1", "no geometry")))
    assert isinstance(err, EmbeddingError) and isinstance(err, ChemistryError)
    assert err.smiles == "C1#CC1" and "no geometry" in str(err)


def test_threads_default_and_validation(monkeypatch):
    monkeypatch.delenv(chemistry.THREADS_ENV, raising=False)
    assert chemistry.default_threads() == 1
    monkeypatch.setenv(chemistry.THREADS_ENV, "4")
    assert chemistry.default_threads() == 4
    monkeypatch.setenv(chemistry.THREADS_ENV, "zero")
    with pytest.raises(ValueError, match=chemistry.THREADS_ENV):
        chemistry.default_threads()


def test_openmp_is_limited_during_a_simulation(monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []
    real = chemistry._calculators

    def spy(engine):
        calcs = real(engine)
        seen.append(engine)
        return calcs

    monkeypatch.setattr(chemistry, "_calculators", spy)
    original_get = chemistry.LBFGSLineSearch if hasattr(chemistry, "LBFGSLineSearch") else None
    assert original_get is None  # ASE is imported lazily, not at module import
    from ase.optimize.lbfgs import LBFGSLineSearch

    threads_during_run = []
    real_run = LBFGSLineSearch.run

    def run(self, *args, **kwargs):
        threads_during_run.extend(
            d["num_threads"] for d in threadpool_info() if d["user_api"] == "openmp"
        )
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(LBFGSLineSearch, "run", run)
    compute_vertical("O", threads=1)
    assert seen and threads_during_run and set(threads_during_run) == {1}


def test_a_plain_install_brings_an_engine():
    """tblite is a core dependency; xtb-python (preferred where it imports) stays an extra."""
    import re
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    project = project["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}

    assert "tblite" in names(project["dependencies"])
    assert "xtb" in names(project["optional-dependencies"]["engines"])
    assert "xtb" not in names(project["dependencies"])


# --- the cheap fidelity: no xTB relaxation ----------------------------------------------------
@pytest.mark.parametrize("smiles", ["C", "CC", "O"])
def test_cheap_fidelity_differs_from_full_but_is_close(smiles):
    full = compute_vertical(smiles)
    cheap = compute_vertical(smiles, fidelity="cheap")
    assert cheap != pytest.approx(full, abs=1e-4)  # the geometry really is the MMFF one
    assert cheap == pytest.approx(full, abs=0.15)
    assert compute_vertical(smiles, fidelity=" Cheap ") == pytest.approx(cheap, abs=1e-9)


def test_cheap_fidelity_skips_the_relaxation(monkeypatch):
    monkeypatch.setattr(chemistry, "MAX_STEPS", 1)
    with pytest.raises(OptimizationNotConvergedError):
        compute_vertical("CCCCCCO")
    assert 12 < compute_vertical("CCCCCCO", fidelity="cheap") < 16


def test_cheap_fidelity_keeps_the_error_types():
    with pytest.raises(InvalidSmilesError):
        compute_vertical("C1CC", fidelity="cheap")
    with pytest.raises(EmbeddingError):
        compute_vertical("C1#CC1", fidelity="cheap")


def test_unknown_fidelity_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(chemistry, "_importable", lambda name: False)  # checked before the engine
    with pytest.raises(ValueError, match=r"^Unknown fidelity 'medium'; choose one of full, cheap\.$"):
        compute_vertical("O", fidelity="medium")
