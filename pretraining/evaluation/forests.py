"""Random forests on frozen features: the MAE of every featurizer on identical folds of one task, written as a
result folder (the work of ``pretraining.evaluation.evaluate``, which ``headline`` runs per task)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..arguments import at_least, share
from ..data import default_cache_dir
from .featurizer_names import (COMPOSITION_TABLES, bundled_structure_models, distinct_architectures, expand_seeds,
                               readout_changes)
from .features import all_features
from .results import markdown_table, write_results
from .tasks import SPLITS, cv_splits, parse_train_sizes, task_rows, training_rows


def default_featurizers() -> list[str]:
    """Every bundled model, ``random:`` of each distinct bundled architecture, ``inputs:`` of each, the
    composition tables, ElementProperty, SineCoulombMatrix, and each bundled model + ElementProperty."""
    models = bundled_structure_models()
    distinct = distinct_architectures(models)
    controls = [f"random:{m}" for m in distinct] + [f"inputs:{m}" for m in distinct]
    return [*models, *controls, *COMPOSITION_TABLES, "ElementProperty", "SineCoulombMatrix",
            *(f"{m}+ElementProperty" for m in models)]


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options of a frozen-feature evaluation of one task."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--target", required=True, help="target column(s), comma separated")
    p.add_argument("--featurizers", default=None,
                   help="comma separated names (pretraining.evaluation.featurizer_names); default: the bundled models and "
                        "their controls, composition tables, ElementProperty, SineCoulombMatrix, each model+ElementProperty")
    p.add_argument("--split", choices=SPLITS, default=None, help="evaluate on the rows of this split only (default: all rows)")
    p.add_argument("--folds", type=at_least(2), default=5, help="default: %(default)s")
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all' (default)")
    p.add_argument("--limit", type=at_least(1), default=None, help="evaluate on N labelled rows drawn with --seed (default: all)")
    p.add_argument("--extra-train", type=at_least(1), default=None,
                   help="every fold also trains on N labelled rows of neither split, drawn with --seed (a large task)")
    p.add_argument("--seed", type=int, default=0, help="folds, subsets and forests (default: %(default)s)")
    p.add_argument("--random-seeds", default="0,1,2", help="seeds of the random:MODEL weights (default: %(default)s)")
    p.add_argument("--max-features", type=share, default=1.0,
                   help="share of features each split of the forest tries (default: %(default)s, scikit-learn's)")
    p.add_argument("--readout", default=None, help="rebuild every encoder with this readout (layers, head, set2set)")
    p.add_argument("--pool", default=None,
                   help="with --readout layers: comma separated statistics, e.g. mean,max,std (any of mean, max, min, std)")
    p.add_argument("--no-pool-edges", action="store_true", help="with --readout layers: no mean edge expansion")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, nargs="*", default=[], help="model directories whose cards get the table")
    p.add_argument("--card-section", default=None,
                   help="title of the card subsection the table replaces (default: the whole evaluation)")
    p.add_argument("--cache", type=Path, default=default_cache_dir().parent / "features", help="joblib feature cache")
    p.add_argument("--no-cache", action="store_true", help="recompute every feature")
    return p


def settings_of(args: argparse.Namespace) -> dict:
    """The options of a command as JSON values, for its ``results.json`` (``--data`` and ``--out`` apart)."""
    return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
            for k, v in vars(args).items() if k not in ("data", "out")}


def evaluate_task(args: argparse.Namespace, command: str) -> None:
    """Featurize the rows of one task with every featurizer of ``args.featurizers``, fit the forests on identical
    folds and write ``results.json`` and ``results.md`` to ``args.out`` (and the cards of ``args.card``)."""
    targets = [t.strip() for t in args.target.split(",")]
    readout = readout_changes(args.readout, args.pool, not args.no_pool_edges)
    random_seeds = [int(x) for x in args.random_seeds.split(",")]
    names = expand_seeds([n.strip() for n in args.featurizers.split(",")] if args.featurizers else default_featurizers(),
                         random_seeds)
    train_sizes = parse_train_sizes(args.train_sizes)
    df, n_folded = task_rows(args.data, targets, args.limit, args.seed, args.split, args.extra_train)
    splits = [(np.concatenate([train, np.arange(n_folded, len(df))]), test)
              for train, test in cv_splits(n_folded, args.folds, args.seed)]
    features = all_features(names, df, None if args.no_cache else args.cache, readout)
    ok = np.all([np.isfinite(X).all(axis=1) for X in features.values()], axis=0)
    dropped = int((~ok).sum())
    records = []
    for target in targets:
        for r in forest_maes(features, df[target].to_numpy(), splits, train_sizes, args.seed, ok,
                             max_features=args.max_features):
            records.append({"target": target, **r})
    shapes = {name: (X.shape[1], effective_rank(X[ok])) for name, X in features.items()}
    table = markdown_table(pd.DataFrame(records), shapes)
    forest = "scikit-learn defaults" + (f" but max_features={args.max_features:g}" if args.max_features != 1.0 else "")
    summary = (f"Random forest ({forest}, random_state={args.seed}) on frozen features, "
               f"{args.folds}-fold cross-validation on identical folds, MAE mean ± std over folds; "
               f"{int(ok.sum())} structures from {', '.join(Path(p).name for p in args.data)}"
               + (f" ({args.split} split)" if args.split else "")
               + (f", every fold training on {len(df) - n_folded} more rows of neither split" if args.extra_train else "")
               + (f" ({dropped} dropped: a featurizer failed on them)" if dropped else "")
               + (f"; random weights with seeds {args.random_seeds}" if any("random:" in n for n in names) else "")
               + (f"; every encoder with readout {json.dumps(readout)}" if readout else "") + ".")
    text = f"{summary}\n\nCommand: `{command}`\n\n{table}\n"
    write_results(args.out, text, {"command": command, "data": [str(p) for p in args.data], "settings": settings_of(args),
                                   "n_structures": int(ok.sum()), "dropped": dropped, "targets": targets,
                                   "split": args.split, "readout": readout,
                                   "test_ids": [list(df.index[test]) for _, test in splits],
                                   "features": {n: {"n_features": f, "effective_rank": r} for n, (f, r) in shapes.items()},
                                   "results": records}, args.card, args.card_section)


def forest_maes(features: dict, y: np.ndarray, splits: list, train_sizes, seed: int, ok: np.ndarray | None = None,
             progress=True, max_features=1.0) -> list[dict]:
    """MAE per featurizer, training size and fold on the identical ``splits`` (from :func:`cv_splits`),
    using only rows where ``ok`` (``max_features``: the random forest's, scikit-learn's default 1.0 = all
    features at every split)."""
    from sklearn.ensemble import RandomForestRegressor

    ok = np.ones(len(y), bool) if ok is None else ok
    results = []
    bar = tqdm(total=len(features) * len(train_sizes) * len(splits), desc="random forests", disable=not progress)
    for name, X in features.items():
        for size in train_sizes:
            for fold, (train, test) in enumerate(splits):
                train = training_rows(train, size, seed, fold)
                train, test = train[ok[train]], test[ok[test]]
                model = RandomForestRegressor(random_state=seed, n_jobs=-1, max_features=max_features).fit(X[train], y[train])
                mae = float(np.mean(np.abs(model.predict(X[test]) - y[test])))
                results.append({"featurizer": name, "train_size": size, "n_train": int(len(train)),
                                "n_test": int(len(test)), "fold": fold, "mae": mae})
                bar.update()
    bar.close()
    return results


def effective_rank(X: np.ndarray) -> float:
    """exp(entropy) of the normalised singular values of the standardised features (Roy & Vetterli 2007):
    how many directions the features really use."""
    X = X[:, X.std(axis=0) > 1e-12]
    if X.shape[1] == 0:
        return 0.0
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    p = np.linalg.svd(X, compute_uv=False) ** 2
    p = p[p > 0] / p.sum()
    return float(np.exp(-(p * np.log(p)).sum()))
