"""Random forest on frozen features: pretrained encoders against random weights, input statistics and
matminer baselines.

    python -m pretraining.evaluate --data labelled.jsonl.gz --target formation_energy_per_atom,band_gap \\
        --split dev --folds 5 --train-sizes 100,all --out eval/dev/

Every featurizer sees identical K-fold splits (:mod:`pretraining.tasks`, shared with
``pretraining.finetune``) of the rows of ``--split`` (``dev`` for model choices, ``test`` for the
published tables; all labelled rows when not given); scikit-learn's ``RandomForestRegressor`` with a
fixed seed (default hyperparameters; ``--max-features`` changes the share of features tried per split)
is fitted on each training fold, or on ``--train-sizes`` rows drawn from it. Rows a featurizer fails on
are dropped from every featurizer's folds (and counted). Features are cached with joblib under
``--cache`` keyed by featurizer, weights, structures and the source of ``matssl_featurizers`` (so an edit
of the featurizing code computes them anew), so a second run only fits forests. Writes
``results.json`` and ``results.md`` (MAE mean ± std over folds); ``--card DIR`` also puts the table into
that model's card.

Featurizer names (comma separated; ``a+b`` concatenates the features of a and b):

* a bundled model (``crystal-twins``) or a weights directory; ``MODEL#K``: its first K principal components;
* ``random:MODEL``: the architecture of MODEL with random weights, once per ``--random-seeds`` seed
  (rows ``random:MODEL@SEED``);
* ``inputs:MODEL``: the statistics (mean, std, min, max, range over the sites) of the per-element input
  table MODEL's encoder reads (CGCNN's 92 features, CrysAtom vectors, or its learned embedding): the
  control an encoder must beat to be worth running;
* ``preset:NAME``: ``HybridStructureFeaturizer.from_preset(NAME)``;
* ``CrysAtom`` / ``CGCNN92``: composition statistics of those element tables;
* ``ShellAnisotropy``: the parameter-free anisotropy of each site's neighbour shells (no weights);
* ``ElementProperty`` (magpie), ``SineCoulombMatrix``, ``SiteStatsFingerprint`` (CrystalNN ops; about
  0.3 s per structure, so not in the default set), ``DensityFeatures`` (density, volume per atom, packing
  fraction).

``--readout``, ``--pool`` and ``--no-pool-edges`` rebuild every encoder (pretrained or random) with
another parameter-free readout of the same weights, for choosing the readout on the dev split.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from matssl_featurizers import weights as weights_io
from matssl_featurizers.encoders import build_encoder
from matssl_featurizers.weights import load_encoder, read_config, save_encoder

from . import card
from .arguments import at_least, share
from .data import default_cache_dir
from .tasks import SPLITS, cv_splits, fingerprint, load_labelled, parse_train_sizes, training_rows

MATMINER_BASELINES = ("ElementProperty", "SineCoulombMatrix", "SiteStatsFingerprint", "DensityFeatures")
COMPOSITION_FEATURIZERS = ("CrysAtom", "CGCNN92")
GEOMETRY_FEATURIZERS = ("ShellAnisotropy",)
SLOW = {"SiteStatsFingerprint": 0.3}  # seconds per structure, for the warning


def distinct_architectures(models: list[str]) -> list[str]:
    """The models whose encoder (``config.json`` without metadata and stored principal components) no earlier
    model in the list has: one per architecture, so that random weights of an architecture (seeded the
    same) are evaluated once."""
    firsts, seen = [], []
    for model in models:
        config = random_config(model, {})
        if config not in seen:
            seen.append(config)
            firsts.append(model)
    return firsts


def default_featurizers() -> list[str]:
    """Every bundled model, ``random:`` of each distinct bundled architecture, ``inputs:`` of each, the
    composition tables, ElementProperty, SineCoulombMatrix, and each bundled model + ElementProperty."""
    models = sorted(weights_io.bundled_index(), key=lambda m: (m != weights_io.DEFAULT_MODEL, m))
    distinct = distinct_architectures(models)
    controls = [f"random:{m}" for m in distinct] + [f"inputs:{m}" for m in distinct]
    return [*models, *controls, *COMPOSITION_FEATURIZERS, "ElementProperty", "SineCoulombMatrix",
            *(f"{m}+ElementProperty" for m in models)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--target", required=True, help="target column(s), comma separated")
    p.add_argument("--featurizers", default=None,
                   help="comma separated names (see above); default: the bundled models and their controls, "
                        "composition tables, ElementProperty, SineCoulombMatrix, each model+ElementProperty")
    p.add_argument("--split", choices=SPLITS, default=None, help="evaluate on the rows of this split only (default: all rows)")
    p.add_argument("--folds", type=at_least(2), default=5, help="default: %(default)s")
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all' (default)")
    p.add_argument("--limit", type=at_least(1), default=None, help="evaluate on N labelled rows drawn with --seed (default: all)")
    p.add_argument("--seed", type=int, default=0, help="folds, subsets and forests (default: %(default)s)")
    p.add_argument("--random-seeds", default="0,1,2", help="seeds of the random:MODEL weights (default: %(default)s)")
    p.add_argument("--max-features", type=share, default=1.0,
                   help="share of features each split of the forest tries (default: %(default)s, scikit-learn's)")
    p.add_argument("--readout", default=None, help="rebuild every encoder with this readout (layers, head, set2set)")
    p.add_argument("--pool", default=None, help="with --readout layers: comma separated statistics, e.g. mean,max,std (any of mean, max, min, std)")
    p.add_argument("--no-pool-edges", action="store_true", help="with --readout layers: no mean edge expansion")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, nargs="*", default=[], help="model directories whose cards get the table")
    p.add_argument("--card-section", default=None, help="title of the card subsection the table replaces (default: the whole evaluation)")
    p.add_argument("--cache", type=Path, default=default_cache_dir().parent / "features", help="joblib feature cache")
    p.add_argument("--no-cache", action="store_true", help="recompute every feature")
    return p.parse_args(argv)


def readout_overrides(readout: str | None, pool: str | None = None, pool_edges: bool = True) -> dict:
    """The encoder-config changes of ``--readout``/``--pool``/``--no-pool-edges`` (empty without ``--readout``)."""
    if readout is None:
        if pool is not None or not pool_edges:
            raise SystemExit("--pool and --no-pool-edges need --readout layers")
        return {}
    overrides = {"readout": readout}
    if readout == "layers":
        overrides["pool_edges"] = pool_edges
        if pool is not None:
            overrides["pool"] = [p.strip() for p in pool.split(",")]
    return overrides


def variant_config(source, overrides: dict) -> dict:
    """The ``config.json`` of ``source`` with ``overrides`` (a CGCNN ``"layers"`` readout has no output layer)."""
    config = {**read_config(source), **overrides}
    if "readout" in overrides:
        config["readout_components"] = 0  # principal components belong to the readout they were fitted on
        if config["architecture"] == "cgcnn":
            config["out_dim"] = 0 if overrides["readout"] == "layers" else (read_config(source).get("out_dim") or 128)
    return config


def random_config(source, overrides: dict) -> dict:
    """The config of random weights for ``source``'s architecture: every constructor argument (defaults filled
    in), no metadata, no fitted principal components."""
    return build_encoder({**weights_io.encoder_arguments(variant_config(source, overrides)), "readout_components": 0}).config


def with_readout(source, overrides: dict):
    """The trained encoder of ``source`` rebuilt with the readout ``overrides`` (a parameter-free readout keeps
    every trained tensor it reads; tensors only the old readout had are dropped; no principal components)."""
    encoder = build_encoder(variant_config(source, overrides))
    trained = load_encoder(source).state_dict()
    state = encoder.state_dict()
    missing = [k for k in state if k not in trained or trained[k].shape != state[k].shape]
    if missing:
        raise SystemExit(f"{source}: the readout {overrides} needs tensors the weights lack: {missing[:3]}")
    encoder.load_state_dict({k: trained[k] for k in state})
    return encoder


def encoder_weights(source, overrides: dict, root: Path, seed: int | None = None) -> str:
    """A weights directory (or bundled name) for the encoder of ``source``: its own weights, or with ``seed``
    seeded random weights of its architecture; rebuilt with the readout ``overrides`` when given (the
    parameter-free readouts keep every trained tensor; tensors only the old readout had are dropped)."""
    if seed is None and not overrides:
        return str(source)
    if seed is None:
        encoder = with_readout(source, overrides)
    else:
        torch.manual_seed(seed)
        encoder = build_encoder(random_config(source, overrides))
    tag = "random" if seed is not None else "variant"
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return str(save_encoder(encoder, root / f"{tag}-{Path(str(source)).name}-{seed}-{digest}",
                            method=None if seed is not None else read_config(source).get("method")))


def input_table_featurizer(model, root: Path):
    """Composition statistics of the per-element table the encoder of ``model`` reads (see ``inputs:``)."""
    from pymatgen.core import Element

    from matssl_featurizers.atom_vectors import save_atom_vectors
    from matssl_featurizers.composition import AtomVectorFeaturizer
    from matssl_featurizers.encoders import N_ELEMENTS

    config = read_config(model)
    if config.get("atom_input", "embedding") != "embedding":
        return AtomVectorFeaturizer(vectors=config["atom_input"])
    weights = load_encoder(model).embedding.weight.detach().double().numpy()
    table = pd.DataFrame(weights[1:N_ELEMENTS + 1], index=[Element.from_Z(z).symbol for z in range(1, N_ELEMENTS + 1)])
    return AtomVectorFeaturizer(vectors=str(save_atom_vectors(table, root / f"inputs-{Path(str(model)).name}.csv")))


def parse_name(name: str) -> tuple[str, str, int | None]:
    """``(kind, argument, seed)`` of a featurizer name: ``random:MODEL@SEED`` -> ``("random", MODEL, SEED)``."""
    kind, _, argument = name.partition(":") if ":" in name and name.split(":", 1)[0] in ("random", "inputs", "preset") else ("model", "", name)
    seed = None
    if kind == "random":
        argument, _, seed_text = argument.rpartition("@")
        seed = int(seed_text)
    return kind, argument, seed


def make_featurizer(name: str, scratch: Path, overrides: dict | None = None):
    """The featurizer called ``name`` (see the module docstring; ``random:`` names carry their ``@SEED``)."""
    overrides = overrides or {}
    if name == "ElementProperty":
        from matminer.featurizers.composition import ElementProperty

        return ElementProperty.from_preset("magpie", impute_nan=True)
    if name == "SineCoulombMatrix":
        from matminer.featurizers.structure import SineCoulombMatrix

        return SineCoulombMatrix(flatten=True)
    if name == "SiteStatsFingerprint":
        from matminer.featurizers.structure import SiteStatsFingerprint

        return SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    if name == "DensityFeatures":
        from matminer.featurizers.structure import DensityFeatures

        return DensityFeatures()
    if name in COMPOSITION_FEATURIZERS:
        from matssl_featurizers.composition import AtomVectorFeaturizer

        return AtomVectorFeaturizer.from_preset("crysatom" if name == "CrysAtom" else "cgcnn92")
    if name in GEOMETRY_FEATURIZERS:
        from matssl_featurizers.anisotropy import ShellAnisotropy

        return ShellAnisotropy()
    kind, argument, seed = parse_name(name)
    if kind == "inputs":
        return input_table_featurizer(argument, scratch)
    if kind == "preset":
        from matssl_featurizers.hybrid import HybridStructureFeaturizer

        return HybridStructureFeaturizer.from_preset(argument)
    from matssl_featurizers.featurizers import SSLStructureFeaturizer

    source, _, components = (argument if kind == "random" else name).partition("#")
    label = f"random-{Path(source).name}" if kind == "random" else Path(source).name
    return SSLStructureFeaturizer(model=label, weights=encoder_weights(source, overrides, scratch, seed),
                                  n_components=int(components) if components else None)


@functools.lru_cache(maxsize=1)
def package_source() -> str:
    """A digest of ``matssl_featurizers``' Python source: features cached by other code are never reused."""
    import matssl_featurizers

    root = Path(matssl_featurizers.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def featurizer_identity(name: str, overrides: dict | None = None) -> str:
    """Everything besides the structures that decides the features of ``name``: the cache key's other half."""
    import matminer

    import matssl_featurizers

    overrides = overrides or {}
    if name in MATMINER_BASELINES:
        return f"{name} matminer {matminer.__version__}"
    version = f"matssl-featurizers {matssl_featurizers.__version__} source {package_source()} torch {torch.__version__}"
    if name in COMPOSITION_FEATURIZERS:
        from matssl_featurizers.atom_vectors import atom_vectors_path

        return f"{name} {weights_io.sha256(atom_vectors_path()) if name == 'CrysAtom' else matminer.__version__} {version}"
    if name in GEOMETRY_FEATURIZERS:
        return f"{name} {version}"
    kind, argument, seed = parse_name(name)
    if kind == "random":
        return f"random {json.dumps(random_config(argument, overrides), sort_keys=True)} seed {seed} {version}"
    if kind == "preset":
        return f"preset {argument} {version}"
    directory = weights_io.resolve(argument if kind == "inputs" else name.partition("#")[0])
    hashes = " ".join(weights_io.sha256(directory / f) for f in (weights_io.CONFIG_NAME, weights_io.WEIGHTS_NAME))
    return f"{kind} {hashes} {json.dumps(overrides, sort_keys=True) if kind == 'model' else ''} {version}"


def featurize(name: str, structures: list, overrides: dict | None = None, progress: bool = True) -> np.ndarray:
    """Features of every structure (a row of NaN where ``name`` fails), with a progress bar named after it."""
    with tempfile.TemporaryDirectory() as scratch:
        featurizer = make_featurizer(name, Path(scratch), overrides)
        if name in MATMINER_BASELINES:
            entries = [s.composition for s in structures] if name == "ElementProperty" else structures
            if name == "SineCoulombMatrix":
                featurizer.fit(structures)
            rows = [featurizer.featurize_wrapper((x,), ignore_errors=True)
                    for x in tqdm(entries, desc=name, unit="structure", disable=not progress)]
        else:
            rows = featurizer.featurize_many(structures, ignore_errors=True, pbar=progress)
    return np.array(rows, dtype=float)


def _cached_features(name: str, identity: str, data_key: str, structures: list, overrides: dict) -> np.ndarray:
    """``featurize`` behind the joblib cache: keyed by name, identity, data_key and overrides, not the structures."""
    return featurize(name, structures, overrides)


def expand_names(names: list[str], random_seeds: list[int]) -> list[str]:
    """``random:MODEL`` (also inside ``a+b``) -> one name per seed, ``random:MODEL@SEED``."""
    out = []
    for name in names:
        parts = name.split("+")
        randoms = [i for i, p in enumerate(parts) if p.startswith("random:") and "@" not in p]
        if not randoms:
            out.append(name)
            continue
        for seed in random_seeds:
            out.append("+".join(f"{p}@{seed}" if i in randoms else p for i, p in enumerate(parts)))
    return out


def all_features(names: list[str], df: pd.DataFrame, cache: Path | None, overrides: dict | None = None) -> dict[str, np.ndarray]:
    """Features of every featurizer in ``names`` (``a+b`` concatenated; each part computed once) for the
    rows of ``df``, read from / written to the joblib cache ``cache`` when given."""
    overrides = overrides or {}
    compute = _cached_features
    if cache is not None:
        import joblib

        compute = joblib.Memory(cache, verbose=0).cache(_cached_features, ignore=["structures"])
    structures, data_key = list(df["structure"]), fingerprint(df)
    parts = list(dict.fromkeys(p for name in names for p in name.split("+")))
    for part in parts:
        if part in SLOW:
            print(f"note: {part} takes about {SLOW[part] * len(structures) / 60:.0f} min for {len(structures)} structures",
                  file=sys.stderr)
    features = {}
    for part in tqdm(parts, desc="featurizers", unit="featurizer"):
        features[part] = compute(part, featurizer_identity(part, overrides), data_key, structures, overrides)
    return {name: np.hstack([features[p] for p in name.split("+")]) for name in names}


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


def main(argv=None) -> int:
    args = parse_args(argv)
    command = card.command_line("pretraining.evaluate", argv)
    targets = [t.strip() for t in args.target.split(",")]
    overrides = readout_overrides(args.readout, args.pool, not args.no_pool_edges)
    random_seeds = [int(x) for x in args.random_seeds.split(",")]
    names = expand_names([n.strip() for n in args.featurizers.split(",")] if args.featurizers else default_featurizers(),
                         random_seeds)
    train_sizes = parse_train_sizes(args.train_sizes)
    df = load_labelled(args.data, targets, args.limit, args.seed, split=args.split)
    splits = cv_splits(len(df), args.folds, args.seed)
    features = all_features(names, df, None if args.no_cache else args.cache, overrides)
    ok = np.all([np.isfinite(X).all(axis=1) for X in features.values()], axis=0)
    dropped = int((~ok).sum())
    records = []
    for target in targets:
        for r in evaluate(features, df[target].to_numpy(), splits, train_sizes, args.seed, ok, max_features=args.max_features):
            records.append({"target": target, **r})
    results = pd.DataFrame(records)
    shapes = {name: (X.shape[1], effective_rank(X[ok])) for name, X in features.items()}
    table = markdown_table(results, shapes)
    forest = "scikit-learn defaults" + (f" but max_features={args.max_features:g}" if args.max_features != 1.0 else "")
    summary = (f"Random forest ({forest}, random_state={args.seed}) on frozen features, "
               f"{args.folds}-fold cross-validation on identical folds, MAE mean ± std over folds; "
               f"{int(ok.sum())} structures from {', '.join(Path(p).name for p in args.data)}"
               + (f" ({args.split} split)" if args.split else "")
               + (f" ({dropped} dropped: a featurizer failed on them)" if dropped else "")
               + (f"; random weights with seeds {args.random_seeds}" if any("random:" in n for n in names) else "")
               + (f"; every encoder with readout {json.dumps(overrides)}" if overrides else "") + ".")
    text = f"{summary}\n\nCommand: `{command}`\n\n{table}\n"
    write_results(args.out, text, {"command": command, "n_structures": int(ok.sum()), "dropped": dropped, "targets": targets,
                                   "split": args.split, "readout": overrides,
                                   "test_ids": [list(df.index[test]) for _, test in splits],
                                   "features": {n: {"n_features": f, "effective_rank": r} for n, (f, r) in shapes.items()},
                                   "results": records}, args.card, args.card_section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
