"""Simulate a seeded random sample of QM9 to build the random-search reference of the plots.

The campaign plot compares the model-guided search with what picking molecules at random would
find. That needs the distribution of GFN2-xTB ionization energies over QM9, which only
simulations can give; this script computes it once with the project's own code and writes
``course_utils/data/qm9_random_ie.csv`` (columns qm9_index, smiles, ie; eV).

Usage: python scripts/build_random_reference.py [--n 600] [--seed 12345] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "course_utils" / "data" / "qm9_random_ie.csv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import pandas as pd
    import parsl
    from tqdm import tqdm

    from course_utils.apps import simulate_record_app
    from course_utils.configs import make_local_config
    from course_utils.search_space import load_search_space, sample_smiles

    space = load_search_space("qm9")
    picks = sample_smiles(space, args.n, seed=args.seed)
    index = dict(zip(space["smiles"], space["qm9_index"], strict=True))
    with tempfile.TemporaryDirectory() as run_dir:
        with parsl.load(make_local_config(workers=args.workers, run_dir=run_dir)):
            futures = [simulate_record_app(s) for s in picks]
            rows = [f.result() for f in tqdm(futures, desc="simulations")]
    frame = pd.DataFrame(rows)
    failed = frame[frame["status"] != "ok"]
    ok = frame[frame["status"] == "ok"].copy()
    ok.insert(0, "qm9_index", ok["smiles"].map(index))
    ok[["qm9_index", "smiles", "ie"]].round({"ie": 4}).to_csv(args.out, index=False)
    print(f"wrote {len(ok)} energies to {args.out}; {len(failed)} failed "
          f"({', '.join(failed['smiles'])})")
    print(ok["ie"].describe(percentiles=[0.5, 0.95, 0.99]).to_string())


if __name__ == "__main__":
    main()
