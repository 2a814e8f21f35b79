"""The kit's cache folder: fingerprints, compiled kernels' links and other rebuildable files.

On the ground floor because both the models (:mod:`course_utils.ml.fingerprints`) and the Parsl
configurations (:mod:`course_utils.configs`) keep files there.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Resolve the cache directory at call time so env changes (tests, notebooks) apply."""
    env = os.environ.get("COURSE_UTILS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "course_utils"
