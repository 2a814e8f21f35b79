"""Tests for the search space's fingerprints: computed once per kind, in parallel, cached.

course_utils.ml.fingerprints computes every kind a model reads in one RDKit pass over forked
processes (course_utils.ml.morgan) and caches it (course_utils.ml.fingerprint_cache); these
tests hold it to the serial path bit for bit, to the same error for a bad SMILES, and to its
caches (counted, never timed). Speed is measured by benchmarks/bench_fingerprints.py.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from course_utils.campaign import run_campaign
from course_utils.campaign.model_keeper import ModelKeeper
from course_utils.ml import fingerprint_cache, morgan
from course_utils.ml import fingerprints as fp
from course_utils.ml.forest import ForestModel
from course_utils.ml.gp import TanimotoGP
from course_utils.ml.knn import KNN
from course_utils.search_space import load_search_space

BITS = fp.FingerprintKind("bits", 2, 2048)
COUNTS = fp.FingerprintKind("counts", 2, 2048)
SHORT = fp.FingerprintKind("bits", 4, 256)


@pytest.fixture(scope="module")
def qm9_part() -> list[str]:
    """A few hundred real QM9 molecules, from all over the file (small and large)."""
    smiles = load_search_space("qm9")["smiles"].tolist()
    return smiles[:: len(smiles) // 300][:300]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("COURSE_UTILS_CACHE_DIR", str(directory))
    monkeypatch.delenv(fp.PROCESSES_ENV, raising=False)
    fp.clear_memory_cache()
    yield directory
    fp.clear_memory_cache()


class CountingPool(ProcessPoolExecutor):
    """The real process pool, counting the chunks sent to it (in this process)."""

    submitted = 0

    def submit(self, *args, **kwargs):
        CountingPool.submitted += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def counting_pool(monkeypatch) -> type[CountingPool]:
    CountingPool.submitted = 0
    monkeypatch.setattr(morgan, "ProcessPoolExecutor", CountingPool)
    return CountingPool


@pytest.fixture
def computed(monkeypatch) -> list[tuple[int, tuple[fp.FingerprintKind, ...]]]:
    """Every computation (number of SMILES, kinds), in this process, in order."""
    calls: list[tuple[int, tuple[fp.FingerprintKind, ...]]] = []
    real = morgan.compute_kinds

    def spy(smiles, kinds, **kwargs):
        calls.append((len(smiles), tuple(kinds)))
        return real(smiles, kinds, **kwargs)

    monkeypatch.setattr(fp, "compute_kinds", spy)  # what prepare_fingerprints calls
    monkeypatch.setattr(morgan, "compute_kinds", spy)  # and the serial reference paths
    return calls


# ------------------------------------------------------------------ parallel == serial


def test_parallel_pass_equals_serial_bit_for_bit(qm9_part, cache_dir, counting_pool):
    kinds = [BITS, COUNTS, SHORT, fp.FingerprintKind("counts", 3, 1024)]
    parallel = fp.prepare_fingerprints(qm9_part, kinds, processes=2)
    assert counting_pool.submitted >= 4  # the pool did the work, in several chunks
    for kind, array in zip(kinds, parallel, strict=True):
        serial = (morgan._compute_fingerprints(qm9_part, kind.radius, kind.length)
                  if kind.form == "bits" else morgan._compute_counts(qm9_part, kind.radius, kind.length))
        assert array.dtype == serial.dtype and array.shape == serial.shape
        np.testing.assert_array_equal(array, serial)
        assert not array.flags.writeable
    # and what the models read through the public functions, also forced parallel
    np.testing.assert_array_equal(fp.fingerprints(qm9_part, radius=2, length=2048, processes=2),
                                  parallel[0])
    np.testing.assert_array_equal(fp.count_fingerprints(qm9_part, processes=2), parallel[1])


def test_one_pass_gives_bits_and_counts_as_two_passes(qm9_part):
    both = morgan.compute_kinds(qm9_part, [BITS, COUNTS])
    np.testing.assert_array_equal(both[0], morgan.compute_kinds(qm9_part, [BITS])[0])
    np.testing.assert_array_equal(both[1], morgan.compute_kinds(qm9_part, [COUNTS])[0])


@pytest.mark.parametrize("form", fp.FORMS)
def test_invalid_smiles_named_the_same_through_the_pool(qm9_part, cache_dir, counting_pool, form):
    smiles = list(qm9_part)
    smiles[250], smiles[280] = "C1CC", "C(("  # the first one is reported, as a serial pass does
    kind = fp.FingerprintKind(form, 2, 2048)
    with pytest.raises(fp.InvalidSmilesError) as serial:
        fp.prepare_fingerprints(smiles, [kind], processes=1)
    assert counting_pool.submitted == 0
    with pytest.raises(fp.InvalidSmilesError) as parallel:
        fp.prepare_fingerprints(smiles, [kind], processes=2)
    assert counting_pool.submitted >= 4
    assert parallel.value.position == serial.value.position == 250
    assert parallel.value.smiles == "C1CC"
    assert str(parallel.value) == str(serial.value) == (
        "invalid SMILES at position 250: 'C1CC' (RDKit could not parse it)")


def test_processes_chosen_from_size_and_environment(monkeypatch):
    monkeypatch.delenv(fp.PROCESSES_ENV, raising=False)
    assert fp.fingerprint_processes(300) == 1  # small: not worth a process
    assert fp.fingerprint_processes(300, 3) == 3  # asked for
    monkeypatch.setenv(fp.PROCESSES_ENV, "1")
    assert fp.fingerprint_processes(130_831) == 1  # serial on request
    monkeypatch.setenv(fp.PROCESSES_ENV, "two")
    with pytest.raises(ValueError, match=fp.PROCESSES_ENV):
        fp.fingerprint_processes(130_831)


def test_phase_text_says_what_happens():
    assert fp.phase_text([BITS]) == ("fingerprinting the search space once "
                                     "(Morgan r=2, 2,048 bits; cached afterwards)")
    assert "Morgan r=2, 2,048 bits and counts; Morgan r=4, 256 bits" in fp.phase_text(
        [BITS, COUNTS, SHORT])
    assert "2,048-bit counts" in fp.phase_text([COUNTS])
    with pytest.raises(ValueError, match="form"):
        fp.FingerprintKind("bytes", 2, 2048)


# -------------------------------------------------------------------------- caching


def test_cold_cache_computes_once_then_every_kind_is_read(qm9_part, cache_dir, monkeypatch,
                                                          computed):
    monkeypatch.setattr(fp, "CACHE_MIN_SIZE", 100)
    said: list[str] = []
    first = fp.prepare_fingerprints(qm9_part, [BITS, COUNTS], announce=said.append,
                                    what="the search space")
    assert computed == [(300, (BITS, COUNTS))]  # one pass for both kinds
    assert said == [fp.phase_text([BITS, COUNTS])]
    assert len(list(cache_dir.glob("fp-*.npy"))) == len(list(cache_dir.glob("fpcount-*.npy"))) == 1
    assert not list(cache_dir.glob("*.tmp"))

    fp.clear_memory_cache()  # a fresh process: from disk
    again = fp.prepare_fingerprints(qm9_part, [COUNTS, BITS], announce=said.append)
    assert len(computed) == 1 and len(said) == 1  # nothing computed, nothing announced
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[1], first[0])
    assert fp.fingerprints(qm9_part, radius=2, length=2048) is again[1]  # memory hit
    assert len(computed) == 1

    fp.prepare_fingerprints(qm9_part, [BITS, SHORT])  # only the missing kind is computed
    assert computed[1:] == [(300, (SHORT,))]


def test_cache_file_written_atomically(qm9_part, cache_dir, monkeypatch):
    """A write that fails half-way leaves no file another process could read as complete."""
    monkeypatch.setattr(fp, "CACHE_MIN_SIZE", 100)
    real_save = np.save

    def half_then_fail(fh, arr, **kwargs):
        fh.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(fp.np, "save", half_then_fail)
    with pytest.warns(RuntimeWarning, match="disk cache disabled"):
        out = fp.fingerprints(qm9_part, radius=2, length=2048)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())  # no file, no temp file
    monkeypatch.setattr(fp.np, "save", real_save)
    fp.clear_memory_cache()
    fingerprint_cache._warned_dirs.clear()
    np.testing.assert_array_equal(fp.fingerprints(qm9_part, radius=2, length=2048), out)
    (path,) = cache_dir.glob("fp-*.npy")
    np.testing.assert_array_equal(np.load(path), out)


def test_parts_cached_for_workers_equal_their_own_computation(qm9_part, cache_dir, monkeypatch,
                                                              computed):
    """Parsl workers ask for their block's fingerprints: they must find them, as computed."""
    monkeypatch.setattr(fp, "CACHE_MIN_SIZE", 100)
    arrays = fp.prepare_fingerprints(qm9_part, [BITS, COUNTS])
    parts = [qm9_part[:140], qm9_part[140:]]
    assert fp.cache_parts(parts, [BITS, COUNTS], arrays) == 4
    assert fp.cache_parts(parts, [BITS, COUNTS], arrays) == 0  # already there
    fp.clear_memory_cache()
    for part in parts:
        bits = fp.fingerprints(part, radius=2, length=2048)
        counts = fp.count_fingerprints(part)
        np.testing.assert_array_equal(bits, morgan._compute_fingerprints(part, 2, 2048))
        np.testing.assert_array_equal(counts, morgan._compute_counts(part, 2, 2048))
    assert len(computed) == 1 + 4  # the whole once, then only the reference computations


