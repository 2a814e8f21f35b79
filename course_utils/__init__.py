"""Helpers for the ML-in-the-loop course kit, organized by the parts of one campaign engine.

Importing this package is cheap and has no side effects: heavy libraries (RDKit, xTB, Parsl)
are imported by the submodules that need them. Each subpackage's ``__init__`` names its public
parts and imports a part's module only when the part is first used, so
``from course_utils.campaign import Campaign`` costs what ``Campaign`` needs and nothing more.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__version__ = "0.1.0"


def lazy_exports(package: str, homes: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a subpackage: each public name from its home module."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
