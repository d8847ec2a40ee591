"""Pretrain an encoder on your own structures, fine-tune it on your labels, predict and save it.

    python examples/finetune_your_model.py [DATA.jsonl.gz] [--target formation_energy_peratom] [--out runs/mine]

1. ``python -m pretraining.run --method masked-denoising --data DATA --out OUT/pretrained`` pretrains without labels
   (here a couple of epochs; a real run uses many structures and the method's default epochs).
2. ``SSLRegressor(weights="OUT/pretrained").fit(train, y)`` fine-tunes that encoder end to end on the labelled rows.
3. ``predict`` the held-out rows, ``save_pretrained("OUT/finetuned")``, and load it back with ``from_pretrained``;
   ``SSLStructureFeaturizer(weights="OUT/finetuned")`` featurizes with the fine-tuned encoder.

The default data are the 40 JARVIS-DFT structures of examples/data (their formation energies as labels), so the
numbers mean little: it shows the steps, in about a minute on two CPU cores.
"""

import argparse
import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from matssl_featurizers import SSLRegressor, SSLStructureFeaturizer

HERE = Path(__file__).parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", default=HERE / "data" / "jarvis_sample.jsonl.gz", type=Path)
    parser.add_argument("--target", default="formation_energy_peratom")
    parser.add_argument("--out", default=Path("runs") / "mine", type=Path)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=30, help="of the fine-tuning")
    args = parser.parse_args(argv)

    subprocess.run([sys.executable, "-m", "pretraining.run", "--method", "masked-denoising", "--data", str(args.data),
                    "--epochs", str(args.pretrain_epochs), "--out", str(args.out / "pretrained"), "--no-progress"],
                   check=True)

    with gzip.open(args.data, "rt") as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [row for row in map(json.loads, handle) if row.get(args.target) is not None]
        structures = [Structure.from_str(row["cif"], fmt="cif") for row in rows]
    y = np.array([row[args.target] for row in rows])
    n_train = int(0.75 * len(rows))

    model = SSLRegressor(weights=str(args.out / "pretrained"), max_epochs=args.max_epochs, random_state=0)
    model.fit(structures[:n_train], y[:n_train])
    predicted = model.predict(structures[n_train:])
    print(f"fine-tuned on {n_train} structures (best epoch {model.best_epochs_[0]}); test MAE "
          f"{np.mean(np.abs(predicted - y[n_train:])):.3f} against {np.mean(np.abs(y[n_train:] - y[:n_train].mean())):.3f} "
          "for predicting the training mean")

    folder = model.save_pretrained(args.out / "finetuned")
    again = SSLRegressor.from_pretrained(folder)
    assert np.allclose(again.predict(structures[n_train:]), predicted)
    vectors = SSLStructureFeaturizer(weights=str(folder)).featurize_many(structures[:2], pbar=False)
    print(f"saved to {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))}); its encoder gives "
          f"{len(vectors[0])} features per structure")


if __name__ == "__main__":
    main()