# ------------------------------------------------------------------------- the models


def test_each_model_names_the_fingerprints_it_reads():
    assert KNN().fingerprint_kinds() == [SHORT]
    assert TanimotoGP().fingerprint_kinds() == [BITS]
    assert ForestModel().fingerprint_kinds() == [COUNTS]


class _WorkerSimulator:
    """Only what the keeper asks of a simulator before its first round (Parsl workers)."""

    needs_parsl = True


def test_keeper_prepares_the_space_once_and_the_blocks_for_workers(qm9_part, cache_dir,
                                                                   monkeypatch, computed):
    monkeypatch.setattr(fp, "CACHE_MIN_SIZE", 100)
    events = []
    keeper = ModelKeeper(TanimotoGP(), _WorkerSimulator(), lineage=None, space=qm9_part,
                         chunks=2, parameters={}, engine="", retrain="", wait=None,
                         notify=lambda event, **info: events.append((event, info)))
    keeper.fingerprint_space()
    keeper.fingerprint_space()
    assert computed == [(300, (BITS,))]
    assert events == [("phase", {"phase": fp.phase_text([BITS])})]
    fp.clear_memory_cache()
    for block in keeper.blocks():  # what each worker fingerprints
        fp.fingerprints(block.to_list(), radius=2, length=2048)
    assert len(computed) == 1  # read, not computed


