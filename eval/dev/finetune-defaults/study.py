"""Fine-tuning settings of SSLRegressor on the dev split: one configuration on one task.

    python eval/dev/finetune-defaults/study.py --task ../shared/data/castelli_perovskites.jsonl.gz:e_form \
        --config plateau-encoder-lr --out eval/dev/finetune-defaults/small/castelli-plateau-encoder-lr.json
    python eval/dev/finetune-defaults/study.py --task ../shared/data/mp_cgcnn.jsonl.gz:formation_energy_per_atom \
        --config constant --extra-train 10000 --out eval/dev/finetune-defaults/large/mp-constant.json

Small: 5-fold cross-validation of the task's dev split (about 1,600 training rows a fold). Large (``--extra-train N``):
N labelled rows from neither split train one model, scored on the whole dev split. A study script of
eval/dev/finetune-defaults (see its README); the configurations are CONFIGS, everything else the estimator's
arguments as given below. One torch thread, so that two runs share the two cores without slowing each other.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from matssl_featurizers import SSLRegressor
from pretraining.evaluation.tasks import OUTSIDE, cv_splits, load_labelled

CONFIGS = {
    # the loop of release 0.2.1's pretraining.finetune: Adam 1e-3 everywhere, constant rate, patience 10
    "constant": {"lr": 1e-3, "lr_schedule": "constant"},
    "plateau": {"lr": 1e-3, "lr_schedule": "plateau"},
    "plateau-encoder-lr": {"lr": 1e-3, "encoder_lr": 3e-4, "lr_schedule": "plateau"},
    "plateau-encoder-lr-freeze": {"lr": 1e-3, "encoder_lr": 3e-4, "lr_schedule": "plateau", "freeze_epochs": 3},
    "cosine-encoder-lr": {"lr": 1e-3, "encoder_lr": 3e-4, "lr_schedule": "cosine", "max_epochs": 60},
    "plateau-encoder-lr-batch32": {"lr": 1e-3, "encoder_lr": 3e-4, "lr_schedule": "plateau", "batch_size": 32},
}
COMMON = {"weights": "masked-denoising", "max_epochs": 100, "n_iter_no_change": 10, "validation_fraction": 0.1,
          "random_state": 0, "n_threads": 1}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, help="FILE:TARGET")
    p.add_argument("--config", required=True, choices=sorted(CONFIGS))
    p.add_argument("--extra-train", type=int, default=None, help="large mode: this many rows from neither split train")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    path, _, target = args.task.rpartition(":")
    dev = load_labelled([path], [target], split="dev")
    arguments = {**COMMON, **CONFIGS[args.config]}
    records = []
    if args.extra_train is None:
        X, y = list(dev["structure"]), dev[target].to_numpy()
        for fold, (train, test) in enumerate(cv_splits(len(dev), args.folds, 0)):
            records.append(run(arguments, [X[i] for i in train], y[train], [X[i] for i in test], y[test], fold))
    else:
        extra = load_labelled([path], [target], args.extra_train, 0, split=OUTSIDE)
        records.append(run(arguments, list(extra["structure"]), extra[target].to_numpy(), list(dev["structure"]),
                           dev[target].to_numpy(), 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"task": args.task, "config": args.config, "arguments": arguments,
                                    "extra_train": args.extra_train, "folds": records}, indent=1) + "\n")
    maes = [r["mae"] for r in records]
    print(f"{args.task} {args.config}: MAE {np.mean(maes):.4g} ± {np.std(maes, ddof=1) if len(maes) > 1 else 0:.2g}, "
          f"{np.mean([r['seconds'] for r in records]) / 60:.1f} min a fit")


def run(arguments, X, y, X_test, y_test, fold) -> dict:
    started = time.perf_counter()
    model = SSLRegressor(**arguments).fit(X, y)
    mae = float(np.mean(np.abs(model.predict(X_test) - y_test)))
    return {"fold": fold, "n_train": len(X), "n_test": len(X_test), "mae": mae, "best_epoch": model.best_epochs_[0],
            "epochs": len(model.history_[0]), "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    main()
