"""Random forests on composition features: atom-vector statistics against matminer's element tables.

    python -m pretraining.evaluation.evaluate_composition --task composition/mb_comp_expt_gap.jsonl.gz:gap_expt \\
        --task composition/mb_comp_jdft2d.jsonl.gz:exfoliation_en \\
        --featurizers crysatom,ElementProperty,matscholar,megnet,onehot,random --folds 5 --out eval/crysatom

``--task FILE:TARGET`` (repeatable): JSON Lines with a ``formula`` key and the target (the format of the
shared composition datasets). Featurizers: ``crysatom`` (the bundled CrysAtom vectors) or any atom-vector CSV / directory
(``name=PATH``, e.g. ``skipatom=skipatom_20201009_induced.csv``) through :class:`CrysAtomFeaturizer`'s
statistics; ``ElementProperty`` (magpie), ``matscholar`` (mat2vec) and ``megnet`` (MEGNet element
embeddings) from matminer's ElementProperty presets; ``onehot`` (a one-hot vector per element, Z = 1-103)
and ``random`` (a seeded Gaussian vector per element, 200-dim) through the same statistics as CrysAtom.
Every featurizer sees the same rows and the same folds; rows that some featurizer cannot featurize (an
element without a vector) are dropped for all, and counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from matssl_featurizers.composition import CrysAtomFeaturizer

from ..arguments import at_least, share
from ..card import command_line
from ..data import iter_records
from .forests import effective_rank, forest_maes, settings_of
from .results import markdown_table, write_results
from .tasks import cv_splits, parse_train_sizes

ELEMENT_PROPERTY_PRESETS = {"ElementProperty": "magpie", "matscholar": "matscholar_el", "megnet": "megnet_el"}
CONTROL_TABLES = ("onehot", "random")
RANDOM_DIM = 200


def load_formulas(paths, target: str, limit=None, seed: int = 0) -> pd.DataFrame:
    """Rows with a parsable formula and the target, as a DataFrame (``composition`` + target), indexed by id."""
    from pymatgen.core import Composition

    rows = []
    for path in paths:
        for rid, _, row in iter_records(path):
            if row.get(target) is None or not row.get("formula"):
                continue
            try:
                composition = Composition(row["formula"])
            except Exception:
                continue
            rows.append({"id": rid, "composition": composition, target: float(row[target])})
    df = pd.DataFrame(rows)
    if df.empty:
        raise SystemExit(f"no rows of {paths} have a formula and {target!r}")
    if limit is not None and limit < len(df):
        df = df.sample(n=limit, random_state=seed)
    return df.set_index("id")


def control_table(name: str, seed: int) -> pd.DataFrame:
    """A one-hot (Z = 1-103) or seeded Gaussian (``RANDOM_DIM``-dim) vector per element."""
    from pymatgen.core import Element

    symbols = [Element.from_Z(z).symbol for z in range(1, 104)]
    if name == "onehot":
        values = np.eye(len(symbols))
    else:
        values = np.random.default_rng(seed).standard_normal((len(symbols), RANDOM_DIM))
    return pd.DataFrame(values, index=pd.Index(symbols, name="element"))


def make_featurizer(name: str, seed: int):
    if name in ELEMENT_PROPERTY_PRESETS:
        from matminer.featurizers.composition import ElementProperty

        featurizer = ElementProperty.from_preset(ELEMENT_PROPERTY_PRESETS[name], impute_nan=True)
        featurizer.set_n_jobs(1)
        return featurizer
    if name == "crysatom":
        return CrysAtomFeaturizer()
    if name in CONTROL_TABLES:
        return CrysAtomFeaturizer(vectors=control_table(name, seed))
    _, sep, path = name.partition("=")
    if sep:
        return CrysAtomFeaturizer(vectors=path)
    raise SystemExit(f"unknown featurizer {name!r}: use crysatom, {', '.join(ELEMENT_PROPERTY_PRESETS)}, "
                     f"{', '.join(CONTROL_TABLES)} or NAME=PATH of an atom-vector CSV")


def featurize_task(path: str, target: str, names: list[str], args) -> tuple[dict, np.ndarray, dict]:
    """Features of every featurizer on the rows all of them can featurize, the target, and per
    featurizer the number of rows it could not featurize."""
    df = load_formulas([path], target, args.limit, args.seed)
    compositions = list(df["composition"])
    features = {name.partition("=")[0]: np.array(make_featurizer(name, args.seed).featurize_many(
        compositions, ignore_errors=True, pbar=True), dtype=float) for name in names}
    failed = {name: int((~np.isfinite(X).all(axis=1)).sum()) for name, X in features.items()}
    ok = np.all([np.isfinite(X).all(axis=1) for X in features.values()], axis=0)
    return {name: X[ok] for name, X in features.items()}, df[target].to_numpy()[ok], failed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.evaluate_composition", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, action="append", metavar="FILE:TARGET")
    p.add_argument("--featurizers", default="crysatom,ElementProperty,matscholar,megnet,onehot,random")
    p.add_argument("--folds", type=at_least(2), default=5)
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all'")
    p.add_argument("--limit", type=at_least(1), default=None, help="evaluate on N rows of each task, drawn with --seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-features", type=share, default=1.0,
                   help="fraction of features tried at each split (default 1.0, scikit-learn's; 0.33 is faster)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, default=None, help="atom-vector directory whose card gets the table")
    args = p.parse_args(argv)
    command = command_line("pretraining.evaluation.evaluate_composition", argv)
    names = [n.strip() for n in args.featurizers.split(",")]
    train_sizes = parse_train_sizes(args.train_sizes)
    records, stacked, notes = [], {}, []
    for task in args.task:
        path, sep, target = task.rpartition(":")
        if not sep:
            p.error(f"--task {task!r}: expected FILE:TARGET")
        features, y, failed = featurize_task(path, target, names, args)
        label = f"{Path(path).name.split('.')[0]}: {target}"
        records += [{"target": label, **r} for r in forest_maes(features, y, cv_splits(len(y), args.folds, args.seed),
                                                                             train_sizes, args.seed, max_features=args.max_features)]
        for name, X in features.items():
            stacked.setdefault(name, []).append(X)
        failing = ", ".join(f"{name} {n}" for name, n in failed.items() if n)
        notes.append(f"- {label}: {len(y)} compositions" + (f" (dropped for all: rows that {failing} could not featurize)" if failing else ""))
    shapes = {name: (blocks[0].shape[1], effective_rank(np.vstack(blocks))) for name, blocks in stacked.items()}
    table = markdown_table(pd.DataFrame(records), shapes)
    forest = "scikit-learn defaults" + (f" but max_features={args.max_features}" if args.max_features != 1.0 else "")
    summary = (f"Random forest ({forest}, random_state={args.seed}) on composition features, "
               f"{args.folds}-fold cross-validation on identical folds per task, MAE mean ± std over folds. "
               "Effective rank over all tasks' rows.\n\n" + "\n".join(notes))
    text = f"{summary}\n\nCommand: `{command}`\n\n{table}\n"
    write_results(args.out, text, {"command": command, "data": [t.rpartition(":")[0] for t in args.task],
                                   "settings": settings_of(args), "tasks": notes,
                                   "features": {n: {"n_features": f, "effective_rank": r} for n, (f, r) in shapes.items()},
                                   "results": records}, [args.card] if args.card else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
