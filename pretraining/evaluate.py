"""Random forest on frozen features: pretrained encoders against random weights and matminer baselines.

    python -m pretraining.evaluate --data labelled.jsonl.gz --target formation_energy_per_atom,band_gap \\
        --folds 5 --train-sizes 100,500,all --limit 2000 --out eval/

Every featurizer sees identical K-fold splits (:mod:`pretraining.tasks`, shared with
``pretraining.finetune``); scikit-learn's ``RandomForestRegressor`` with default hyperparameters and a
fixed seed is fitted on each training fold, or on ``--train-sizes`` rows drawn from it. Rows a
featurizer fails on are dropped from every featurizer's folds (and counted). Features are cached with
joblib under ``--cache`` keyed by featurizer, weights and structures, so a second run only fits
forests (the key does not cover edits to this package's code between releases: use ``--no-cache``
then). Writes ``results.json`` and ``results.md`` (MAE mean ± std over folds); ``--card DIR`` also
puts the table into that model's card.

Featurizer names: a bundled model (``crystal-twins``), a weights directory, ``random:<model>`` (the same
architecture with random weights, seeded), ``CrysAtom`` (composition statistics of the bundled CrysAtom
atom vectors), ``ElementProperty`` (magpie), ``SineCoulombMatrix``, ``SiteStatsFingerprint`` (CrystalNN
ops; ~0.3 s per structure); ``a+b`` concatenates the features of a and b. The default set is every
bundled model, a random-weights control per bundled architecture, the four above and every bundled
model + ElementProperty.
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

from matssl_featurizers import weights as weights_io
from matssl_featurizers.encoders import build_encoder
from matssl_featurizers.featurizers import SSLStructureFeaturizer
from matssl_featurizers.weights import read_config, save_encoder

from . import card
from .data import default_cache_dir
from .tasks import cv_splits, fingerprint, load_labelled, parse_train_sizes, training_rows

MATMINER_BASELINES = ("ElementProperty", "SineCoulombMatrix", "SiteStatsFingerprint")
COMPOSITION_FEATURIZERS = ("CrysAtom",)


def distinct_architectures(models: list[str]) -> list[str]:
    """The models whose ``config.json`` no earlier model in the list has: one per architecture, so that
    random weights of an architecture (seeded the same) are evaluated once."""
    firsts, seen = [], []
    for model in models:
        config = read_config(model)
        if config not in seen:
            seen.append(config)
            firsts.append(model)
    return firsts


def default_featurizers() -> list[str]:
    """Every bundled model, ``random:`` of each distinct bundled architecture, CrysAtom, the matminer
    baselines, and each bundled model + ElementProperty."""
    models = sorted(weights_io.bundled_index(), key=lambda m: (m != weights_io.DEFAULT_MODEL, m))
    controls = [f"random:{m}" for m in distinct_architectures(models)]
    return [*models, *controls, *COMPOSITION_FEATURIZERS, *MATMINER_BASELINES, *(f"{m}+ElementProperty" for m in models)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--target", required=True, help="target column(s), comma separated")
    p.add_argument("--featurizers", default=None, help="comma separated; default: " + ",".join(default_featurizers()))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all'")
    p.add_argument("--limit", type=int, default=None, help="evaluate on N labelled rows drawn with --seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, nargs="*", default=[], help="model directories whose cards get the table")
    p.add_argument("--card-section", default=None, help="title of the card subsection the table replaces (default: the whole evaluation)")
    p.add_argument("--cache", type=Path, default=default_cache_dir().parent / "features", help="joblib feature cache")
    p.add_argument("--no-cache", action="store_true", help="recompute every feature")
    return p.parse_args(argv)


def random_weights_dir(model: str, seed: int, root: Path) -> Path:
    """A weights directory with the architecture of ``model`` and seeded random weights."""
    torch.manual_seed(seed)
    encoder = build_encoder(read_config(model))
    return save_encoder(encoder, root / f"random-{Path(model).name}-seed{seed}")


def make_featurizer(name: str, seed: int, scratch: Path):
    """The featurizer called ``name`` (see the module docstring)."""
    if name == "ElementProperty":
        from matminer.featurizers.composition import ElementProperty

        return ElementProperty.from_preset("magpie", impute_nan=True)
    if name == "SineCoulombMatrix":
        from matminer.featurizers.structure import SineCoulombMatrix

        return SineCoulombMatrix(flatten=True)
    if name == "SiteStatsFingerprint":
        from matminer.featurizers.structure import SiteStatsFingerprint

        return SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    if name == "CrysAtom":
        from matssl_featurizers.composition import CrysAtomFeaturizer

        return CrysAtomFeaturizer()
    if name.startswith("random:"):
        model = name.split(":", 1)[1]
        return SSLStructureFeaturizer(model=f"random-{Path(model).name}", weights=str(random_weights_dir(model, seed, scratch)))
    if Path(name).is_dir():
        return SSLStructureFeaturizer(model=Path(name).name, weights=name)
    return SSLStructureFeaturizer(model=name)


def featurizer_identity(name: str, seed: int) -> str:
    """Everything besides the structures that decides the features of ``name``: the cache key's other half."""
    import matminer

    import matssl_featurizers

    if name in MATMINER_BASELINES:
        return f"{name} matminer {matminer.__version__}"
    if name == "CrysAtom":
        from matssl_featurizers.atom_vectors import atom_vectors_path

        return f"CrysAtom {weights_io.sha256(atom_vectors_path())}"
    if name.startswith("random:"):
        return f"random {json.dumps(read_config(name.split(':', 1)[1]), sort_keys=True)} seed {seed} torch {torch.__version__}"
    directory = weights_io.resolve(name)
    hashes = " ".join(weights_io.sha256(directory / f) for f in (weights_io.CONFIG_NAME, weights_io.WEIGHTS_NAME))
    return f"{hashes} matssl-featurizers {matssl_featurizers.__version__}"


