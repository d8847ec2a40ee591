"""Fine-tuning: a pretrained encoder plus a 2-layer MLP head, trained end to end on a labelled property,
against the same architecture from random initialisation (Crystal Twins Table 2; Magar et al. 2022).

    python -m pretraining.evaluation.finetune --data labelled.jsonl.gz --target band_gap --model crystal-twins \\
        --folds 5 --train-sizes 100,all --limit 2000 --out finetune/

The folds are those of ``pretraining.evaluation.evaluate`` given the same ``--data``, ``--target``, ``--split``, ``--limit``,
``--folds``, ``--train-sizes`` and ``--seed`` (:mod:`pretraining.evaluation.tasks`); ``--split test`` with ``--limit 2000
--folds 5`` gives the folds of the README's headline table. Within a fold's training rows,
``--val-fraction`` is held out for early stopping: training stops after ``--patience`` epochs without
a lower validation MAE, and the epoch with the lowest one is scored on the test rows. The loss is the
mean squared error of the target standardised on the training rows (as in CGCNN).

``--init`` (comma separated) chooses the starting points compared side by side:

* ``pretrained``: the weights of ``--model`` (a bundled name or a weights directory);
* ``random``: the same architecture, randomly initialised;
* ``crysatom``: the same CGCNN with the bundled CrysAtom atom vectors as fixed node inputs (CrysAtom's
  protocol; Mukherjee et al. 2024), randomly initialised.

The randomly initialised starts are drawn once per ``--random-seeds`` seed (rows ``random:MODEL@SEED`` when
more than one is given), so that the pretrained encoder can be compared with several draws, as
``pretraining.evaluation.evaluate`` does for random weights. Seed 0 draws the weights of a single-seed run.

Writes ``results.json`` and ``results.md`` (test MAE mean ± std over folds); ``--card DIR`` puts the
table into those model cards.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.graphs import collate_arrays
from matssl_featurizers.neighbors import graph_batches
from matssl_featurizers.runtime import idle_cores

from ..arguments import at_least, held_out_share, positive_float
from ..card import command_line
from .featurizer_names import distinct_architectures
from .forests import settings_of
from .results import markdown_table, write_results
from .tasks import SPLITS, cv_splits, load_labelled, parse_train_sizes, training_rows

INITS = ("pretrained", "random", "crysatom")


class PropertyRegressor(nn.Module):
    """An encoder and a 2-layer MLP head: ``y = W_2 softplus(W_1 encoder(G) + b_1) + b_2``.

    Shapes: a batch of ``B`` crystal graphs -> ``[B]`` (the standardised target).
    """

    def __init__(self, encoder: nn.Module, hidden: int = 64):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.out_features, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.encoder(batch)).squeeze(-1)


def build_model(model: str, init: str, seed: int, hidden: int = 64) -> PropertyRegressor:
    """The regressor for ``init`` (see the module docstring); weights not loaded are drawn with ``seed``.

    Every init builds exactly one encoder after seeding (loading one builds it, and building draws its initial
    weights), so the random encoders are the first draw of ``seed`` and every init's head is the same draw."""
    if init not in INITS:
        raise SystemExit(f"unknown --init {init!r}; known: {', '.join(INITS)}")
    # the config of a random start is read before seeding: reading it loads (so builds) the trained encoder
    config = None if init == "pretrained" else PretrainedEncoder.from_pretrained(model).config
    torch.manual_seed(seed)
    if init == "pretrained":
        encoder = PretrainedEncoder.from_pretrained(model)
    elif init == "random":
        encoder = PretrainedEncoder.from_config(config)
    else:
        encoder = PretrainedEncoder.from_config({**config, "atom_input": "crysatom"})
    return PropertyRegressor(encoder.train(), hidden)


def run_label(model: str, init: str, seed: int | None = None) -> str:
    """Row label: the model for ``pretrained``, ``random:MODEL`` and ``crysatom:MODEL`` (as in ``pretraining.evaluation.evaluate``),
    with ``@SEED`` when ``seed`` is given."""
    if init == "pretrained":
        return model
    return f"{init}:{model}" + (f"@{seed}" if seed is not None else "")


def weight_seed(seed: int, fold: int, random_seed: int) -> int:
    """Seed of the weights drawn and of the batch order for one fold and one ``--random-seeds`` seed."""
    return seed + fold + 1000 * random_seed


