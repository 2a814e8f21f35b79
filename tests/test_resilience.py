"""One way to turn an error into a line: recorded reasons, and what a command prints."""

from __future__ import annotations

import pytest

from course_utils.resilience import error_message, fail, one_line


def test_a_recorded_reason_names_the_type_and_joins_the_lines():
    assert one_line(ValueError("bad\n  value"), limit=14) == "ValueError: ba"
    assert one_line("two\nlines") == "two lines"


@pytest.mark.parametrize(("err", "expected"), [
    (ValueError("first\nsecond"), "first"), (ValueError("\n  indented\nnext"), "indented"),
    (KeyError("k"), "'k'"), (ValueError(""), "ValueError"), (OSError(), "OSError"),
    ("a detail\nmore", "a detail"), (" ", "")])
def test_a_command_shows_the_first_line_or_the_type(err, expected):
    assert error_message(err) == expected


@pytest.mark.parametrize(("problem", "line"), [
    ("--out o is a file", "error: --out o is a file\n"),
    (ValueError("no such table\nsee the docs"), "error: no such table\n"),
    (LookupError(), "error: LookupError\n")])
def test_fail_prints_one_error_line_and_returns_2(problem, line, capsys):
    assert fail(problem) == 2
    assert capsys.readouterr() == ("", line)
