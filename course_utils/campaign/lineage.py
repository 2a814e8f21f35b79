"""Model versions and their lineage: every model a campaign trains, saved beside its data.

In a run folder:
  models/vNNNN.joblib  the fitted model part itself (a :class:`~course_utils.ml.contract.Model`,
                       e.g. :class:`~course_utils.ml.knn.KNN`; older runs saved a bare KNNModel)
  models/vNNNN.json    what made it: the model's ``describe()`` (name, options, fitted
                       hyperparameters), time, trigger, data version (simulation records that
                       existed) and a content hash of its training set, train and validation
                       sizes and metrics, the labels that failed since the previous version,
                       parameters, package versions, and the SHA-256 of the model file
  lineage.csv          one row per version, for pandas and for people

A version is saved in that order (model, JSON, lineage row), each step atomic, so a crash leaves
at worst a model without its JSON or a JSON without its lineage row. :meth:`ModelLineage.open`
repairs those and reports any other disagreement (a torn lineage row is cut off, one that does
not parse is moved to lineage.rejected.csv); numbering always goes on after the highest version
seen anywhere, so no number is ever used twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.ml.registry import as_model
from course_utils.records.jsonfiles import atomic_write_json
from course_utils.records.ledger import Ledger, RecordFile
from course_utils.records.rows import STATUS_FAILED, STATUS_TIMEOUT
from course_utils.resilience import error_message

MODELS_DIR = "models"
LINEAGE_FILE = "lineage.csv"
LINEAGE_FIELDS = [
    "version", "time", "trigger", "data_version", "training_hash", "train_size", "valid_size",
    "valid_mae_ev", "valid_r2", "failed_since_previous", "train_time_s", "model_file",
    "valid_within_1sd", "valid_within_2sd",  # added later: new columns go at the end
]
#: lineage.csv: its columns, what they must hold (a row that does not is set aside), how it is read.
LINEAGE = RecordFile(
    LINEAGE_FILE, LINEAGE_FIELDS,
    {"version": "int", "data_version": "int",  # what a resume reads back
     "train_size": "int?", "valid_size": "int?",
     "valid_mae_ev": "float?", "valid_r2": "float?", "failed_since_previous": "int?",
     "train_time_s": "float?", "model_file": "text?", "valid_within_1sd": "float?",
     "valid_within_2sd": "float?"},
    {"keep_default_na": False, "na_values": [""], "dtype": {"trigger": str}})
_NAME = re.compile(r"^v(\d{4,})\.(joblib|json)$")


class LineageError(ValueError):
    """A model version that cannot be trusted or found; the message says which and why."""


def version_name(version: int) -> str:
    return f"v{version:04d}"


def training_hash(training: pd.DataFrame) -> str:
    """Content hash of a training set (SMILES and IE, order-independent)."""
    lines = sorted(f"{s}\t{float(v)!r}" for s, v in zip(training["smiles"], training["ie"],
                                                          strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def failed_labels(records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The simulations among ``records`` whose label failed, kept with their errors."""
    return [{"smiles": r["smiles"], "status": r["status"], "error": r["error"]}
            for r in records if r["status"] in (STATUS_FAILED, STATUS_TIMEOUT)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_lineage(run_dir: str | os.PathLike) -> pd.DataFrame:
    """lineage.csv of a run folder (an empty frame with its columns if there is none)."""
    return LINEAGE.read(run_dir)


@dataclass
class ModelLineage:
    """The model versions of one run folder."""

    run_dir: Path
    #: Appends the lineage rows (the run's ledger: one ``durable`` flag for all its records).
    ledger: Ledger
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    next_version: int = 1

    @property
    def models_dir(self) -> Path:
        return self.run_dir / MODELS_DIR

    @property
    def last(self) -> dict | None:
        return self.rows[-1] if self.rows else None

    @classmethod
    def open(cls, run_dir: str | os.PathLike, ledger: Ledger | None = None) -> ModelLineage:
        """Read the versions a previous session left, repairing what a crash can leave;
        rows are appended through ``ledger`` (the run's, else one of this folder's own)."""
        registry = cls(Path(run_dir), Ledger.of(run_dir, ledger))
        registry._reconcile()
        for note in registry.notes:
            print(f"note: {note}", file=sys.stderr)
        return registry

    def _reconcile(self) -> None:
        # A torn or garbage row (a kill mid-append) must not block the resume: cut or set aside.
        self.notes += self.ledger.tidy(LINEAGE)
        files: dict[int, set[str]] = {}
        if self.models_dir.is_dir():
            for path in self.models_dir.iterdir():
                match = _NAME.match(path.name)
                if match:
                    files.setdefault(int(match.group(1)), set()).add(match.group(2))
        lineage = read_lineage(self.run_dir)
        listed = [int(v) for v in lineage["version"].tolist()]
        self.rows = lineage.to_dict("records")
        for version in sorted(set(files) - set(listed)):
            name = version_name(version)
            kinds = files[version]
            if kinds == {"joblib"}:  # saved, but the run ended before its JSON: never used
                (self.models_dir / f"{name}.joblib").unlink()
                self.notes.append(f"models/{name}.joblib had no JSON (an interrupted save); "
                                  "removed it")
            elif kinds == {"json", "joblib"} and self._intact(version):
                row = _lineage_row(json.loads((self.models_dir / f"{name}.json").read_text()))
                self.rows.append(row)
                self._append(row)
                self.notes.append(f"{LINEAGE_FILE} lacked {name} (an interrupted save); added it "
                                  f"from models/{name}.json")
            else:
                self.notes.append(f"models/{name}.* is not in {LINEAGE_FILE} and is incomplete "
                                  "or altered; it is ignored (not a version of this run)")
        for version in listed:
            if files.get(version) != {"json", "joblib"}:
                self.notes.append(f"{LINEAGE_FILE} lists {version_name(version)} but its model "
                                  f"files in {MODELS_DIR}/ are missing; its row is kept as a record "
                                  "(the model is retrained)")
        self.rows.sort(key=lambda r: int(r["version"]))
        self.next_version = max([0, *files, *listed]) + 1

    def _intact(self, version: int) -> bool:
        try:
            load_model_version(self.models_dir / version_name(version))
        except LineageError:
            return False
        return True

    def _append(self, row: Mapping[str, Any]) -> None:
        self.ledger.append(LINEAGE, row)

    def save(self, model: Any, meta: Mapping[str, Any]) -> dict:
        """Save the next version: model file, then its JSON, then its lineage row."""
        import joblib

        self.models_dir.mkdir(parents=True, exist_ok=True)
        version = self.next_version
        name = version_name(version)
        model_path = self.models_dir / f"{name}.joblib"
        tmp = model_path.with_name(model_path.name + ".tmp")
        joblib.dump(model, tmp)
        os.replace(tmp, model_path)
        info = {"version": version, "name": name,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                **dict(meta), "model_file": f"{MODELS_DIR}/{name}.joblib",
                "model_sha256": _sha256(model_path)}
        atomic_write_json(self.models_dir / f"{name}.json", info)
        row = _lineage_row(info)
        self._append(row)
        self.rows.append(row)
        self.next_version = version + 1
        return info


def _lineage_row(info: Mapping[str, Any]) -> dict:
    row = {k: info.get(k) for k in LINEAGE_FIELDS}
    failed = info.get("failed_since_previous")
    row["failed_since_previous"] = len(failed) if isinstance(failed, list) else failed
    return row


def _version_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``RUN/models/v0007``, ``...v0007.json`` or ``...v0007.joblib`` -> (joblib, json)."""
    path = Path(path)
    if path.suffix in (".json", ".joblib"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".joblib"), path.with_name(path.name + ".json")


def load_model_version(path: str | os.PathLike) -> tuple[Any, dict]:
    """The model of one saved version (a model part) and its JSON, checked against each other.

    Raises :class:`LineageError` if either file is missing, the JSON names another version or
    another model file, or the model file's content is not the one the JSON recorded.
    """
    import joblib

    model_path, json_path = _version_paths(path)
    for p in (json_path, model_path):
        if not p.is_file():
            raise LineageError(f"model version {model_path.with_suffix('')}: {p} is missing; "
                               f"saved versions are models/vNNNN.joblib with models/vNNNN.json")
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise LineageError(f"{json_path} is not valid JSON ({err})") from None
    stem = model_path.with_suffix("").name
    if not isinstance(info, dict) or info.get("name") != stem:
        raise LineageError(f"{json_path} describes {info.get('name') if isinstance(info, dict) else '?'}"
                           f", not {stem}: the model and its JSON disagree")
    if info.get("model_sha256") != _sha256(model_path):
        raise LineageError(f"{model_path} is not the model {json_path.name} recorded (its SHA-256 "
                           "differs): the model and its JSON disagree; refusing to predict")
    try:  # a checksum only proves the JSON was updated with the file: not that it loads
        model = as_model(joblib.load(model_path))
    except Exception as err:  # noqa: BLE001 - unpickling garbage raises anything (KeyError: 110)
        raise LineageError(f"{model_path} cannot be loaded as a model ({type(err).__name__}: "
                           f"{error_message(err)}); "
                           "refusing to predict") from None
    if not callable(getattr(model, "predict", None)):
        raise LineageError(f"{model_path} holds a {type(model).__name__}, not a model; "
                           "refusing to predict")
    return model, info


def lineage_line(info: Mapping[str, Any]) -> str:
    mae = info.get("valid_mae_ev")
    held_out = (info.get("parameters") or {}).get("valid_fraction")
    valid = (f"validation MAE {mae:.3f} eV on {info.get('valid_size')}"
             if isinstance(mae, float) and mae == mae
             else "no validation molecule yet" if held_out else "no validation set")
    return (f"model {info.get('name')} (data version {info.get('data_version')}, trained on "
            f"{info.get('train_size')} molecules, {valid}; trigger: {info.get('trigger')})")


def predict_with_version(path: str | os.PathLike, smiles: Sequence[str]
                         ) -> tuple[pd.DataFrame, dict]:
    """Predicted IE and spread (eV) for each SMILES, with an ``error`` for those RDKit rejects.

    Rows keep the input order and numbering (``row``, from 1); a bad SMILES never stops the
    others from being predicted.
    """
    from rdkit import Chem, RDLogger

    model, info = load_model_version(path)
    RDLogger.DisableLog("rdApp.*")
    try:
        valid = [isinstance(s, str) and bool(s.strip()) and Chem.MolFromSmiles(s) is not None
                 for s in smiles]
    finally:
        RDLogger.EnableLog("rdApp.*")
    frame = pd.DataFrame({"row": range(1, len(smiles) + 1), "smiles": list(smiles),
                          "ie": float("nan"), "ie_spread": float("nan"),
                          "error": ["" if ok else "invalid SMILES (RDKit could not parse it)"
                                    for ok in valid]})
    good = [s for s, ok in zip(smiles, valid, strict=True) if ok]
    if good:
        ie, spread = model.predict(good)
        frame.loc[valid, "ie"] = ie
        frame.loc[valid, "ie_spread"] = spread
    return frame, info
