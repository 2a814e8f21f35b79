"""Submissions that are copies of each other: grouped, reported, and not ranked until decided.

Two honest runs with different parameters or seeds never simulate the same molecules: the
initial batch alone is a seeded random draw from the space. Runs that share their records are
copies (or the same parameters and seed run twice, which the instructor should know about too):

- the same simulations in the same order (molecules and statuses, whatever the IEs and times
  say: editing numbers does not make a copy one's own);
- the same set of molecules simulated, in any order;
- a model file (``models/v*.joblib``) with the same bytes;
- nearly the same molecules: at least ``NEAR_IDENTICAL`` of the union of two runs' molecules
  is in both (a copy with a few rows deleted or added).

Each group is one line of the report and rows of ``duplicates.csv``; none of them is ranked
unless the grader is told to (``--rank-duplicates``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DUPLICATES_CSV = "duplicates.csv"
MODELS_DIR = "models"
#: Share of two runs' molecules (of their union) both simulated, above which they are grouped.
#: Different seeds draw different initial molecules out of 130,831, and the searches that
#: follow share at most their few best picks; a copy shares everything but its edits.
NEAR_IDENTICAL = 0.9


@dataclass(frozen=True)
class DuplicateGroup:
    """Runs that share records, and what they share."""

    runs: tuple[str, ...]
    shared: tuple[str, ...]

    def line(self) -> str:
        return f"{', '.join(self.runs)}: {'; '.join(self.shared)}"


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def signatures(run_dir: Path, sims: pd.DataFrame) -> dict[str, str]:
    """What identifies a run's records: kind of evidence -> a hash of it."""
    rows = sims[sims["status"] != "lost"]
    smiles = rows["smiles"].astype(str).tolist()
    out = {}
    if smiles:
        statuses = rows["status"].astype(str).tolist()
        out["the same simulations in the same order"] = _digest(
            [f"{s}\t{t}" for s, t in zip(smiles, statuses, strict=True)])
        out["the same molecules simulated"] = _digest(sorted(set(smiles)))
    for model in sorted((run_dir / MODELS_DIR).glob("*.joblib")):
        try:
            data = model.read_bytes()
        except OSError:
            continue
        out[f"model {model.name}"] = hashlib.sha256(data).hexdigest()
    return out


def molecules(sims: pd.DataFrame) -> frozenset[str]:
    return frozenset(sims.loc[sims["status"] != "lost", "smiles"].astype(str))


def find_duplicates(signed: Mapping[str, Mapping[str, str]],
                    simulated: Mapping[str, frozenset[str]] | None = None) -> list[DuplicateGroup]:
    """Groups of runs (by label) connected by any shared signature or nearly the same
    molecules (``simulated``: label -> its molecules), with what they share."""
    parent = {label: label for label in signed}

    def root(label: str) -> str:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    holders: dict[tuple[str, str], list[str]] = {}
    for label, sigs in signed.items():
        for kind, digest in sigs.items():
            holders.setdefault((kind, digest), []).append(label)
    labels_of = list((simulated or {}).items())
    for i, (a, mols_a) in enumerate(labels_of):
        for b, mols_b in labels_of[i + 1:]:
            union = len(mols_a | mols_b)
            share = len(mols_a & mols_b) / union if union else 0.0
            if share >= NEAR_IDENTICAL and mols_a != mols_b:
                holders[(f"{share:.0%} of their molecules in common", f"{a}|{b}")] = [a, b]
    for labels in holders.values():
        for other in labels[1:]:
            parent[root(other)] = root(labels[0])
    groups: dict[str, list[str]] = {}
    for label in signed:
        groups.setdefault(root(label), []).append(label)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        shared = [kind for (kind, _), labels in holders.items()
                  if len(labels) > 1 and set(labels) <= set(members)]
        models = [kind.removeprefix("model ") for kind in shared if kind.startswith("model ")]
        shared = [kind for kind in shared if not kind.startswith("model ")]
        if models:
            shared.append(f"the same bytes in model file(s) {', '.join(dict.fromkeys(models))}")
        out.append(DuplicateGroup(tuple(sorted(members)), tuple(dict.fromkeys(shared))))
    return sorted(out, key=lambda g: g.runs)


def duplicates_frame(groups: Sequence[DuplicateGroup]) -> pd.DataFrame:
    """``duplicates.csv``: one row per run of a group: group number, run, what it shares."""
    rows = [{"group": i, "run": run, "shared": "; ".join(g.shared),
             "with": ", ".join(r for r in g.runs if r != run)}
            for i, g in enumerate(groups, 1) for run in g.runs]
    return pd.DataFrame(rows, columns=["group", "run", "shared", "with"])
