"""GFN2-xTB vertical ionization energies of molecules given as SMILES.

The protocol is the original tutorial's, so numbers match published runs:
SMILES -> RDKit 3D embedding (ETKDG, ``randomSeed=1``) -> MMFF pre-optimization ->
GFN2-xTB relaxation of the neutral (LBFGSLineSearch, fmax 0.02 eV/Å, <= 250 steps) ->
single point of the cation (+1, doublet) at that geometry. IE = E(cation) - E(neutral), in eV.

Two engines compute the same GFN2-xTB energies: xtb-python (unmaintained, PyPI wheels only up
to Python 3.11) and its maintained successor tblite. ``engine="auto"`` picks xtb-python when it
can be imported, tblite otherwise; ``COURSE_UTILS_XTB_ENGINE`` overrides the default.

``fidelity="cheap"`` skips the xTB relaxation: the same two single points at the MMFF geometry.
It costs a fraction of the full protocol and ranks molecules much like it, so it can screen
many molecules or check a model's picks before the full simulation is spent on them.

Everything runs in the calling process: Parsl workers are long-lived, so a simulation costs
only the calculation, not a Python start-up and re-import.
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from course_utils.resilience import is_timeout

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ase import Atoms

ENGINES = ("xtb", "tblite")
FIDELITIES = ("full", "cheap")
ENGINE_ENV = "COURSE_UTILS_XTB_ENGINE"
THREADS_ENV = "COURSE_UTILS_XTB_THREADS"

ACCURACY = 0.05
FMAX = 0.02  # eV/Å
MAX_STEPS = 250
EMBED_SEED = 1
EMBED_RETRY_SEEDS = (2, 3, 4, 5, 42)

_ENGINE_MODULES = {"xtb": "xtb.ase.calculator", "tblite": "tblite.ase"}


class ChemistryError(RuntimeError):
    """A simulation of one molecule could not produce an ionization energy."""

    def __init__(self, smiles: str, detail: str):
        self.smiles = smiles
        self.detail = detail
        super().__init__(f"{type(self).__name__} for SMILES {smiles!r}: {detail}")

    def __reduce__(self):
        # Parsl pickles exceptions raised on workers; keep (smiles, detail) through the trip.
        return (type(self), (self.smiles, self.detail))

    @property
    def record_text(self) -> str:
        """The ``error`` of a failed simulation's record: its type and detail, no SMILES (the
        record names the molecule already)."""
        return f"{type(self).__name__}: {self.detail}"


class InvalidSmilesError(ChemistryError, ValueError):
    """RDKit cannot parse the SMILES (or it is not a string): a problem with the input, not the
    simulation. The one such error of the kit: fingerprints and models raise it too, with the
    ``position`` of the string in the list they were given."""

    def __init__(self, smiles: object, detail: str, position: int | None = None):
        super().__init__(smiles, detail)
        self.position = position
        if position is not None:
            self.args = (f"invalid SMILES at position {position}: {smiles!r} ({detail})",)

    def __reduce__(self):
        return (type(self), (self.smiles, self.detail, self.position))


class EmbeddingError(ChemistryError):
    """No 3D geometry could be generated, even after retries (other seeds, random coordinates)."""


class OptimizationNotConvergedError(ChemistryError):
    """The GFN2-xTB geometry relaxation did not reach fmax within the allowed steps."""


class EngineError(ChemistryError):
    """The xTB engine itself failed (for example the SCF did not converge)."""


class EngineUnavailableError(ImportError):
    """The requested xTB engine is not installed (or none is)."""


@cache
def _importable(engine: str) -> bool:
    try:
        importlib.import_module(_ENGINE_MODULES[engine])
    except ImportError:
        return False
    return True


def available_engines() -> list[str]:
    """Engines that can be imported here, in order of preference."""
    return [name for name in ENGINES if _importable(name)]


def resolve_engine(engine: str | None = None) -> str:
    """Turn ``None``/``"auto"``/a name into an engine that is installed, or explain what to do."""
    requested = (engine or os.environ.get(ENGINE_ENV) or "auto").strip().lower()
    if requested == "xtb-python":
        requested = "xtb"
    if requested == "auto":
        found = available_engines()
        if not found:
            raise EngineUnavailableError(
                "No GFN2-xTB engine is installed. Install one: `pip install tblite` "
                "(any Python) or `pip install xtb` (Python <= 3.11), or use environment.yml."
            )
        return found[0]
    if requested not in ENGINES:
        raise ValueError(f"Unknown xTB engine {requested!r}; choose one of {ENGINES} or 'auto'.")
    if not _importable(requested):
        package = "xtb" if requested == "xtb" else "tblite"
        raise EngineUnavailableError(
            f"The {requested!r} engine is not installed: `pip install {package}`, "
            f"or choose another engine (installed: {available_engines() or 'none'})."
        )
    return requested


def default_threads() -> int:
    """xTB threads per simulation: 1 unless ``COURSE_UTILS_XTB_THREADS`` says otherwise.

    Concurrent simulations that each start one OpenMP thread per core oversubscribe the
    machine (measured: 20x slower), so one thread per simulation is the right default.
    """
    value = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(value)
    except ValueError as err:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}") from err
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
    return threads


@contextmanager
def _limit_threads(threads: int) -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def _embed(mol, smiles: str) -> None:
    """Give ``mol`` a 3D conformer, retrying where ETKDG's first seed fails (~1% of QM9)."""
    from rdkit.Chem import AllChem

    if AllChem.EmbedMolecule(mol, randomSeed=EMBED_SEED) == 0:
        return
    for seed in EMBED_RETRY_SEEDS:
        if AllChem.EmbedMolecule(mol, randomSeed=seed) == 0:
            return
    for seed in (EMBED_SEED, *EMBED_RETRY_SEEDS):
        if AllChem.EmbedMolecule(mol, randomSeed=seed, useRandomCoords=True) == 0:
            return
    tried = 2 * (1 + len(EMBED_RETRY_SEEDS))
    raise EmbeddingError(
        smiles, f"RDKit could not embed a 3D geometry ({tried} attempts: ETKDG seeds, then "
        "random coordinates). Skip this molecule or check its stereochemistry."
    )


