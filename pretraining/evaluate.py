"""Random forest on frozen features: pretrained encoders against random weights and matminer baselines.

    python -m pretraining.evaluate --data labelled.jsonl.gz --target formation_energy_peratom,optb88vdw_bandgap \\
        --featurizers crystal-twins,random:crystal-twins,ElementProperty --folds 5 --limit 3000 --out eval/

Every featurizer sees identical K-fold splits; scikit-learn's ``RandomForestRegressor`` with default
hyperparameters and a fixed seed is fitted on each training fold. Rows any featurizer fails on are
dropped for all of them (and counted). Writes ``results.json`` and ``results.md`` (MAE mean ± std over
folds); ``--card DIR`` also puts the table into that model's card.

Featurizer names: a bundled model (``crystal-twins``), a weights directory, ``random:<model>`` (the same
architecture with random weights, seeded), ``ElementProperty`` (magpie), ``SineCoulombMatrix``,
``SiteStatsFingerprint`` (CrystalNN ops; ~0.3 s per structure); ``a+b`` concatenates the features of a and b.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from matssl_featurizers.encoders import build_encoder
from matssl_featurizers.featurizers import SSLStructureFeaturizer
from matssl_featurizers.weights import read_config, save_encoder

from . import card
from .data import iter_records, payload_to_structure

MATMINER_BASELINES = ("ElementProperty", "SineCoulombMatrix", "SiteStatsFingerprint")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--target", required=True, help="target column(s), comma separated")
    p.add_argument("--featurizers", default="crystal-twins,random:crystal-twins,ElementProperty,SineCoulombMatrix")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all'")
    p.add_argument("--limit", type=int, default=None, help="evaluate on N labelled rows drawn with --seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, default=None, help="model directory whose card gets the table")
    return p.parse_args(argv)


def load_labelled(paths, targets, limit=None, seed=0) -> pd.DataFrame:
    """Rows with a readable structure and every target present, as a DataFrame (``structure`` + targets)."""
    rows = []
    for path in paths:
        for rid, payload, row in iter_records(path):
            if all(row.get(t) is not None for t in targets):
                rows.append({"id": rid, "payload": payload, **{t: float(row[t]) for t in targets}})
    df = pd.DataFrame(rows)
    if df.empty:
        raise SystemExit(f"no rows of {paths} have all of {targets}")
    if limit is not None and limit < len(df):
        df = df.sample(n=limit, random_state=seed)
    structures = []
    for payload in df.pop("payload"):
        try:
            structures.append(payload_to_structure(payload))
        except Exception:
            structures.append(None)
    df["structure"] = structures
    return df[df["structure"].notna()].set_index("id")


def random_weights_dir(model: str, seed: int, root: Path) -> Path:
    """A weights directory with the architecture of ``model`` and seeded random weights."""
    torch.manual_seed(seed)
    encoder = build_encoder(read_config(model))
    return save_encoder(encoder, root / f"random-{Path(model).name}-seed{seed}")


def make_featurizer(name: str, seed: int, scratch: Path):
    if name == "ElementProperty":
        from matminer.featurizers.composition import ElementProperty

        return _CompositionOf(ElementProperty.from_preset("magpie", impute_nan=True))
    if name == "SineCoulombMatrix":
        from matminer.featurizers.structure import SineCoulombMatrix

        return SineCoulombMatrix(flatten=True)
    if name == "SiteStatsFingerprint":
        from matminer.featurizers.structure import SiteStatsFingerprint

        return SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    if name.startswith("random:"):
        model = name.split(":", 1)[1]
        return SSLStructureFeaturizer(model=f"random-{Path(model).name}", weights=str(random_weights_dir(model, seed, scratch)))
    if Path(name).is_dir():
        return SSLStructureFeaturizer(model=Path(name).name, weights=name)
    return SSLStructureFeaturizer(model=name)


class _CompositionOf:
    """Apply a composition featurizer to the composition of each structure."""

    def __init__(self, featurizer):
        self.featurizer = featurizer

    def featurize_many(self, structures, ignore_errors=True, pbar=True):
        return self.featurizer.featurize_many([s.composition for s in structures], ignore_errors=ignore_errors, pbar=pbar)


def featurize(name: str, structures: list, seed: int, scratch: Path) -> np.ndarray:
    featurizer = make_featurizer(name, seed, scratch)
    if hasattr(featurizer, "set_n_jobs"):
        featurizer.set_n_jobs(1)
    if name == "SineCoulombMatrix":
        featurizer.fit(structures)
    rows = featurizer.featurize_many(structures, ignore_errors=True, pbar=True)
    return np.array(rows, dtype=float)


def evaluate(features: dict, y: np.ndarray, folds: int, train_sizes, seed: int, progress=True,
             max_features=1.0) -> list[dict]:
    """MAE per featurizer, training size and fold, on identical folds (``max_features``: the random
    forest's, scikit-learn's default 1.0 = all features at every split)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    splits = list(KFold(folds, shuffle=True, random_state=seed).split(y))
    results = []
    bar = tqdm(total=len(features) * len(train_sizes) * folds, desc="random forests", disable=not progress)
    for name, X in features.items():
        for size in train_sizes:
            for fold, (train, test) in enumerate(splits):
                if size != "all":
                    train = np.random.default_rng(seed + fold).permutation(train)[: int(size)]
                model = RandomForestRegressor(random_state=seed, n_jobs=-1, max_features=max_features).fit(X[train], y[train])
                mae = float(np.mean(np.abs(model.predict(X[test]) - y[test])))
                results.append({"featurizer": name, "train_size": size if size == "all" else int(size),
                                "n_train": int(len(train)), "fold": fold, "mae": mae})
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


