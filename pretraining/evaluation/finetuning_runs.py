"""Fine-tuning runs of one task: :class:`matssl_featurizers.SSLRegressor` from each starting point, on the identical
folds and training subsets the forests get, written as a result folder (the work of ``finetune``, which
``finetune_benchmark`` runs per task). The training loop is the estimator's: there is no other in the project."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.finetuning import SSLRegressor
from matssl_featurizers.neighbors import graph_batches

from ..arguments import at_least, held_out_share, positive_float
from .featurizer_names import distinct_architectures
from .forests import settings_of
from .results import markdown_table, write_results
from .tasks import SPLITS, cv_splits, parse_train_sizes, task_rows, training_rows

INITS = ("pretrained", "random", "crysatom")
# command-line option -> SSLRegressor argument; an option not given keeps the estimator's default
ESTIMATOR_OPTIONS = {"epochs": "max_epochs", "patience": "n_iter_no_change", "val_fraction": "validation_fraction",
                     "batch_size": "batch_size", "lr": "lr", "encoder_lr": "encoder_lr", "lr_schedule": "lr_schedule",
                     "freeze_epochs": "freeze_epochs", "weight_decay": "weight_decay", "hidden": "hidden",
                     "device": "device", "threads": "n_threads"}


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options of the fine-tuning runs of one task."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--target", required=True, help="target column(s), comma separated; one model per target")
    p.add_argument("--model", required=True, help="bundled model name(s) or weights directories, comma separated")
    p.add_argument("--init", default="pretrained,random", help=f"comma separated, of {', '.join(INITS)}")
    p.add_argument("--folds", type=at_least(2), default=5)
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all'")
    p.add_argument("--split", choices=SPLITS, default=None, help="fine-tune on the rows of this split only (default: all rows)")
    p.add_argument("--limit", type=at_least(1), default=None, help="use N labelled rows drawn with --seed")
    p.add_argument("--extra-train", type=at_least(1), default=None,
                   help="every fold also trains on N labelled rows of neither split, drawn with --seed (a large task)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-seeds", default="0", help="comma separated seeds of the randomly initialised starts "
                   "(default: %(default)s; rows random:MODEL@SEED when more than one)")
    estimator = inspect.signature(SSLRegressor.__init__).parameters
    defaults = {option: estimator[argument].default for option, argument in ESTIMATOR_OPTIONS.items()}
    p.add_argument("--epochs", type=at_least(1), default=defaults["epochs"], help="at most this many epochs (max_epochs)")
    p.add_argument("--patience", type=at_least(1), default=defaults["patience"], help="n_iter_no_change")
    p.add_argument("--val-fraction", type=held_out_share, default=defaults["val_fraction"], help="validation_fraction")
    p.add_argument("--batch-size", type=at_least(2), default=defaults["batch_size"])
    p.add_argument("--lr", type=positive_float, default=defaults["lr"], help="the head's learning rate")
    p.add_argument("--encoder-lr", type=positive_float, default=defaults["encoder_lr"], help="the encoder's (default: --lr)")
    p.add_argument("--lr-schedule", choices=("plateau", "cosine", "constant"), default=defaults["lr_schedule"])
    p.add_argument("--freeze-epochs", type=at_least(0), default=defaults["freeze_epochs"])
    p.add_argument("--weight-decay", type=float, default=defaults["weight_decay"])
    p.add_argument("--hidden", type=at_least(1), default=defaults["hidden"], help="width of the head's hidden layer")
    p.add_argument("--device", default=defaults["device"], help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=at_least(1), default=defaults["threads"],
                   help="torch threads (default: the cores no other process is using when a fit starts)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, nargs="*", default=[], help="model directories whose cards get the table")
    p.add_argument("--card-section", default="Fine-tuning", help="title of the card subsection the table replaces")
    return p


def estimator_arguments(args: argparse.Namespace) -> dict:
    """The SSLRegressor arguments of the command line."""
    return {argument: getattr(args, option) for option, argument in ESTIMATOR_OPTIONS.items()}


def start_weights(model: str, init: str, seed: int):
    """The encoder a run starts from: ``model``'s weights, random weights of its architecture drawn with ``seed``,
    or (``crysatom``) that CGCNN with the bundled CrysAtom vectors as fixed inputs, randomly initialised."""
    if init == "pretrained":
        return model
    trained = PretrainedEncoder.from_pretrained(model)
    if init == "random":
        return trained.random_like(seed)
    torch.manual_seed(seed)
    return PretrainedEncoder.from_config({**trained.readout_config(), "atom_input": "crysatom"})


def run_label(model: str, init: str, seed: int | None = None) -> str:
    """Row label: the model for ``pretrained``, ``random:MODEL`` and ``crysatom:MODEL`` (as the forests' names), with
    ``@SEED`` when ``seed`` is given."""
    if init == "pretrained":
        return model
    return f"{init}:{model}" + (f"@{seed}" if seed is not None else "")


def weight_seed(seed: int, fold: int, random_seed: int) -> int:
    """Seed of the weights drawn, the head and the batch order for one fold and one ``--random-seeds`` seed."""
    return seed + fold + 1000 * random_seed


def runs_of(models: list[str], inits: list[str]) -> list[tuple[str, str]]:
    """``(model, init)`` pairs; a randomly initialised architecture already listed is run once, and ``crysatom`` only
    for CGCNN models."""
    unknown = [init for init in inits if init not in INITS]
    if unknown:
        raise SystemExit(f"unknown --init {unknown[0]!r}; known: {', '.join(INITS)}")
    firsts = distinct_architectures(models)
    runs = []
    for model in models:
        for init in inits:
            if init == "crysatom" and PretrainedEncoder.from_pretrained(model).architecture != "cgcnn":
                continue
            if init == "pretrained" or model in firsts:
                runs.append((model, init))
    if not runs:
        raise SystemExit(f"nothing to run: --init crysatom needs a CGCNN model, and {', '.join(models)} are not")
    return runs


def finetune_task(args: argparse.Namespace, command: str) -> None:
    """Fine-tune every starting point on every fold and training size of one task and write ``results.json`` and
    ``results.md`` to ``args.out`` (and the cards of ``args.card``)."""
    targets = [t.strip() for t in args.target.split(",")]
    models = [m.strip() for m in args.model.split(",")]
    random_seeds = [int(x) for x in args.random_seeds.split(",")]
    runs = [(model, init, seed) for model, init in runs_of(models, [i.strip() for i in args.init.split(",")])
            for seed in ([0] if init == "pretrained" else random_seeds)]
    arguments = estimator_arguments(args)
    SSLRegressor(**arguments)._check_params()  # a bad option fails before any data is read
    train_sizes = parse_train_sizes(args.train_sizes)
    df, n_folded = task_rows(args.data, targets, args.limit, args.seed, args.split, args.extra_train)
    extra = np.arange(n_folded, len(df))
    splits = cv_splits(n_folded, args.folds, args.seed)
    structures = list(df["structure"])
    settings = PretrainedEncoder.from_pretrained(models[0]).graph_settings
    ok = np.array([not isinstance(g, Exception) for batch in graph_batches(structures, 256, **settings) for g in batch])
    if any(init == "crysatom" for _, init, _ in runs):  # rows with elements CrysAtom has no vector for are dropped for all
        from matssl_featurizers.atom_vectors import load_atom_vectors

        known = set(load_atom_vectors().index)
        ok &= np.array([{el.symbol for el in s.composition.elements} <= known for s in structures])
    records = []
    bar = tqdm(total=len(targets) * len(train_sizes) * len(splits) * len(runs), desc="fine-tuning", unit="run")
    for target in targets:
        y = df[target].to_numpy()
        for size in train_sizes:
            for fold, (train, test) in enumerate(splits):
                train = np.concatenate([training_rows(train, size, args.seed, fold), extra])
                train, test = train[ok[train]], test[ok[test]]
                for model, init, seed in runs:
                    random_state = weight_seed(args.seed, fold, seed)
                    estimator = SSLRegressor(**{**arguments, "weights": start_weights(model, init, random_state),
                                                "random_state": random_state})
                    estimator.fit([structures[i] for i in train], y[train])
                    mae = float(np.mean(np.abs(estimator.predict([structures[i] for i in test]) - y[test])))
                    records.append({"target": target, "model": run_label(model, init, seed if len(random_seeds) > 1 else None),
                                    "init": init, "random_seed": seed, "train_size": size, "n_train": int(len(train)),
                                    "n_test": int(len(test)), "fold": fold, "mae": mae,
                                    "best_epoch": estimator.best_epochs_[0], "epochs": len(estimator.history_[0]),
                                    "seconds": round(estimator.fit_seconds_, 2), "threads": estimator.n_threads_})
                    bar.update()
    bar.close()
    results = pd.DataFrame(records)
    dropped = int((~ok).sum())
    epochs = results.groupby("model", sort=False)["best_epoch"].mean()
    summary = (f"Fine-tuning with `SSLRegressor` ({', '.join(f'{k}={v}' for k, v in arguments.items())}), "
               f"{args.folds}-fold cross-validation, test MAE mean ± std over folds; {int(ok[:n_folded].sum())} "
               f"structures from {', '.join(Path(p).name for p in args.data)}"
               + (f" ({args.split} split)" if args.split else "")
               + (f", every fold training on {len(extra)} more rows of neither split" if args.extra_train else "")
               + (f" ({dropped} dropped: no crystal graph or no CrysAtom vector)" if dropped else "") + ". Mean best epoch: "
               + ", ".join(f"{name} {value:.1f}" for name, value in epochs.items())
               + f"; {results['seconds'].sum() / 60:.1f} min of training on {args.device}.")
    text = f"{summary}\n\nCommand: `{command}`\n\n{markdown_table(results, key='model')}\n"
    write_results(args.out, text, {"command": command, "data": [str(p) for p in args.data], "settings": settings_of(args),
                                   "n_structures": int(ok.sum()), "dropped": dropped, "targets": targets,
                                   "split": args.split, "test_ids": [list(df.index[test]) for _, test in splits],
                                   "results": records}, args.card, args.card_section)
