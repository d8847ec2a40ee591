"""Result files of the evaluation commands (``results.json`` + ``results.md``) and the tables built from them.

A ``results.json`` holds the command that made it, its ``data`` (the files read) and ``settings`` (the command's
options), and ``results``: one record per featurizer or fine-tuned model, target, training size and fold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..card import set_evaluation


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
        set_evaluation(Path(card_dir) / "README.md", text, section)


def load_results(directory: Path, by_run: bool = False) -> pd.DataFrame:
    """The per-fold records of one run, with ``task`` = the run's data file name and ``row`` = featurizer or model
    (prefixed by the run's folder name with ``by_run``)."""
    payload = json.loads((Path(directory) / "results.json").read_text())
    records = pd.DataFrame(payload["results"])
    records["row"] = records["featurizer"] if "featurizer" in records else records["model"]
    if by_run:
        records["row"] = Path(directory).name + ": " + records["row"]
    records["task"] = Path(payload["data"][0]).name.split(".")[0]
    if "epochs" in records:  # a fine-tuning run: which runs stopped at its epoch cap, not by early stopping
        records["capped"] = records["epochs"] >= payload["settings"]["epochs"]
    return records


def load_runs(directories, by_run: bool = False) -> pd.DataFrame:
    """The records of several runs (:func:`load_results`) in one frame, training sizes as text (``"100"``, ``"all"``)."""
    records = pd.concat([load_results(d, by_run) for d in directories], ignore_index=True)
    records["train_size"] = records["train_size"].astype(str)
    return records


def epoch_caps(records: pd.DataFrame) -> str:
    """How many fine-tuning runs reached the epoch cap, per training size and model ('' for random forests)."""
    if "capped" not in records:
        return ""
    counts = records.groupby(["train_size", "row"], sort=False)["capped"].agg(["sum", "size"])
    per_size = [f"train size {size}: " + ", ".join(f"{row} {int(c['sum'])}/{int(c['size'])}" for row, c in group.droplevel(0).iterrows())
                for size, group in counts.groupby(level=0, sort=False)]
    return (f"Runs that reached the epoch cap: {int(records['capped'].sum())} of {len(records)} "
            f"({'; '.join(per_size)}).")


def beats(stats: pd.DataFrame, key: tuple, row: str, controls: list[str]) -> tuple[bool, bool]:
    """Whether ``row`` has a lower mean MAE than every control, and whether by more than one fold std each
    (the larger of the two rows' stds); ``stats`` has ``mean`` and ``std`` indexed by ``(*key, row)``."""
    mine = stats.loc[(*key, row)]
    lower = all(mine["mean"] < stats.loc[(*key, c)]["mean"] for c in controls)
    clear = all(stats.loc[(*key, c)]["mean"] - mine["mean"] > max(mine["std"], stats.loc[(*key, c)]["std"]) for c in controls)
    return lower, clear


def versus_table(directories, row: str, controls: list[str] | None = None) -> str:
    """Per (task, target, train size) that ``row`` has: its MAE, the best control's, and whether ``row`` beats
    every control (:func:`beats`), with a count line."""
    records = load_runs(directories)
    stats = records.groupby(["task", "target", "train_size", "row"], sort=False)["mae"].agg(["mean", "std"])
    controls = controls or [r for r in dict.fromkeys(records["row"]) if r != row]
    keys = [k for k in dict.fromkeys(i[:3] for i in stats.index) if (*k, row) in stats.index]
    missing = sorted({c for k in keys for c in controls if (*k, c) not in stats.index})
    if not keys or missing:
        raise SystemExit(f"--versus {row!r}: no results for it" if not keys else f"controls without results: {', '.join(missing)}")
    lines = [f"| task, target, train size | {row} | best control | lower than every control | by more than one fold std |",
             "|---|---|---|---|---|"]
    wins = clear_wins = 0
    for key in keys:
        lower, clear = beats(stats, key, row, controls)
        wins, clear_wins = wins + lower, clear_wins + clear
        best = min(controls, key=lambda c: stats.loc[(*key, c)]["mean"])
        cell = lambda r: f"{stats.loc[(*key, r)]['mean']:.4g} ± {stats.loc[(*key, r)]['std']:.2g}"
        lines.append(f"| {key[0]} `{key[1]}`, {key[2]} | {cell(row)} | {best}: {cell(best)} | "
                     f"{'yes' if lower else 'no'} | {'yes' if clear else 'no'} |")
    lines += ["", f"{row} against {', '.join(controls)}: lower on {wins} of {len(keys)}, by more than one fold std on "
                  f"{clear_wins} of {len(keys)}."]
    return "\n".join(lines)


def combined_table(directories, digits: int = 3, transpose: bool = False, by_run: bool = False) -> str:
    """MAE mean ± std over folds of every run in ``directories``: one row per featurizer or model and one
    column per (task, target, train size), or the other way round with ``transpose``."""
    records = load_runs(directories, by_run)
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
    caps = epoch_caps(records)
    return "\n".join(lines) + (f"\n\n{caps}" if caps else "")
