"""The package's shape (issue 31): small modules, a thin campaign, loops that only call.

Read with `ast`, never imported. Each rule also runs on a small bad example, so it is seen to
fail when it should.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "course_utils"
CAMPAIGN = PACKAGE_DIR / "campaign"
#: A module that outgrows this has more than one job: split it along the parts it has.
MAX_MODULE_LINES = 500
#: The campaign's public steps and properties: what notebook 3 and the loops call.
MAX_CAMPAIGN_PUBLIC = 20
#: The batch loop reads top to bottom on one screen.
MAX_LOOP_LINES = 40
LOOPS = {"batch_loop.py": "run_batches", "streaming_loop.py": "run_streaming"}


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    return [f"{p.relative_to(root)}: {n} lines" for p in sorted(root.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit]


def public_members(source: str, class_name: str) -> list[str]:
    """Public methods and properties of ``class_name`` (attributes set in code are not)."""
    tree = ast.parse(source)
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name)
    return [n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and not n.name.startswith("_")]


def attribute_writes(source: str) -> list[str]:
    """``x.attr = ...`` (or ``+=``) anywhere in ``source``: a loop writing another's state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store):
                    found.append(f"line {t.lineno}: .{t.attr}")
    return found


def function_lines(source: str, name: str) -> int:
    fn = next(n for n in ast.walk(ast.parse(source))
              if isinstance(n, ast.FunctionDef) and n.name == name)
    return fn.end_lineno - fn.lineno + 1


def stop_rule_definitions(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*.py"))
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(n, ast.ClassDef) and n.name == "StopRule"]


def test_no_module_is_over_500_lines():
    assert long_modules(PACKAGE_DIR) == []


def test_the_campaign_has_at_most_20_public_methods():
    members = public_members((CAMPAIGN / "runner.py").read_text(encoding="utf-8"), "Campaign")
    assert "run" in members and "pick" in members  # the parser sees the class
    assert len(members) <= MAX_CAMPAIGN_PUBLIC, members


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_the_loops_never_set_another_objects_attributes(loop):
    assert attribute_writes((CAMPAIGN / loop).read_text(encoding="utf-8")) == []


def test_the_batch_loop_fits_on_one_screen():
    source = (CAMPAIGN / "batch_loop.py").read_text(encoding="utf-8")
    assert function_lines(source, LOOPS["batch_loop.py"]) <= MAX_LOOP_LINES


def test_stop_rule_is_defined_once():
    assert stop_rule_definitions(PACKAGE_DIR) == ["campaign/stopping.py"]


def test_status_words_are_spelled_only_in_status():
    """``grading``, ``__main__`` and the campaign import the status names; none re-spells one."""
    words = {"stopped early", "interrupted", "complete"}
    offences = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name == "status.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in words for c in node.comparators)):
                offences.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno}")
    assert offences == []


# --- each rule fails on a bad example ---------------------------------------------------------
def test_the_rules_fail_on_bad_examples(tmp_path):
    (tmp_path / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert long_modules(tmp_path) == [f"big.py: {MAX_MODULE_LINES + 1} lines"]
    fat = "class Campaign:\n" + "".join(f"    def step{i}(self): pass\n" for i in range(21))
    assert len(public_members(fat, "Campaign")) == 21
    assert attribute_writes("def loop(c):\n    c.keeper.n_ok_at_fit = 3\n") == [
        "line 2: .n_ok_at_fit"]
    assert attribute_writes("def loop(c):\n    c.count += 1\n") == ["line 2: .count"]
    assert function_lines("def run_batches():\n" + "    pass\n" * 50, "run_batches") == 51
    (tmp_path / "a.py").write_text("class StopRule:\n    pass\n")
    (tmp_path / "b.py").write_text("class StopRule:\n    pass\n")
    assert stop_rule_definitions(tmp_path) == ["a.py", "b.py"]