def initial_geometry(smiles: str) -> Atoms:
    """SMILES -> ASE Atoms with an MMFF-relaxed 3D geometry (hydrogens added)."""
    from ase import Atoms
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    if not isinstance(smiles, str) or not smiles.strip():
        raise InvalidSmilesError(str(smiles), "empty SMILES string")
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise InvalidSmilesError(smiles, "RDKit cannot parse it; check the SMILES syntax")
    mol = Chem.AddHs(mol)
    _embed(mol, smiles)
    # MMFF only pre-relaxes; xTB does the real optimization. Missing MMFF parameters (-1) or
    # non-convergence (1) leave a usable embedded geometry, exactly as in the original protocol.
    AllChem.MMFFOptimizeMolecule(mol)
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    return Atoms(symbols, positions=mol.GetConformer().GetPositions())


def _calculators(engine: str):
    """(neutral, cation) ASE calculators for the chosen engine."""
    if engine == "xtb":
        from xtb.ase.calculator import XTB

        return XTB(method="GFN2-xTB", accuracy=ACCURACY), XTB(method="GFN2-xTB", accuracy=ACCURACY)
    from tblite.ase import TBLite

    common = {"method": "GFN2-xTB", "accuracy": ACCURACY, "verbosity": 0}
    return TBLite(**common), TBLite(charge=1, multiplicity=2, **common)


def check_fidelity(fidelity: str) -> str:
    """The canonical name of ``fidelity``, or a one-line ValueError naming the choices."""
    key = fidelity.strip().lower() if isinstance(fidelity, str) else fidelity
    if key not in FIDELITIES:
        raise ValueError(f"Unknown fidelity {fidelity!r}; choose one of {', '.join(FIDELITIES)}.")
    return key


def _relax(atoms: Atoms, smiles: str) -> None:
    """The full protocol's GFN2-xTB relaxation of the neutral (the calculator is attached)."""
    from ase.optimize.lbfgs import LBFGSLineSearch

    if not LBFGSLineSearch(atoms, logfile=None).run(fmax=FMAX, steps=MAX_STEPS):
        raise OptimizationNotConvergedError(
            smiles, f"GFN2-xTB relaxation did not reach fmax={FMAX} eV/Å in {MAX_STEPS} steps")