def featurize(name: str, structures: list, seed: int, progress: bool = True) -> np.ndarray:
    """Features of every structure (a row of NaN where ``name`` fails), with a progress bar named after it."""
    with tempfile.TemporaryDirectory() as scratch:
        featurizer = make_featurizer(name, seed, Path(scratch))
        if name in MATMINER_BASELINES:
            entries = [s.composition for s in structures] if name == "ElementProperty" else structures
            if name == "SineCoulombMatrix":
                featurizer.fit(structures)
            rows = [featurizer.featurize_wrapper((x,), ignore_errors=True)
                    for x in tqdm(entries, desc=name, unit="structure", disable=not progress)]
        else:
            rows = featurizer.featurize_many(structures, ignore_errors=True, pbar=progress)
    return np.array(rows, dtype=float)


def _cached_features(name: str, identity: str, data_key: str, structures: list, seed: int) -> np.ndarray:
    """``featurize`` behind the joblib cache: keyed by name, identity, data_key and seed, not the structures."""
    return featurize(name, structures, seed)


def all_features(names: list[str], df: pd.DataFrame, seed: int, cache: Path | None) -> dict[str, np.ndarray]:
    """Features of every featurizer in ``names`` (``a+b`` concatenated; each part computed once) for the
    rows of ``df``, read from / written to the joblib cache ``cache`` when given."""
    compute = _cached_features
    if cache is not None:
        import joblib

        compute = joblib.Memory(cache, verbose=0).cache(_cached_features, ignore=["structures"])
    structures, data_key = list(df["structure"]), fingerprint(df)
    parts = {}
    for part in tqdm(list(dict.fromkeys(p for name in names for p in name.split("+"))), desc="featurizers", unit="featurizer"):
        parts[part] = compute(part, featurizer_identity(part, seed), data_key, structures, seed)
    return {name: np.hstack([parts[p] for p in name.split("+")]) for name in names}


def evaluate(features: dict, y: np.ndarray, splits: list, train_sizes, seed: int, ok: np.ndarray | None = None,
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


def markdown_table(results: pd.DataFrame, shapes: dict | None = None, key: str = "featurizer") -> str:
    """MAE mean ± std over folds: one row per ``key`` value, one column per target and training size,
    plus, given ``shapes`` (name -> (n_features, effective rank)), the features and their effective rank."""
    summary = (results.groupby(["target", "train_size", key], sort=False)
               .agg(mean=("mae", "mean"), std=("mae", "std"), n_train=("n_train", "mean")).reset_index())
    columns = summary[["target", "train_size"]].drop_duplicates().values.tolist()

    def size_label(target, size):
        if size != "all":
            return f"train size {size}"
        n = summary[(summary.target == target) & (summary.train_size == size)]["n_train"].mean()
        return f"train size all ≈ {n:.0f}"

    head = [key] + (["features (effective rank)"] if shapes else []) + [f"{t} MAE ({size_label(t, s)})" for t, s in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in summary[key].drop_duplicates():
        cells = [str(name)] + ([f"{shapes[name][0]} ({shapes[name][1]:.1f})"] if shapes else [])
        for target, size in columns:
            row = summary[(summary[key] == name) & (summary.target == target) & (summary.train_size == size)]
            cells.append(f"{row['mean'].iloc[0]:.4f} ± {row['std'].iloc[0]:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out: Path, text: str, payload: dict, cards=(), section: str | None = None) -> None:
    """Write ``results.md`` (``text``) and ``results.json`` (``payload``) to ``out``, print the text and
    put it into the evaluation section of each model directory in ``cards`` (the subsection titled
    ``section`` only, when given)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    print(text)
    for card_dir in cards:
        card.set_evaluation(Path(card_dir) / "README.md", text, section)


def command_line(module: str, argv) -> str:
    """The command that ran, for results and cards."""
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line("pretraining.evaluate", argv)
    targets = [t.strip() for t in args.target.split(",")]
    names = [n.strip() for n in args.featurizers.split(",")] if args.featurizers else default_featurizers()
    train_sizes = parse_train_sizes(args.train_sizes)
    df = load_labelled(args.data, targets, args.limit, args.seed)
    splits = cv_splits(len(df), args.folds, args.seed)
    features = all_features(names, df, args.seed, None if args.no_cache else args.cache)
    ok = np.all([np.isfinite(X).all(axis=1) for X in features.values()], axis=0)
    dropped = int((~ok).sum())
    records = []
    for target in targets:
        for r in evaluate(features, df[target].to_numpy(), splits, train_sizes, args.seed, ok):
            records.append({"target": target, **r})
    results = pd.DataFrame(records)
    shapes = {name: (X.shape[1], effective_rank(X[ok])) for name, X in features.items()}
    table = markdown_table(results, shapes)
    summary = (f"Random forest (scikit-learn defaults, random_state={args.seed}) on frozen features, "
               f"{args.folds}-fold cross-validation on identical folds, MAE mean ± std over folds; "
               f"{int(ok.sum())} structures from {', '.join(Path(p).name for p in args.data)}"
               + (f" ({dropped} dropped: a featurizer failed on them)" if dropped else "") + ".")
    text = f"{summary}\n\nCommand: `{command}`\n\n{table}\n"
    write_results(args.out, text, {"command": command, "n_structures": int(ok.sum()), "dropped": dropped, "targets": targets,
                                   "test_ids": [list(df.index[test]) for _, test in splits],
                                   "features": {n: {"n_features": f, "effective_rank": r} for n, (f, r) in shapes.items()},
                                   "results": records}, args.card, args.card_section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
