"""Helpers for the ML-in-the-loop course kit.

Importing this package is cheap and has no side effects: heavy libraries
(RDKit, xTB, Parsl) are imported by the submodules that need them.
"""

__version__ = "0.1.0"