def compute_vertical(smiles: str, engine: str | None = None, threads: int | None = None,
                     fidelity: str = "full") -> float:
    """GFN2-xTB vertical ionization energy of ``smiles`` in eV.

    ``fidelity="full"`` relaxes the neutral with GFN2-xTB first (the published protocol);
    ``"cheap"`` uses the MMFF geometry as it is (no relaxation, so it never raises
    :class:`OptimizationNotConvergedError`). Raises a subclass of :class:`ChemistryError`
    (invalid SMILES, embedding failure, non-converged relaxation, engine failure) so callers
    can tell failures apart, or :class:`EngineUnavailableError` if no engine is installed.
    """
    relax = check_fidelity(fidelity) == "full"
    name = resolve_engine(engine)
    atoms = initial_geometry(smiles)
    neutral_calc, cation_calc = _calculators(name)
    with _limit_threads(threads or default_threads()):
        try:
            atoms.calc = neutral_calc
            if relax:
                _relax(atoms, smiles)
            neutral_energy = atoms.get_potential_energy()
            cation = atoms.copy()
            if name == "xtb":  # xtb-python reads charge and spin from the atoms
                cation.set_initial_charges([1] + [0] * (len(cation) - 1))
                cation.set_initial_magnetic_moments([1] + [0] * (len(cation) - 1))
            cation.calc = cation_calc
            cation_energy = cation.get_potential_energy()
        except ChemistryError:
            raise
        except Exception as err:  # noqa: BLE001 - engines raise assorted types; keep the cause
            if is_timeout(err):
                raise  # Parsl's walltime interrupts us by raising inside; let it through
            raise EngineError(smiles, f"{name} failed: {type(err).__name__}: {err}") from err
    return float(cation_energy - neutral_energy)


def molecule_row(smiles: str, engine: str | None = None, threads: int | None = None,
                 fidelity: str = "full") -> dict[str, Any]:
    """One molecule's IE as a row: ``smiles, ie, status, error, seconds, engine``.

    The one place a chemistry failure becomes data (``status="failed"``, ``ie`` NaN, the
    error's :attr:`~ChemistryError.record_text`) instead of an exception, so the campaign's
    records and the ground-truth table describe a molecule the same way. A missing engine
    (:class:`EngineUnavailableError`) or a Parsl timeout still raises: they are not facts
    about the molecule.
    """
    name = resolve_engine(engine)
    start = time.perf_counter()
    try:
        ie, status, error = compute_vertical(smiles, engine=name, threads=threads,
                                             fidelity=fidelity), "ok", ""
    except ChemistryError as err:
        ie, status, error = math.nan, "failed", err.record_text
    return {"smiles": smiles, "ie": ie, "status": status, "error": error,
            "seconds": time.perf_counter() - start, "engine": name}


# --- what a SMILES string is ------------------------------------------------------------
@contextmanager
def quiet_rdkit() -> Iterator[None]:
    """RDKit logs every parse failure to stderr; we report them ourselves instead."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


def identify_smiles(smi: str, rdkit: bool) -> tuple[str, str | None]:
    """Return (RDKit's canonical form, why unusable or None); RDKit's own diagnosis where it
    has one. The form only names other spellings of a molecule: the kit's identity of a
    molecule is its SMILES string (see :mod:`course_utils.search_space`)."""
    if any(ch.isspace() for ch in smi):
        return smi, "contains whitespace (is the file space-separated?)"
    if not rdkit:
        return smi, None
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smi)
    if mol is not None:
        return Chem.MolToSmiles(mol), None
    unsanitized = Chem.MolFromSmiles(smi, sanitize=False)
    if unsanitized is None:
        return smi, "RDKit cannot parse this SMILES (e.g. unclosed ring or bracket)"
    problems = Chem.DetectChemistryProblems(unsanitized)
    if problems:
        return smi, f"RDKit rejects this molecule: {problems[0].Message()}"
    return smi, "RDKit cannot sanitize this molecule"