def test_first_replayed_gp_run_says_so_once_and_scores_from_the_cache(tmp_path, cache_dir,
                                                                      computed):
    space = "truth:qm9:4000"
    params = {"simulator": "replay", "model": "gp:mean=training", "acquisition": "ei",
              "search_space": space, "initial_training_count": 8, "max_training_count": 16,
              "batch_size": 4, "workers": 2}
    events: list[dict] = []
    run_campaign(params, tmp_path / "cold", progress=False, plot=False, on_update=events.append)
    # the campaign's other phases (simulating, training) come too; fingerprinting is said once
    phases = [e for e in events if e["event"] == "phase" and e["phase"].startswith("fingerprint")]
    assert [e["phase"] for e in phases] == [fp.phase_text([BITS])]
    first_iteration = next(i for i, e in enumerate(events) if e["event"] == "iteration")
    assert events.index(phases[0]) < first_iteration
    whole = [c for c in computed if c[0] == 4000]
    assert whole == [(4000, (BITS,))]  # once, though the model scored the space twice or more
    assert json.loads((tmp_path / "cold" / "results.json").read_text())["status"] == "complete"

    fp.clear_memory_cache()  # another session, warm disk cache: nothing to say, nothing to do
    events.clear()
    run_campaign(params, tmp_path / "warm", progress=False, plot=False, on_update=events.append)
    assert not [e for e in events if e["event"] == "phase" and e["phase"].startswith("fingerprint")]
    assert [c for c in computed if c[0] == 4000] == whole
