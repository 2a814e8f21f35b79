"""The sweep file format: one parameter set per line, ``name=value`` words, ``#`` comments.

Its own module because two tools read it: :mod:`course_utils.polaris.pbs` (one job per line, or one
halving job) and :mod:`course_utils.studies.sweep` (the runs of a sweep). Neither owns the other.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SweepFileError(ValueError):
    """A sweep file (or ``name=value`` words) that cannot be read; one line naming the problem."""


def parse_value(text: str):
    """A parameter as papermill will see it: a number, bool, None or dict if it reads as one."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_sweep(path: str | os.PathLike) -> list[dict[str, str]]:
    """A sweep file: one parameter set per line (``name=value`` words); # starts a comment."""
    sets = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            try:
                sets.append(parse_assignments(shlex.split(line)))
            except SweepFileError as err:
                raise SweepFileError(f"{path}, line {number}: {err}") from None
    if not sets:
        raise SweepFileError(f"{path} holds no parameter set (one line of name=value words each)")
    return sets


def parse_assignments(words: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` as ``{"a": "1", "b": "x"}``; a word without ``name=``, or a name
    given twice, is refused."""
    out = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not _NAME.match(name):
            raise SweepFileError(f"expected name=value, got {word!r}")
        if name in out:  # the last one winning unseen would run another configuration
            raise SweepFileError(f"{name} is given twice ({name}={out[name]} and {word})")
        out[name] = value
    return out
