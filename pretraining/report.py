"""One Markdown table from several ``results.json`` of ``pretraining.evaluate`` or ``pretraining.finetune``.

    python -m pretraining.report eval/mp_cgcnn/finetune eval/castelli_perovskites/finetune --digits 3

One row per featurizer (or fine-tuned model), one column per dataset, target and training size
(``--transpose``: the other way round), MAE mean ± std over folds; the lowest mean of each dataset,
target and training size is bold. Each column has at least ``--digits`` decimals and enough to show its
smallest mean to three significant figures. Featurizers missing from a run leave their cells empty.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def load_results(directory: Path) -> pd.DataFrame:
    """The per-fold records of one run, with ``task`` = the run's data file name and ``row`` = featurizer or model."""
    payload = json.loads((Path(directory) / "results.json").read_text())
    records = pd.DataFrame(payload["results"])
    records["row"] = records["featurizer"] if "featurizer" in records else records["model"]
    words = shlex.split(payload["command"])
    records["task"] = Path(words[words.index("--data") + 1]).name.split(".")[0]
    return records


def combined_table(directories, digits: int = 3, transpose: bool = False) -> str:
    """MAE mean ± std over folds of every run in ``directories``: one row per featurizer or model and one
    column per (task, target, train size), or the other way round with ``transpose``."""
    records = pd.concat([load_results(d) for d in directories], ignore_index=True)
    records["train_size"] = records["train_size"].astype(str)
    summary = (records.groupby(["task", "target", "train_size", "row"], sort=False)
               .agg(mean=("mae", "mean"), std=("mae", "std"), n_train=("n_train", "mean")).reset_index())
    columns = summary[["task", "target", "train_size"]].drop_duplicates().values.tolist()
    rows = list(dict.fromkeys(summary["row"]))
    def label(task, target, size):
        if size != "all":
            return f"{task} `{target}`, {size} train"
        n = summary[(summary.task == task) & (summary.target == target) & (summary.train_size == size)]["n_train"].mean()
        return f"{task} `{target}`, all ≈ {n:.0f} train"

    cells = {}
    for task, target, size in columns:
        part = summary[(summary.task == task) & (summary.target == target) & (summary.train_size == size)].set_index("row")
        best = part["mean"].idxmin()
        decimals = max(digits, 2 - int(np.floor(np.log10(part["mean"].min())))) if part["mean"].min() > 0 else digits
        for row in rows:
            if row in part.index:
                text = f"{part.loc[row, 'mean']:.{decimals}f} ± {part.loc[row, 'std']:.{decimals}f}"
                cells[row, task, target, size] = f"**{text}**" if row == best else text
    if transpose:
        lines = ["| | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
        lines += [f"| {label(*column)} | " + " | ".join(cells.get((row, *column), "") for row in rows) + " |" for column in columns]
    else:
        lines = ["| | " + " | ".join(label(*column) for column in columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [f"| {row} | " + " | ".join(cells.get((row, *column), "") for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.report", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="output directories of evaluate or finetune")
    p.add_argument("--digits", type=int, default=3)
    p.add_argument("--transpose", action="store_true", help="one row per task and training size, one column per featurizer")
    args = p.parse_args(argv)
    print(combined_table(args.runs, args.digits, args.transpose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
