"""Packing finished build files into the shipped table, with its provenance, and build status."""

from __future__ import annotations

import json
import os
import platform
import socket
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from course_utils import chemistry
from course_utils.ground_truth.build import build_log_path, utc_now
from course_utils.ground_truth.shipped import space_size
from course_utils.ground_truth.table import (
    BUILD_ORDER_SEED,
    FINAL_STATUSES,
    Coverage,
    GroundTruthError,
    default_build_file,
    package_data_dir,
    packaged_provenance_name,
    packaged_table_name,
    packaged_table_path,
    read_table,
)
from course_utils.records.jsonfiles import dumps_json
from course_utils.search_space import load_search_space

if TYPE_CHECKING:
    import pandas as pd


def pack_ground_truth(space: str, build_files: Iterable[str | os.PathLike],
                      dest_dir: str | os.PathLike) -> Path:
    """Merge build files with the shipped table into ``dest_dir`` (search-space order), with
    its provenance: ``SPACE_ground_truth.csv.gz`` and ``.provenance.json``.

    The package's own files are only read: a table packed earlier into ``dest_dir`` (else the
    shipped one) is the base, settled rows win over ``lost`` ones. Shipping the result is a
    maintainer's copy into ``course_utils/data``, never a command's side effect.
    Raises :class:`GroundTruthError` (one line) for a build file that is not there, or a
    ``dest_dir`` inside the installed package, before anything is written.
    """
    import pandas as pd

    build_files = [Path(f) for f in build_files]
    if not build_files:
        raise GroundTruthError("no build file to pack: give the files `truth build` wrote")
    for f in build_files:
        if not f.is_file():
            raise GroundTruthError(f"build file {f} not found; give the files `truth build` wrote")
    dest = Path(dest_dir)
    package = package_data_dir().resolve()
    if dest.resolve() == package or dest.resolve().is_relative_to(package):
        raise GroundTruthError(
            f"{dest} is inside the installed package ({package}); pack into a folder of yours "
            "(--out) and copy the two files into course_utils/data by hand to ship them")
    if dest.exists() and not dest.is_dir():
        raise GroundTruthError(f"{dest} is a file, not a folder; give --out a folder")
    table = dest / packaged_table_name(space)
    base = table if table.exists() else package_data_dir() / packaged_table_name(space)
    frames = [read_table(base)] + [read_table(f) for f in build_files]
    merged = pd.concat(frames, ignore_index=True)
    merged["_settled"] = merged["status"].isin(FINAL_STATUSES)
    merged = merged.sort_values("_settled", kind="stable").drop_duplicates("smiles", keep="last")
    merged = merged[merged["_settled"]].drop(columns="_settled")
    position = {s: i for i, s in enumerate(load_search_space(space)["smiles"])}
    unknown = [s for s in merged["smiles"] if s not in position]
    if unknown:
        raise GroundTruthError(f"{len(unknown)} molecules are not in {space!r}, e.g. {unknown[0]}")
    merged = merged.assign(_pos=merged["smiles"].map(position)).sort_values("_pos")
    merged = merged.drop(columns="_pos")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = table.with_suffix(".tmp")
    merged.to_csv(tmp, index=False, float_format="%.6f", compression={"method": "gzip", "mtime": 0})
    os.replace(tmp, table)
    _write_provenance(space, dest, merged, build_files)
    return table


