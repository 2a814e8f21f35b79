"""JSON files of a run: one strict writer (``null``, never ``NaN``), atomic saves, tolerant readers.

Every JSON file the kit writes goes through :func:`dumps_json`, so no file holds a NaN or
Infinity that other JSON readers refuse; a run killed mid-save leaves at worst a ``*.tmp`` file
beside the last finished one (:func:`atomic_write_json`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def strict_json(value: Any) -> Any:
    """``value`` as plain JSON data: NaN, Infinity and pandas' NA become None (``null``); numpy
    scalars and arrays, tuples, sets and paths become numbers, lists and strings."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_json_key(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        return strict_json(value.item())
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else value.isoformat()
    try:
        if pd.isna(value):  # pd.NA, pd.NaT
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _json_key(key: Any) -> Any:
    key = strict_json(key)
    return key if isinstance(key, str | int | bool | float) or key is None else str(key)


def dumps_json(data: Any, **options: Any) -> str:
    """The kit's one JSON writer: strict (``allow_nan=False``), so a NaN left anywhere raises
    here instead of writing a file other JSON readers refuse."""
    return json.dumps(strict_json(data), allow_nan=False, **options)


def atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps_json(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def load_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A run's JSON file as a dict; OSError if unreadable, ValueError if torn or not an object."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def read_json_object(path: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`load_json_object`, or None if the file is missing, torn, empty or not an object."""
    try:
        return load_json_object(path)
    except (OSError, ValueError):
        return None

