"""Tests for course_utils.search_space: bundled QM9, user files, and seeded sampling."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import pytest

from course_utils.search_space import (
    QM9_SIZE,
    SearchSpaceError,
    SearchSpaceReport,
    SearchSpaceWarning,
    iter_unseen,
    load_search_space,
    sample_smiles,
)

# Line numbers below count the header as line 1.
MESSY_CSV = (
    "smiles,name\n"
    "CCO,ethanol\n"  # line 2: good
    "C1CC,broken ring\n"  # line 3: unparseable
    ",no smiles\n"  # line 4: empty
    "OC,methanol\n"  # line 5: good
    "OC,methanol again\n"  # line 6: duplicate of line 5
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def qm9():
    return load_search_space("qm9")


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "mine.csv", MESSY_CSV)


# ----------------------------------------------------------------------------- bundled QM9


def test_qm9_size_and_columns(qm9):
    assert len(qm9) == QM9_SIZE == 130_831
    assert list(qm9.columns) == ["qm9_index", "smiles"]
    assert qm9["qm9_index"].is_unique
    assert qm9["qm9_index"].is_monotonic_increasing


def test_qm9_known_entries(qm9):
    by_index = qm9.set_index("qm9_index")["smiles"]
    assert by_index[1] == "C"
    assert by_index[2] == "N"
    assert by_index[3] == "O"
    assert by_index[7] == "CC"


def test_qm9_smiles_non_empty(qm9):
    assert qm9["smiles"].str.strip().str.len().min() > 0


def test_qm9_report_marks_unvalidated(qm9):
    report = qm9.attrs["report"]
    assert isinstance(report, SearchSpaceReport)
    assert report.validated is False
    assert report.n_rows_read == report.n_valid == QM9_SIZE


def test_qm9_returns_independent_copies():
    first = load_search_space("qm9")
    first.loc[0, "smiles"] = "corrupted"
    del first["qm9_index"]
    second = load_search_space("qm9")
    assert second.loc[0, "smiles"] == "C"
    assert list(second.columns) == ["qm9_index", "smiles"]


def test_qm9_bundled_file_is_plain_gzip_csv():
    data = Path(__file__).parent.parent / "course_utils" / "data" / "qm9_search_space.csv.gz"
    with gzip.open(data, "rt", encoding="ascii") as fh:
        assert fh.readline() == "qm9_index,smiles\n"
        assert fh.readline() == "1,C\n"


# ------------------------------------------------------------------------------ user files


def test_messy_csv_warns_and_keeps_only_valid_unique(messy_csv: Path):
    with pytest.warns(SearchSpaceWarning) as record:
        df = load_search_space(messy_csv)
    assert df["smiles"].tolist() == ["CCO", "OC"]
    assert df["name"].tolist() == ["ethanol", "methanol"]
    message = str(record[0].message)
    assert "C1CC" in message and "line 3" in message


def test_messy_csv_report_lists_each_bad_row(messy_csv: Path):
    with pytest.warns(SearchSpaceWarning):
        df = load_search_space(messy_csv)
    report = df.attrs["report"]
    assert report.n_rows_read == 5
    assert report.n_valid == 2
    assert [(i.line, i.smiles) for i in report.invalid] == [(3, "C1CC")]
    assert "RDKit" in report.invalid[0].reason
    assert [(i.line, i.smiles) for i in report.empty] == [(4, "")]
    assert [(i.line, i.smiles) for i in report.duplicates] == [(6, "OC")]
    assert "line 5" in report.duplicates[0].reason

    summary = report.summary()
    for expected in ("removed 3", "line 3", "'C1CC'", "line 4", "line 6", "'OC'"):
        assert expected in summary


def test_on_invalid_raise_names_bad_smiles(messy_csv: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # raising must replace the warning, not add to it
        with pytest.raises(SearchSpaceError, match="C1CC") as excinfo:
            load_search_space(messy_csv, on_invalid="raise")
    assert excinfo.value.report is not None
    assert len(excinfo.value.report.duplicates) == 1


def test_unknown_on_invalid_rejected(messy_csv: Path):
    with pytest.raises(ValueError, match="on_invalid"):
        load_search_space(messy_csv, on_invalid="ignore")


def test_clean_file_does_not_warn(tmp_path: Path):
    path = write(tmp_path / "clean.csv", "smiles\nCCO\nc1ccccc1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = load_search_space(path)
    assert df["smiles"].tolist() == ["CCO", "c1ccccc1"]
    assert not df.attrs["report"].has_issues


def test_original_smiles_kept_not_canonicalized(tmp_path: Path):
    path = write(tmp_path / "kekule.csv", "smiles\nC1=CC=CC=C1\nOCC\n")
    df = load_search_space(path)
    assert df["smiles"].tolist() == ["C1=CC=CC=C1", "OCC"]


def test_tsv_with_case_insensitive_column_and_numeric_side_column(tmp_path: Path):
    path = write(tmp_path / "mine.tsv", "name\tSMILES\tie_ev\nethanol\tCCO\t10.5\nwater\tO\t12.6\n")
    df = load_search_space(path)
    assert df["smiles"].tolist() == ["CCO", "O"]
    assert df["ie_ev"].tolist() == [10.5, 12.6]


def test_semicolon_delimiter_is_sniffed(tmp_path: Path):
    path = write(tmp_path / "excel.txt", "id;smiles\n1;CCO\n2;CCN\n")
    df = load_search_space(path)
    assert df["smiles"].tolist() == ["CCO", "CCN"]
    assert df["id"].tolist() == [1, 2]


def test_gzipped_csv(tmp_path: Path):
    path = tmp_path / "mine.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("smiles\nCCO\nCC#N\n")
    assert load_search_space(path)["smiles"].tolist() == ["CCO", "CC#N"]


def test_missing_smiles_column_names_found_columns(tmp_path: Path):
    path = write(tmp_path / "nosmiles.csv", "structure,name\nCCO,ethanol\n")
    with pytest.raises(SearchSpaceError, match="smiles") as excinfo:
        load_search_space(path)
    assert "structure" in str(excinfo.value) and "name" in str(excinfo.value)


def test_missing_file(tmp_path: Path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(SearchSpaceError, match="not found") as excinfo:
        load_search_space(missing)
    assert isinstance(excinfo.value, FileNotFoundError)
    assert "nope.csv" in str(excinfo.value)


def test_all_invalid_raises(tmp_path: Path):
    path = write(tmp_path / "bad.csv", "smiles\nC1CC\nnot_a_smiles\n\n")
    with pytest.raises(SearchSpaceError, match="No valid SMILES") as excinfo:
        load_search_space(path)
    assert "not_a_smiles" in str(excinfo.value)


def test_empty_file_raises(tmp_path: Path):
    path = write(tmp_path / "empty.csv", "")
    with pytest.raises(SearchSpaceError, match="empty"):
        load_search_space(path)


def test_ragged_row_reported_not_dropped_silently(tmp_path: Path):
    path = write(tmp_path / "ragged.csv", "smiles,name\nCCO,ethanol\nCC,ethane,extra\n")
    with pytest.warns(SearchSpaceWarning, match="line 3"):
        df = load_search_space(path)
    assert df["smiles"].tolist() == ["CCO"]
    assert df.attrs["report"].invalid[0].line == 3


def test_validate_false_still_reports_empty_and_exact_duplicates(tmp_path: Path):
    path = write(tmp_path / "raw.csv", "smiles\nC1CC\n\nC1CC\nOC\nCO\n")
    with pytest.warns(SearchSpaceWarning):
        df = load_search_space(path, validate=False)
    report = df.attrs["report"]
    assert df["smiles"].tolist() == ["C1CC", "OC", "CO"]  # RDKit checks were skipped
    assert report.validated is False
    assert [i.line for i in report.empty] == [3]
    assert [i.line for i in report.duplicates] == [4]


def test_a_molecule_is_its_smiles_string_in_every_space(tmp_path: Path):
    """Issue 30: a user file of QM9's own rows kept 130,744 of them (RDKit reads 87 pairs as
    one molecule) while the built-in space and its table keep all 130,831."""
    path = write(tmp_path / "spellings.csv", "smiles\nOC\nCO\nOC\nNC1=C(F)N=NC=C1F\n"
                                            "NC1=C(F)C=NN=C1F\n")
    with pytest.warns(SearchSpaceWarning, match="spell an earlier row's molecule differently"):
        df = load_search_space(path)
    report = df.attrs["report"]
    assert df["smiles"].tolist() == ["OC", "CO", "NC1=C(F)N=NC=C1F", "NC1=C(F)C=NN=C1F"]
    assert [i.line for i in report.duplicates] == [4]  # the same string: removed
    assert [(i.line, i.smiles) for i in report.same_molecule] == [(3, "CO"), (6, "NC1=C(F)C=NN=C1F")]
    assert "line 2's 'OC'" in report.same_molecule[0].reason
    spelled = write(tmp_path / "spelled.csv", "smiles\nOC\nCO\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load_search_space(spelled, on_invalid="raise")) == 2  # kept rows never refuse


def test_the_built_in_pairs_are_kept_by_the_same_rule_as_a_user_file(qm9, tmp_path: Path):
    pairs = qm9[qm9["smiles"].isin(["NC1=C(F)N=NC=C1F", "NC1=C(F)C=NN=C1F"])]
    assert len(pairs) == 2 and pairs["qm9_index"].is_unique  # two QM9 entries, one molecule
    path = tmp_path / "qm9.csv"
    qm9.iloc[:2000].to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = load_search_space(path)
    assert mine["smiles"].tolist() == qm9["smiles"].iloc[:2000].tolist()


def test_summary_truncates_examples():
    from course_utils.search_space import RowIssue

    issues = [RowIssue(i, f"bad{i}", "nope") for i in range(2, 12)]
    report = SearchSpaceReport("'x.csv'", 10, 0, invalid=issues)
    summary = report.summary()
    assert "line 6" in summary and "line 7" not in summary
    assert "and 5 more" in summary


# -------------------------------------------------------------------------------- sampling

POOL = [f"C{'C' * i}O" for i in range(50)]


def test_sample_is_deterministic_for_a_seed(qm9):
    first = sample_smiles(qm9, 20, seed=42)
    assert first == sample_smiles(qm9, 20, seed=42)
    assert len(set(first)) == 20
    assert set(first) <= set(qm9["smiles"])


def test_sample_differs_between_seeds(qm9):
    assert sample_smiles(qm9, 20, seed=1) != sample_smiles(qm9, 20, seed=2)


def test_sample_respects_exclude():
    excluded = set(POOL[:45])
    sample = sample_smiles(POOL, 5, seed=0, exclude=excluded)
    assert sorted(sample) == sorted(POOL[45:])


def test_sample_larger_n_extends_smaller():
    assert sample_smiles(POOL, 10, seed=3)[:4] == sample_smiles(POOL, 4, seed=3)


def test_sample_too_many_raises_with_available_count():
    with pytest.raises(ValueError, match="only 40 available"):
        sample_smiles(POOL, 41, seed=0, exclude=POOL[:10])
    assert len(sample_smiles(POOL, 40, seed=0, exclude=POOL[:10])) == 40


def test_sample_rejects_negative_n_and_bare_string():
    with pytest.raises(ValueError, match=">= 0"):
        sample_smiles(POOL, -1, seed=0)
    with pytest.raises(TypeError):
        sample_smiles("CCO", 1, seed=0)


def test_sample_treats_duplicate_input_as_one_molecule():
    assert sorted(sample_smiles(["CCO", "CCO", "C"], 2, seed=0)) == ["C", "CCO"]
    with pytest.raises(ValueError, match="only 2 available"):
        sample_smiles(["CCO", "CCO", "C"], 3, seed=0)


def test_iter_unseen_never_repeats_or_yields_excluded():
    pool = POOL + POOL[:10]  # repeated entries must still come out once
    excluded = set(POOL[::3])
    out = list(iter_unseen(pool, seed=7, exclude=excluded))
    assert len(out) == len(set(out))
    assert not set(out) & excluded
    assert set(out) == set(POOL) - excluded


def test_iter_unseen_skips_smiles_excluded_later():
    seen: set[str] = set()
    stream = iter_unseen(POOL, seed=5, exclude=seen)
    first = next(stream)
    seen.update(POOL[:25])  # e.g. molecules submitted elsewhere meanwhile
    rest = list(stream)
    assert first not in rest
    assert not set(rest) & set(POOL[:25])


def test_iter_unseen_is_deterministic(qm9):
    a = iter_unseen(qm9, seed=11)
    b = iter_unseen(qm9, seed=11)
    assert [next(a) for _ in range(10)] == [next(b) for _ in range(10)]


def test_truth_qm9_n_is_a_fixed_covered_prefix_of_the_build_order():
    from course_utils.ground_truth.shipped import load_ground_truth
    from course_utils.ground_truth.table import build_order

    space = load_search_space("truth:qm9:300")["smiles"].tolist()
    qm9 = load_search_space("qm9")["smiles"].tolist()
    assert set(space) == set(build_order(qm9)[:300])  # the same 300 whatever the table's size
    assert set(space) <= set(load_ground_truth("qm9")["smiles"])
    assert space == [s for s in qm9 if s in set(space)]  # in the space's own order (seeds)
    with pytest.raises(SearchSpaceError, match="qm9 has only 130,831 molecules"):
        load_search_space("truth:qm9:130832")
    with pytest.raises(SearchSpaceError, match="whole number"):
        load_search_space("truth:qm9:0")


def test_truth_qm9_n_beyond_what_a_partial_table_covers_is_refused(monkeypatch):
    """While a table is built, N may only reach the first molecule of the order it lacks."""
    from course_utils.ground_truth import shipped
    from course_utils.ground_truth import table as gt

    table = gt.shipped_table("qm9")
    lacking = gt.build_order(load_search_space("qm9")["smiles"].tolist())[10]
    partial = table[table["smiles"] != lacking]
    monkeypatch.setattr(shipped, "shipped_table", lambda space: partial)
    assert len(load_search_space("truth:qm9:10")) == 10
    with pytest.raises(SearchSpaceError, match="covers only the first 10 molecules"):
        load_search_space("truth:qm9:11")


@pytest.mark.parametrize(("space", "said"), [(["O", "C"], "covers 2 of 2"),
                                             (["O", "N", "N"], "covers 1 of 2")])
def test_coverage_counts_only_the_molecules_of_the_space(tmp_path: Path, space, said):
    """A table with more molecules than the space once reported "covers 130,831 of 130,744"."""
    from course_utils.campaign.simulators import replay_table

    table = write(tmp_path / "gt.csv", "smiles,ie,status,error,seconds,engine\n"
                                       "O,18.29,ok,,0.5,xtb\nC,14.0,ok,,0.5,xtb\nCC,13.0,ok,,0.5,xtb\n")
    _, coverage = replay_table(str(tmp_path / "space.csv"), str(table), len(set(space)), space)
    assert coverage == f"ground truth {said} molecules"
    _, clamped = replay_table(str(tmp_path / "space.csv"), str(table), 2)  # no space given
    assert clamped == "ground truth covers 2 of 2 molecules"


def test_truth_spaces_are_read_by_the_ground_truth_not_the_search_space():
    """search_space (ground floor) reads ``truth:`` spaces through a hook ground_truth.shipped
    fills on import; alone it says which module to import, in one line."""
    import subprocess
    import sys

    code = ("from course_utils.search_space import load_search_space, SearchSpaceError\n"
            "try:\n    load_search_space('truth:qm9:5')\n"
            "except SearchSpaceError as err:\n    print(err)\n"
            "import course_utils.ground_truth.shipped\n"
            "print(len(load_search_space('truth:qm9:5')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "'truth:qm9:5': truth: spaces are read by course_utils.ground_truth.shipped; import it first",
        "5"]
