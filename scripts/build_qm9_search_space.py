"""Build the bundled QM9 search space, ``course_utils/data/qm9_search_space.csv.gz``.

The course only needs an identifier and a SMILES string per molecule, so we ship
those two columns instead of the ~225 MB of QM9 properties in ``qm9pack``. That
keeps the repository small and ``load_search_space("qm9")`` fast, and ``qm9pack``
stays a build-time source rather than a runtime dependency.

Usage (from the repository root, in an environment with ``qm9pack`` and RDKit)::

    python scripts/build_qm9_search_space.py            # build + RDKit check
    python scripts/build_qm9_search_space.py --no-rdkit  # build only

The output is byte-for-byte reproducible for the same inputs and zlib: rows are
sorted, the CSV is written by hand with ``\\n`` line endings, and the gzip header
carries ``mtime=0`` and a fixed file name. Facts for ``QM9_PROVENANCE.md`` (row
count, hashes, RDKit parse count) are printed at the end.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import sys
from pathlib import Path

import pandas as pd

QM9PACK_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
# QM9 has 133,885 molecules; 3,054 failed the authors' geometry consistency check.
EXPECTED_ROWS = 130_831
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "course_utils" / "data" / "qm9_search_space.csv.gz"
# Name stored in the gzip header; fixed so the bytes do not depend on the output path.
GZIP_MEMBER_NAME = "qm9_search_space.csv"


class BuildError(RuntimeError):
    """Raised when the inputs do not look like the QM9 release we expect."""


def find_qm9pack_data() -> Path:
    """Locate qm9pack's data folder without importing qm9pack (its import pulls in setuptools)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "The 'qm9pack' package is not installed, but it is the source of the QM9 SMILES.\n"
            "Install it into this environment with:\n\n    pip install qm9pack\n\n"
            "(it is only needed to rebuild the bundled file, not to use course_utils)."
        )
    for location in spec.submodule_search_locations:
        data_dir = Path(location) / "data"
        if all((data_dir / part).is_file() for part in QM9PACK_PARTS):
            return data_dir
    raise BuildError(
        f"qm9pack is installed at {list(spec.submodule_search_locations)} but its data folder "
        f"does not contain {', '.join(QM9PACK_PARTS)}. Reinstall it with "
        "'pip install --force-reinstall qm9pack'."
    )


def read_qm9(data_dir: Path) -> pd.DataFrame:
    """Read only Index and SMILES: the full CSVs hold geometries and spectra we do not need."""
    frames = [
        pd.read_csv(data_dir / part, usecols=["Index", "SMILES"], dtype={"SMILES": str})
        for part in QM9PACK_PARTS
    ]
    df = pd.concat(frames, ignore_index=True)
    df = df.rename(columns={"Index": "qm9_index", "SMILES": "smiles"})
    df = df.sort_values("qm9_index", kind="stable").reset_index(drop=True)
    check_table(df)
    return df


def check_table(df: pd.DataFrame) -> None:
    """Fail loudly rather than bundle a silently different dataset."""
    problems = []
    if len(df) != EXPECTED_ROWS:
        problems.append(f"expected {EXPECTED_ROWS} rows, found {len(df)}")
    if not df["qm9_index"].is_unique:
        problems.append("qm9_index values are not unique")
    smiles = df["smiles"].fillna("")
    if (smiles.str.strip() == "").any():
        problems.append(f"{int((smiles.str.strip() == '').sum())} rows have an empty SMILES")
    if smiles.str.contains(r"[,\"\s]", regex=True).any():
        problems.append("some SMILES contain commas, quotes or whitespace (CSV would need quoting)")
    if problems:
        raise BuildError("Unexpected qm9pack contents: " + "; ".join(problems))


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """Write the CSV by hand so the bytes cannot change with pandas' CSV writer defaults."""
    lines = ["qm9_index,smiles"]
    lines.extend(f"{idx},{smi}" for idx, smi in zip(df["qm9_index"], df["smiles"], strict=True))
    return ("\n".join(lines) + "\n").encode("ascii")


def gzip_bytes(payload: bytes) -> bytes:
    """Compress with a fixed header (mtime=0, fixed name) so re-runs give identical bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(
        filename=GZIP_MEMBER_NAME, mode="wb", fileobj=buffer, compresslevel=9, mtime=0
    ) as gz:
        gz.write(payload)
    return buffer.getvalue()


def rdkit_parse_count(smiles: list[str]) -> tuple[int, list[str], int]:
    """Count SMILES RDKit parses and canonical duplicates, to document them in the provenance."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        failed: list[str] = []
        canonical: set[str] = set()
        n_duplicate = 0
        for smi in smiles:
            mol = Chem.MolFromSmiles(smi)
            if mol is None:
                failed.append(smi)
                continue
            key = Chem.MolToSmiles(mol)
            if key in canonical:
                n_duplicate += 1
            canonical.add(key)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return len(smiles) - len(failed), failed, n_duplicate


def write_atomically(path: Path, data: bytes) -> None:
    """Never leave a half-written data file behind if the build is interrupted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="output .csv.gz")
    parser.add_argument(
        "--no-rdkit", action="store_true", help="skip the RDKit parse check (faster)"
    )
    args = parser.parse_args(argv)

    try:
        data_dir = find_qm9pack_data()
        df = read_qm9(data_dir)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    csv_bytes = to_csv_bytes(df)
    gz = gzip_bytes(csv_bytes)
    write_atomically(args.output, gz)

    print(f"source:          qm9pack {importlib.metadata.version('qm9pack')} ({data_dir})")
    print(f"output:          {args.output}")
    print(f"rows:            {len(df)}")
    print(f"size:            {len(gz)} bytes (uncompressed CSV {len(csv_bytes)} bytes)")
    print(f"sha256 (.gz):    {hashlib.sha256(gz).hexdigest()}")
    print(f"sha256 (.csv):   {hashlib.sha256(csv_bytes).hexdigest()}")
    if not args.no_rdkit:
        import rdkit

        n_ok, failed, n_dup = rdkit_parse_count(df["smiles"].tolist())
        print(f"rdkit:           {rdkit.__version__}")
        print(f"rdkit parses:    {n_ok} / {len(df)}")
        print(f"canonical dups:  {n_dup}")
        for smi in failed[:20]:
            print(f"  unparseable:   {smi}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