def graph_arrays(structures) -> list:
    """Neighbour arrays per structure, or the exception that kept one from a graph (in-process)."""
    return [graph for batch in graph_batches(structures, batch_size=256) for graph in batch]


def batches(rows: np.ndarray, batch_size: int, rng: np.random.Generator | None = None):
    """``rows`` in near-equal batches of at most ``batch_size`` (shuffled with ``rng``), never a lone leftover."""
    rows = rng.permutation(rows) if rng is not None else rows
    return np.array_split(rows, max(1, int(np.ceil(len(rows) / batch_size))))


def predict(model: PropertyRegressor, arrays: list, rows: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Standardised predictions for ``rows``."""
    model.eval()
    with torch.inference_mode():
        out = [model(collate_arrays([arrays[i] for i in part]).to(device)).float().cpu().numpy()
               for part in batches(rows, batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def fit(model: PropertyRegressor, arrays: list, y: np.ndarray, train: np.ndarray, val: np.ndarray, *, epochs: int,
        patience: int, batch_size: int, lr: float, device: str, seed: int, progress=None) -> dict:
    """Train ``model`` on ``y[train]`` (standardised with the training mean and std), keep the weights of the
    epoch with the lowest validation MAE and stop after ``patience`` epochs without one."""
    mean, std = float(y[train].mean()), float(y[train].std()) or 1.0
    target = torch.tensor((y - mean) / std, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    best, best_state, best_epoch, epoch = np.inf, None, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        for part in batches(train, batch_size, rng):
            loss = F.mse_loss(model(collate_arrays([arrays[i] for i in part]).to(device)), target[part].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_mae = float(np.mean(np.abs(predict(model, arrays, val, batch_size, device) * std + mean - y[val])))
        if val_mae < best:
            best, best_state, best_epoch = val_mae, copy.deepcopy(model.state_dict()), epoch
        if progress is not None:
            progress.set_postfix(epoch=epoch, val_mae=f"{val_mae:.4g}", best=f"{best:.4g}")
        if epoch - best_epoch >= patience:
            break
    if best_state is not None:  # None only if every validation MAE was NaN
        model.load_state_dict(best_state)
    return {"mean": mean, "std": std, "best_epoch": best_epoch, "epochs": epoch, "val_mae": best}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.finetune", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--target", required=True, help="target column(s), comma separated; one model per target")
    p.add_argument("--model", required=True, help="bundled model name(s) or weights directories, comma separated")
    p.add_argument("--init", default="pretrained,random", help=f"comma separated, of {', '.join(INITS)}")
    p.add_argument("--folds", type=at_least(2), default=5)
    p.add_argument("--train-sizes", default="all", help="comma separated training-set sizes per fold, or 'all'")
    p.add_argument("--split", choices=SPLITS, default=None, help="fine-tune on the rows of this split only (default: all rows)")
    p.add_argument("--limit", type=at_least(1), default=None, help="use N labelled rows drawn with --seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-seeds", default="0", help="comma separated seeds of the randomly initialised starts "
                   "(default: %(default)s; rows random:MODEL@SEED when more than one)")
    p.add_argument("--epochs", type=at_least(1), default=100, help="at most this many epochs")
    p.add_argument("--patience", type=at_least(1), default=10, help="early stopping: epochs without a lower validation MAE")
    p.add_argument("--val-fraction", type=held_out_share, default=0.1, help="share of each training set held out for early stopping")
    p.add_argument("--batch-size", type=at_least(1), default=64)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64, help="width of the head's hidden layer")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=at_least(1), default=None,
                   help="torch threads (default: the cores no other process is using when the command starts)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--card", type=Path, nargs="*", default=[], help="model directories whose cards get the table")
    p.add_argument("--card-section", default="Fine-tuning", help="title of the card subsection the table replaces")
    return p.parse_args(argv)


def runs_of(models: list[str], inits: list[str]) -> list[tuple[str, str]]:
    """``(model, init)`` pairs; a randomly initialised architecture already listed is run once, and
    ``crysatom`` only for CGCNN models."""
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


def fold_result(model_name: str, init: str, arrays: list, y: np.ndarray, fit_rows, val, test, args, fold: int,
             device, progress=None, random_seed: int = 0) -> dict:
    """Fine-tune one initialisation on one fold: test MAE, best and last epoch, seconds."""
    seed = weight_seed(args.seed, fold, random_seed)
    model = build_model(model_name, init, seed, args.hidden).to(device)
    start = time.perf_counter()
    info = fit(model, arrays, y, fit_rows, val, epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
               lr=args.lr, device=device, seed=seed, progress=progress)
    pred = predict(model, arrays, test, args.batch_size, device) * info["std"] + info["mean"]
    return {"mae": float(np.mean(np.abs(pred - y[test]))), "best_epoch": info["best_epoch"], "epochs": info["epochs"],
            "seconds": round(time.perf_counter() - start, 2)}


def main(argv=None) -> int:
    args = parse_args(argv)
    args.threads = args.threads or idle_cores()  # measured before this command loads the machine
    torch.set_num_threads(args.threads)
    command = command_line("pretraining.evaluation.finetune", argv)
    targets = [t.strip() for t in args.target.split(",")]
    models = [m.strip() for m in args.model.split(",")]
    random_seeds = [int(x) for x in args.random_seeds.split(",")]
    runs = [(model, init, seed) for model, init in runs_of(models, [i.strip() for i in args.init.split(",")])
            for seed in ([0] if init == "pretrained" else random_seeds)]
    for model, init, _ in runs:  # fail before any training on a bad model or init
        build_model(model, init, args.seed, args.hidden)
    train_sizes = parse_train_sizes(args.train_sizes)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    df = load_labelled(args.data, targets, args.limit, args.seed, split=args.split)
    splits = cv_splits(len(df), args.folds, args.seed)
    arrays = graph_arrays(tqdm(df["structure"], desc="crystal graphs", unit="structure"))
    ok = np.array([not isinstance(a, Exception) for a in arrays])
    if any(init == "crysatom" for _, init, _ in runs):  # rows with elements CrysAtom has no vector for are dropped for every run
        from matssl_featurizers.atom_vectors import load_atom_vectors

        known = set(load_atom_vectors().index)
        ok &= np.array([{el.symbol for el in s.composition.elements} <= known for s in df["structure"]])
    records = []
    bar = tqdm(total=len(targets) * len(train_sizes) * len(splits) * len(runs), desc="fine-tuning", unit="run")
    for target in targets:
        y = df[target].to_numpy()
        for size in train_sizes:
            for fold, (train, test) in enumerate(splits):
                train = training_rows(train, size, args.seed, fold)
                train, test = train[ok[train]], test[ok[test]]
                shuffled = np.random.default_rng(args.seed + fold).permutation(train)
                n_val = max(2, int(round(args.val_fraction * len(train))))
                val, fit_rows = shuffled[:n_val], shuffled[n_val:]
                for model_name, init, seed in runs:
                    record = fold_result(model_name, init, arrays, y, fit_rows, val, test, args, fold, device, bar, seed)
                    label = run_label(model_name, init, seed if len(random_seeds) > 1 else None)
                    records.append({"target": target, "model": label, "init": init, "random_seed": seed,
                                    "train_size": size, "n_train": int(len(train)), "n_fit": int(len(fit_rows)),
                                    "n_val": int(n_val), "n_test": int(len(test)), "fold": fold, **record})
                    bar.update()
    bar.close()
    results = pd.DataFrame(records)
    dropped = int((~ok).sum())
    epochs = results.groupby("model", sort=False)["best_epoch"].mean()
    summary = (f"Fine-tuning (encoder + 2-layer MLP head, Adam lr {args.lr}, batch {args.batch_size}, at most "
               f"{args.epochs} epochs, early stopping with patience {args.patience} on {args.val_fraction:.0%} of each "
               f"training set), {args.folds}-fold cross-validation, test MAE mean ± std over folds; {int(ok.sum())} "
               f"structures from {', '.join(Path(p).name for p in args.data)}"
               + (f" ({args.split} split)" if args.split else "")
               + (f" ({dropped} dropped: no crystal graph or no CrysAtom vector)" if dropped else "") + ". Mean best epoch: "
               + ", ".join(f"{name} {value:.1f}" for name, value in epochs.items())
               + f"; {results['seconds'].sum() / 60:.1f} min of training on {args.device}.")
    text = f"{summary}\n\nCommand: `{command}`\n\n{markdown_table(results, key='model')}\n"
    write_results(args.out, text, {"command": command, "data": [str(p) for p in args.data], "settings": settings_of(args),
                                   "n_structures": int(ok.sum()), "dropped": dropped,
                                   "targets": targets, "split": args.split, "test_ids": [list(df.index[test]) for _, test in splits],
                                   "results": records}, args.card, args.card_section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