def markdown_table(results: pd.DataFrame, shapes: dict) -> str:
    """MAE mean ± std over folds: one row per featurizer, one column per target and training size,
    plus the number of features and their effective rank (``shapes``: name -> (n_features, rank))."""
    summary = results.groupby(["target", "train_size", "featurizer"], sort=False)["mae"].agg(["mean", "std"]).reset_index()
    columns = summary[["target", "train_size"]].drop_duplicates().values.tolist()
    lines = ["| featurizer | features (effective rank) | " + " | ".join(f"{t} MAE (train size {s})" for t, s in columns) + " |"]
    lines.append("|---|---|" + "---|" * len(columns))
    for name in summary["featurizer"].drop_duplicates():
        cells = []
        for target, size in columns:
            row = summary[(summary.featurizer == name) & (summary.target == target) & (summary.train_size == size)]
            cells.append(f"{row['mean'].iloc[0]:.4f} ± {row['std'].iloc[0]:.4f}")
        n_features, rank = shapes[name]
        lines.append(f"| {name} | {n_features} ({rank:.1f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out: Path, text: str, payload: dict, card_dir: Path | None = None) -> None:
    """Write ``results.md`` (``text``) and ``results.json`` (``payload``) to ``out``, print the text and,
    with ``card_dir``, make it the evaluation section of that model's card."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    print(text)
    if card_dir is not None:
        card.set_evaluation(card_dir / "README.md", text)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python -m pretraining.evaluate " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    targets = [t.strip() for t in args.target.split(",")]
    names = [n.strip() for n in args.featurizers.split(",")]
    train_sizes = [s if s == "all" else int(s) for s in args.train_sizes.split(",")]
    df = load_labelled(args.data, targets, args.limit, args.seed)
    structures = list(df["structure"])
    with tempfile.TemporaryDirectory() as scratch:  # concatenations ("a+b") featurize each part once
        parts = {part: featurize(part, structures, args.seed, Path(scratch))
                 for part in dict.fromkeys(part for name in names for part in name.split("+"))}
    features = {name: np.hstack([parts[part] for part in name.split("+")]) for name in names}
    ok = np.all([np.isfinite(X).all(axis=1) for X in features.values()], axis=0)
    dropped = int((~ok).sum())
    features = {name: X[ok] for name, X in features.items()}
    records = []
    for target in targets:
        y = df[target].to_numpy()[ok]
        for r in evaluate(features, y, args.folds, train_sizes, args.seed):
            records.append({"target": target, **r})
    results = pd.DataFrame(records)
    shapes = {name: (X.shape[1], effective_rank(X)) for name, X in features.items()}
    table = markdown_table(results, shapes)
    summary = (f"Random forest (scikit-learn defaults, random_state={args.seed}) on frozen features, "
               f"{args.folds}-fold cross-validation on identical folds, MAE mean ± std over folds; "
               f"{int(ok.sum())} structures from {', '.join(Path(p).name for p in args.data)}"
               + (f" ({dropped} dropped: a featurizer failed on them)" if dropped else "") + ".")
    text = f"{summary}\n\nCommand: `{command}`\n\n{table}\n"
    write_results(args.out, text, {"command": command, "n_structures": int(ok.sum()), "dropped": dropped, "targets": targets,
                                   "features": {n: {"n_features": f, "effective_rank": r} for n, (f, r) in shapes.items()},
                                   "results": records}, args.card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
