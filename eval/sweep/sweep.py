"""Featurize every structure of the shared data files with every bundled structure model and hybrid preset, and count
the rows that fail (NaN with ``ignore_errors=True``) or hold a non-finite value.

    python eval/sweep/sweep.py ../shared/data/*.jsonl.gz > eval/sweep/sweep.log

Structures are read with ``pretraining.data``'s reader, as every ``pretraining`` command reads them (an unreadable
row stops the sweep).
"""
import argparse
import collections
import time

import numpy as np
import pandas as pd

from matssl_featurizers import HybridStructureFeaturizer, SSLStructureFeaturizer, list_models
from matssl_featurizers.hybrid import PRESETS
from pretraining.data import iter_records, payload_to_structure


def featurizers():
    yield from ((name, SSLStructureFeaturizer(model=name)) for name in list_models().index)
    yield from ((f"preset:{p}", HybridStructureFeaturizer.from_preset(p)) for p in sorted(PRESETS))


def structures(path) -> pd.DataFrame:
    ids, payloads, _ = zip(*iter_records(path))
    return pd.DataFrame({"structure": [payload_to_structure(p) for p in payloads]}, index=pd.Index(ids, name="id"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+")
    args = parser.parse_args()
    chosen = list(featurizers())
    for path in args.data:
        df = structures(path)
        print(f"{path}: {len(df)} structures", flush=True)
        for name, featurizer in chosen:
            start = time.perf_counter()
            out = featurizer.featurize_dataframe(df, "structure", ignore_errors=True, return_errors=True, pbar=False)
            values = out[featurizer.feature_labels()].to_numpy(dtype=float)
            failed = np.isnan(values).all(axis=1)
            nonfinite = ~np.isfinite(values).all(axis=1) & ~failed
            print(f"  {name}: {len(out)} rows, {failed.sum()} failed, {nonfinite.sum()} with a non-finite value "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            errors = out.loc[failed, [c for c in out.columns if c.endswith("Exceptions")][0]]
            for message, count in collections.Counter(str(e).splitlines()[-1][:200] for e in errors).most_common(5):
                print(f"    {count} x {message}", flush=True)


if __name__ == "__main__":
    main()