def _write_provenance(space: str, dest: Path, table: pd.DataFrame,
                      build_files: Iterable[str | os.PathLike]) -> None:
    path = dest / packaged_provenance_name(space)
    shipped = package_data_dir() / packaged_provenance_name(space)
    source = path if path.exists() else shipped  # the package's own is read, never written
    try:
        old = json.loads(source.read_text()) if source.exists() else {}
    except ValueError as err:
        raise GroundTruthError(f"cannot read {source}: {err}") from None
    old = old if isinstance(old, dict) else {}
    builds = old.get("builds", [])
    seen = {json.dumps(b, sort_keys=True) for b in builds}
    for f in build_files:
        log = build_log_path(Path(f))
        if log.exists():
            for line in log.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                key = json.dumps(entry, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    builds.append(entry)
    total = space_size(space)
    failures = table.loc[table["status"] != "ok"]
    provenance = {
        "table": packaged_table_name(space),
        "search_space": space,
        "molecules": total,
        "covered": int(len(table)),
        "complete": bool(len(table) >= total),
        "protocol": (
            "GFN2-xTB vertical ionization energy in eV: RDKit ETKDG embedding (randomSeed="
            f"{chemistry.EMBED_SEED}, retries with other seeds and random coordinates), MMFF "
            f"pre-optimization, GFN2-xTB relaxation of the neutral (accuracy {chemistry.ACCURACY}, "
            f"LBFGSLineSearch, fmax {chemistry.FMAX} eV/A, <= {chemistry.MAX_STEPS} steps), "
            "single point of the cation (+1, doublet); IE = E(cation) - E(neutral). "
            "One thread per simulation. course_utils.chemistry.compute_vertical."
        ),
        "build_order": f"seeded permutation (numpy default_rng({BUILD_ORDER_SEED})) of the space",
        "engines": dict(Counter(table["engine"])),
        "statuses": dict(Counter(table["status"])),
        "failures_by_error": dict(Counter(e.split(":")[0] for e in failures["error"])),
        "compute_core_hours": round(float(table["seconds"].sum()) / 3600, 2),
        "mean_seconds_per_molecule": round(float(table["seconds"].mean()), 3) if len(table) else None,
        "builds": builds,
        "machine_of_last_pack": {"host": socket.gethostname(), "platform": platform.platform(),
                                 "cpus": os.cpu_count()},
        "packed": utc_now(),
    }
    path.write_text(dumps_json(provenance, indent=1) + "\n")


#: The estimate of what remains uses this many of the build's latest rows, when it has them.
RECENT_ROWS = 2000


def seconds_per_molecule(table: pd.DataFrame, build: pd.DataFrame) -> tuple[float, str]:
    """Seconds a molecule costs, and what that is the mean of.

    The build's latest rows when there are enough: they measure the machine as it is now. Rows
    of older builds may have been timed on a busier machine (a test suite beside a niced build
    nearly doubles them), which would overstate what remains.
    """
    recent = build[build["status"].isin(FINAL_STATUSES)]["seconds"].dropna().tail(RECENT_ROWS)
    if len(recent) >= RECENT_ROWS // 10:
        return float(recent.mean()), f"mean of the build's latest {len(recent):,}"
    settled = table[table["status"].isin(FINAL_STATUSES)]["seconds"].dropna()
    if len(settled):
        return float(settled.mean()), f"mean of {len(settled):,} in the table"
    return 0.5, "a guess: nothing is timed yet"


def truth_status(space: str = "qm9", build_file: str | os.PathLike | None = None,
                 workers: int | None = None) -> str:
    """Coverage, failures by type and the compute still to do, as lines of text."""
    import pandas as pd

    if build_file is not None and not Path(build_file).is_file():
        raise GroundTruthError(f"build file {build_file} not found; give the file `truth build` "
                               "wrote (--out), or leave --out out for the default one")
    build = Path(build_file) if build_file is not None else default_build_file(space)
    built = read_table(build)
    frames = [built]
    if packaged_table_path(space).exists():
        frames.insert(0, read_table(packaged_table_path(space)))
    table = pd.concat(frames, ignore_index=True).drop_duplicates("smiles", keep="last")
    settled = table[table["status"].isin(FINAL_STATUSES)]
    total = space_size(space)
    lines = [str(Coverage(len(settled), total, space)) + f" ({len(settled) / total:.1%})",
             f"  shipped table: {packaged_table_path(space)}"
             + ("" if packaged_table_path(space).exists() else " (none yet)"),
             f"  build file:    {build}" + ("" if build.exists() else " (none yet)")]
    counts = Counter(table["status"])
    lines.append("  statuses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    failed = table[table["status"] != "ok"]
    if len(failed):
        kinds = Counter(e.split(":")[0] or "(no message)" for e in failed["error"])
        lines.append("  failures by type: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    mean, basis = seconds_per_molecule(table, built)
    remaining = max(total - len(settled), 0)
    core_hours = remaining * mean / 3600
    n = workers or os.cpu_count() or 1
    lines.append(f"  remaining: {remaining:,} molecules, about {core_hours:.1f} core-hours "
                 f"({mean:.2f} s each, {basis}), {core_hours / n:.1f} h on {n} workers")
    return "\n".join(lines)
