"""One-command check of the GPU path: a few hundred pretraining steps and one fine-tuning fold on a device, against
the CPU.

    python -m pretraining.evaluation.gpu_check --data-dir ../shared/data --device cuda --out runs/gpu-check

1. ``python -m pretraining.run --method masked-denoising`` on the first ``--structures`` mp_cgcnn structures for
   ``--epochs`` epochs on ``--device`` (about 300 optimizer steps with the defaults), with and without ``--amp``
   (bf16 autocast), and one epoch of the same on the CPU: structures per second of each, and whether the
   training loss fell from the first epoch to the last.
2. ``SSLRegressor`` fine-tuned on the first of the 5 test folds of castelli ``e_form`` (≈ 1,600 training rows) on
   ``--device`` and on the CPU, with the same ``random_state``: minutes and test MAE of each.

It prints one line per measurement and ``GPU check: passed`` when every loss fell and the device fits are finite;
the exit status is 1 otherwise. Sized to end within 10 minutes on one H100 (most of it the CPU comparison and
building the crystal graphs); ``--device cpu --structures 300 --epochs 2`` runs the same steps anywhere (the tests).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from matssl_featurizers import SSLRegressor

from ..arguments import at_least
from .tasks import cv_splits, load_labelled


def pretrain(data: Path, device: str, structures: int, epochs: int, out: Path, amp: bool = False) -> dict:
    """Structures per second and train losses of a short ``pretraining.run`` on ``device`` (in its own process)."""
    command = [sys.executable, "-m", "pretraining.run", "--method", "masked-denoising", "--data", str(data),
               "--limit", str(structures), "--epochs", str(epochs), "--device", device, "--out", str(out),
               "--no-progress", "--workers", "4"] + (["--amp"] if amp else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pretraining on {device} failed:\n{done.stderr[-2000:]}")
    history = [json.loads(line) for line in (out / "training" / "metrics.jsonl").read_text().splitlines()]
    return {"losses": [h["train_loss"] for h in history],
            "structures_per_second": max(h["structures_per_second"] for h in history)}


def finetune(X, y, train, test, device: str, epochs: int | None) -> dict:
    started = time.perf_counter()
    model = SSLRegressor(device=device, random_state=0, **({"max_epochs": epochs} if epochs else {}))
    model.fit([X[i] for i in train], y[train])
    mae = float(np.mean(np.abs(model.predict([X[i] for i in test]) - y[test])))
    return {"minutes": (time.perf_counter() - started) / 60, "mae": mae, "epochs": len(model.history_[0])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="the folder holding the shared datasets")
    p.add_argument("--device", default="cuda")
    p.add_argument("--structures", type=at_least(4), default=20_000, help="pretraining structures (default: %(default)s)")
    p.add_argument("--epochs", type=at_least(2), default=2, help="pretraining epochs on the device (default: %(default)s)")
    p.add_argument("--fine-tune-rows", type=at_least(2), default=None, help="training rows of the fold (default: all)")
    p.add_argument("--fine-tune-epochs", type=at_least(1), default=None, help="max_epochs (default: the estimator's)")
    p.add_argument("--out", type=Path, required=True, help="a folder for the short runs")
    args = p.parse_args(argv)
    mp, castelli = args.data_dir / "mp_cgcnn.jsonl.gz", args.data_dir / "castelli_perovskites.jsonl.gz"
    ok = True
    runs = {"device": pretrain(mp, args.device, args.structures, args.epochs, args.out / "device"),
            "device, bf16": pretrain(mp, args.device, args.structures, args.epochs, args.out / "amp", amp=True),
            "cpu": pretrain(mp, "cpu", min(args.structures, 3000), 1, args.out / "cpu")}
    for name, run in runs.items():
        fell = len(run["losses"]) < 2 or run["losses"][-1] < run["losses"][0]
        ok &= fell
        print(f"pretraining ({name}): {run['structures_per_second']:.0f} structures/s, train loss "
              + " -> ".join(f"{loss:.3f}" for loss in run["losses"]) + ("" if fell else "  (did not fall)"), flush=True)
    print(f"pretraining speed-up of {args.device} over the CPU: "
          f"{runs['device']['structures_per_second'] / runs['cpu']['structures_per_second']:.1f}x "
          f"(bf16: {runs['device, bf16']['structures_per_second'] / runs['cpu']['structures_per_second']:.1f}x)")
    df = load_labelled([castelli], ["e_form"], split="test")
    X, y = list(df["structure"]), df["e_form"].to_numpy()
    train, test = cv_splits(len(df), 5, 0)[0]
    train = train[: args.fine_tune_rows]
    fits = [(device, finetune(X, y, train, test, device, args.fine_tune_epochs)) for device in (args.device, "cpu")]
    for device, fit in fits:
        ok &= bool(np.isfinite(fit["mae"]))
        print(f"fine-tuning castelli e_form, fold 1 ({len(train)} training rows) on {device}: {fit['minutes']:.1f} min, "
              f"{fit['epochs']} epochs, test MAE {fit['mae']:.4f}", flush=True)
    print("GPU check: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
