"""Is a hybrid preset worth it for your property? Random forests on magpie, the preset, and both.

    python examples/compare_with_magpie.py DATA.jsonl[.gz] --target COLUMN [--preset hybrid-anisotropy]
        [--folds 5] [--limit N]

DATA holds one JSON object per line with a ``cif`` string (or a pymatgen ``structure`` dict) and the target
column, as ``examples/data/jarvis_sample.jsonl.gz`` does. Prints the MAE (mean ± standard deviation over the folds) of a
random forest (scikit-learn defaults but ``max_features=0.33``, as in the README's table) on matminer's
ElementProperty (magpie), on ``HybridStructureFeaturizer.from_preset(PRESET)``, on both side by side, and of
predicting the training mean, all on the same folds, and on how many folds each is lower than magpie. Run it on
rows you will not report results on: choosing features on the rows you report is choosing them on the test set.
"""

from __future__ import annotations

import argparse
import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matminer.featurizers.composition import ElementProperty
from pymatgen.core import Structure
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from matssl_featurizers import HybridStructureFeaturizer


def load(path: Path, target: str, limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``structure`` and ``target`` columns of the rows of ``path`` that have the target (``limit`` of them, drawn with ``seed``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        rows = [row for row in map(json.loads, handle) if row.get(target) is not None]
    if not rows:
        raise SystemExit(f"no row of {path} has a value for {target!r}")
    if limit is not None and limit < len(rows):
        keep = np.random.default_rng(seed).choice(len(rows), limit, replace=False)
        rows = [rows[i] for i in sorted(keep)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's CIF parser warns about rounded occupancies
        structures = [Structure.from_dict(r["structure"]) if "structure" in r else Structure.from_str(r["cif"], fmt="cif")
                      for r in rows]
    index = pd.Index([r.get("id", i) for i, r in enumerate(rows)], name="id")
    return pd.DataFrame({"structure": structures, "target": [float(r[target]) for r in rows]}, index=index)


def feature_tables(structures: list, preset: str) -> dict[str, np.ndarray]:
    """ElementProperty (magpie), the preset, and both side by side; a row of NaN where a featurizer failed."""
    magpie = ElementProperty.from_preset("magpie", impute_nan=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        composition = np.array(magpie.featurize_many([s.composition for s in structures], ignore_errors=True,
                                                     pbar=False), dtype=float)
    hybrid = np.array(HybridStructureFeaturizer.from_preset(preset).featurize_many(structures, ignore_errors=True),
                      dtype=float)
    return {"ElementProperty": composition, f"preset:{preset}": hybrid,
            f"preset:{preset}+ElementProperty": np.hstack([hybrid, composition])}


def compare(tables: dict[str, np.ndarray], y: np.ndarray, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """MAE mean and fold std per feature table (and of predicting the training mean), on identical folds of
    the rows every table could featurize; with an ``ElementProperty`` table, also on how many folds each is
    lower than it (the folds test both on the same rows, so this count is free of how hard each fold is)."""
    y = np.asarray(y, dtype=float)
    usable = np.flatnonzero(np.all([np.isfinite(table).all(axis=1) for table in tables.values()], axis=0))
    splits = [(usable[train], usable[test]) for train, test in KFold(folds, shuffle=True, random_state=seed).split(usable)]
    rows = {name: [] for name in ["training mean", *tables]}
    for train, test in tqdm(splits, desc="folds", unit="fold"):
        rows["training mean"].append(np.abs(y[test] - y[train].mean()).mean())
        for name, table in tables.items():
            forest = RandomForestRegressor(max_features=0.33, random_state=seed, n_jobs=-1)
            forest.fit(table[train], y[train])
            rows[name].append(np.abs(forest.predict(table[test]) - y[test]).mean())
    per_fold = pd.DataFrame(rows)
    n_features = {"training mean": 0, **{name: table.shape[1] for name, table in tables.items()}}
    table = pd.DataFrame({"features": pd.Series(n_features), "MAE": per_fold.mean(), "fold std": per_fold.std()})
    if "ElementProperty" in per_fold:
        table["folds lower than ElementProperty"] = per_fold.lt(per_fold["ElementProperty"], axis=0).sum()
    table["folds"], table["rows"] = folds, len(usable)
    return table


def verdict(table: pd.DataFrame, preset: str) -> str:
    """Whether the preset beside magpie has a lower MAE than magpie alone, and by more than a fold std."""
    both, alone = table.loc[f"preset:{preset}+ElementProperty"], table.loc["ElementProperty"]
    gain = alone["MAE"] - both["MAE"]
    if gain <= 0:
        return f"preset:{preset} + ElementProperty is not lower than ElementProperty alone here."
    clearly = gain > max(both["fold std"], alone["fold std"])
    return (f"preset:{preset} + ElementProperty is lower than ElementProperty alone by {gain:.4g}, on "
            f"{int(both['folds lower than ElementProperty'])} of {int(both['folds'])} folds "
            + ("(more than a fold std of either)." if clearly else "(within a fold std: not a clear gain)."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--target", required=True)
    parser.add_argument("--preset", default="hybrid-anisotropy", help="a HybridStructureFeaturizer preset (default: %(default)s)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="use N rows drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="rows, folds and forests (default: %(default)s)")
    args = parser.parse_args()

    df = load(args.data, args.target, args.limit, args.seed)
    table = compare(feature_tables(list(df["structure"]), args.preset), df["target"].to_numpy(), args.folds, args.seed)
    print(f"{args.target}: {table['rows'].iloc[0]} of {len(df)} rows featurized, {args.folds}-fold cross-validation")
    print(table.drop(columns=["folds", "rows"]).to_string(float_format=lambda v: f"{v:.4g}"))
    print(verdict(table, args.preset))


if __name__ == "__main__":
    main()
