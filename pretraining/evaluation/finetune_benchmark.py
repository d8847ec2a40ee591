"""When to fine-tune: ``SSLRegressor`` against random forests on the headline's test folds of the shared tasks.

    python -m pretraining.evaluation.finetune_benchmark --data-dir ../shared/data --out eval/finetune-benchmark \\
        --results docs/results.md --readme README.md --cards --reuse

For each shared task (:data:`pretraining.evaluation.tasks.TASKS` with ``shared``) and 100, 400 and all training rows of
each of the 5 test folds: the default ``SSLRegressor`` from ``masked-denoising``, the same architecture from random
weights (3 seeds), and random forests on magpie (``ElementProperty``) and on each hybrid preset + magpie (the best
frozen-feature recipes), all on identical folds and subsets; then one large task, MP formation energy with 10,000 more
training rows of neither split in every fold (the estimator and the forests; no random starts, whose fits would take
hours). Each task's result folders (``OUT/test/TASK/finetune`` and ``.../forests``) are written as soon as they are
done; ``--reuse`` keeps those already there, so an interrupted benchmark goes on where it stopped.

``--results`` puts the table and the verdicts between ``<!-- finetune:start -->`` and ``<!-- finetune:end -->`` of
that file; ``--readme`` puts the compact table between the same markers of the README; ``--cards`` writes them into
the card of ``masked-denoising``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from matssl_featurizers.bundled import bundled_models, bundled_root

from ..arguments import at_least
from ..card import command_line, set_evaluation
from .finetuning_runs import finetune_task
from .finetuning_runs import parser as finetune_parser
from .forests import evaluate_task
from .forests import parser as forest_parser
from .results import beats, load_results
from .tasks import TASKS

MODEL = "masked-denoising"
MAGPIE = "ElementProperty"
PRESETS = ("preset:hybrid+ElementProperty", "preset:hybrid-anisotropy+ElementProperty")
SIZES = "100,400,all"
LARGE = ("mp_cgcnn", "formation_energy_per_atom", 10_000)  # task, target, extra training rows
START, END = "<!-- finetune:start -->", "<!-- finetune:end -->"


def shared_tasks() -> list[str]:
    return [name for name, task in TASKS.items() if task.shared]


def run_task(name: str, args, large: bool = False) -> list[Path]:
    """The fine-tuning and forest folders of one task (computed unless ``--reuse`` finds them)."""
    task = TASKS[LARGE[0] if large else name]
    targets = LARGE[1] if large else ",".join(task.targets)
    base = args.out / "test" / (f"{LARGE[0]}-large" if large else name)
    common = ["--data", str(args.data_dir / task.file), "--target", targets, "--split", "test", "--folds", "5",
              "--train-sizes", "all" if large else SIZES] + (["--extra-train", str(LARGE[2])] if large else [])
    finetune = [*common, "--model", MODEL, "--init", "pretrained" if large else "pretrained,random",
                "--random-seeds", "0" if large else "0,1,2", "--out", str(base / "finetune")]
    forests = [*common, "--featurizers", ",".join([MAGPIE, *PRESETS]), "--max-features", "0.33", "--out",
               str(base / "forests")]
    if args.threads:
        finetune += ["--threads", str(args.threads)]
    if args.epochs:
        finetune += ["--epochs", str(args.epochs)]
    if not (args.reuse and (base / "finetune" / "results.json").exists()):
        finetune_task(finetune_parser("pretraining.evaluation.finetune", "").parse_args(finetune),
                      command_line("pretraining.evaluation.finetune", finetune))
    if not (args.reuse and (base / "forests" / "results.json").exists()):
        evaluate_task(forest_parser("pretraining.evaluation.evaluate", "").parse_args(forests),
                      command_line("pretraining.evaluation.evaluate", forests))
    return [base / "finetune", base / "forests"]


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """MAE mean and std over folds, and mean fit minutes, per (task, target, training size, row)."""
    records = records.assign(minutes=records.get("seconds", pd.Series(float("nan"), index=records.index)) / 60)
    return records.groupby(["task", "target", "train_size", "row"]).agg(mean=("mae", "mean"), std=("mae", "std"),
                                                                         minutes=("minutes", "mean"))


def best_forest(stats: pd.DataFrame, key: tuple) -> str:
    """The hybrid preset + magpie forest with the lowest mean MAE for ``key``."""
    return min(PRESETS, key=lambda row: stats.loc[(*key, row)]["mean"])


def table(stats: pd.DataFrame, keys: list[tuple]) -> str:
    lines = ["| task, target, training rows | `SSLRegressor` | min per fit | random starts (3 seeds) | magpie forest "
             "| best preset + magpie forest |", "|---|---|---|---|---|---|"]
    for key in keys:
        cell = lambda row: f"{stats.loc[(*key, row)]['mean']:.4g} ± {stats.loc[(*key, row)]['std']:.2g}"
        randoms = [r for r in (f"random:{MODEL}@{s}" for s in range(3)) if (*key, r) in stats.index]
        forest = best_forest(stats, key)
        lines.append(f"| {key[0]} `{key[1]}`, {key[2]} | {cell(MODEL)} | {stats.loc[(*key, MODEL)]['minutes']:.1f} | "
                     + (", ".join(cell(r) for r in randoms) or "not run") + f" | {cell(MAGPIE)} | "
                     f"{cell(forest)} (`{forest.split(':')[1].split('+')[0]}`) |")
    return "\n".join(lines)


def verdicts(stats: pd.DataFrame, keys: list[tuple], large: list[tuple]) -> str:
    """The benchmark's four questions, each answered with a count over the shared targets."""
    def count(size, controls_of, clear=False):
        chosen = [k for k in keys if k[2] == size]
        wins = [k for k in chosen if beats(stats, k, MODEL, controls_of(k))[1 if clear else 0]]
        names = ", ".join(f"{t} {g}" for t, g, _ in wins)
        return f"{len(wins)} of {len(chosen)}" + (f" ({names})" if names else "")

    randoms = lambda k: [r for r in (f"random:{MODEL}@{s}" for s in range(3)) if (*k, r) in stats.index]
    lines = [f"- All training rows, against the best frozen-feature forest (preset + magpie): lower on "
             f"{count('all', lambda k: [best_forest(stats, k)])}, by more than one fold std on "
             f"{count('all', lambda k: [best_forest(stats, k)], clear=True)}.",
             f"- All training rows, against every random start of the same architecture: lower on {count('all', randoms)}.",
             f"- 100 training rows, against the magpie forest: lower on {count('100', lambda k: [MAGPIE])}."]
    for key in large:
        forest = min([MAGPIE, *PRESETS], key=lambda row: stats.loc[(*key, row)]["mean"])
        lower, clear = beats(stats, key, MODEL, [forest])
        lines.append(f"- Large task ({key[0]} `{key[1]}`, {LARGE[2]:,} more training rows a fold): "
                     f"{'lower' if lower else 'not lower'} than the best forest ({forest})"
                     f"{', by more than one fold std' if clear else ', not by more than one fold std' if lower else ''}.")
    return "\n".join(lines)


def render(directories: list[Path], command: str) -> tuple[str, str]:
    """The full text (table and verdicts) and the compact README table."""
    large_task = f"{LARGE[0]}-large"
    records = pd.concat([load_results(d).assign(**({"task": large_task} if d.parent.name == large_task else {}))
                         for d in directories], ignore_index=True)
    records["train_size"] = records["train_size"].astype(str)
    stats = summary(records)
    keys = [k for k in dict.fromkeys(i[:3] for i in stats.index) if (*k, MODEL) in stats.index and k[0] != large_task]
    large = [k for k in dict.fromkeys(i[:3] for i in stats.index) if k[0] == large_task and (*k, MODEL) in stats.index]
    full = (f"`SSLRegressor` with its default settings (fine-tuned from `{MODEL}`), MAE mean ± std over the 5 test folds "
            f"of the headline, with 100, 400 and all (≈ 1,600) training rows a fold, beside the same network from random "
            f"weights (3 seeds) and random forests (max_features=0.33) on magpie and on the hybrid presets + magpie, all on "
            f"identical rows; 'min per fit' is the mean wall-clock minutes of one fit on 2 CPU cores. Made by `{command}`."
            f"\n\n{table(stats, keys + large)}\n\n{verdicts(stats, keys, large)}\n")
    compact_keys = [k for k in keys if k[2] == "all"] + large
    lines = ["| fine-tuned against frozen ([docs/results.md](docs/results.md)), test-fold MAE, ≈ 1,600 training rows | "
             "`SSLRegressor` | best forest on frozen features + magpie |", "|---|---|---|"]
    for key in compact_keys:
        forest = best_forest(stats, key)
        mine, theirs = stats.loc[(*key, MODEL)], stats.loc[(*key, forest)]
        ours, forests = f"{mine['mean']:.3g}", f"{theirs['mean']:.3g}"
        ours, forests = (f"**{ours}**", forests) if mine["mean"] < theirs["mean"] else (ours, f"**{forests}**")
        lines.append(f"| {key[0]} `{key[1]}`{' (+10,000 rows)' if key in large else ''} | {ours} | {forests} |")
    compact = "\n".join(lines)
    return full, compact


def replace_block(text: str, block: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    return f"{head}{START}\n{block.strip()}\n{END}{rest.split(END, 1)[1]}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.finetune_benchmark", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="the folder holding the task files (the shared datasets)")
    p.add_argument("--out", type=Path, default=Path("eval") / "finetune-benchmark")
    p.add_argument("--tasks", default=",".join(shared_tasks()), help="comma separated (default: every shared task)")
    p.add_argument("--no-large", action="store_true", help="leave out the large task")
    p.add_argument("--threads", type=at_least(1), default=None, help="torch threads of the fits (default: the idle cores)")
    p.add_argument("--epochs", type=at_least(1), default=None,
                   help="max_epochs of the fits (default: SSLRegressor's; a smaller number only for a quick trial)")
    p.add_argument("--reuse", action="store_true", help="keep the result folders already under --out")
    p.add_argument("--results", type=Path, default=None, help="put the table and verdicts between the markers of this file")
    p.add_argument("--readme", type=Path, default=None, help="put the compact table between the markers of this file")
    p.add_argument("--cards", action="store_true", help=f"write the table into the card of {MODEL}")
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = command_line("pretraining.evaluation.finetune_benchmark", given)
    directories = [d for name in args.tasks.split(",") for d in run_task(name, args)]
    if not args.no_large:
        directories += run_task(LARGE[0], args, large=True)
    full, compact = render(directories, command)
    print(full)
    if args.results is not None:
        args.results.write_text(replace_block(args.results.read_text(), full))
    if args.readme is not None:
        args.readme.write_text(replace_block(args.readme.read_text(), compact))
    if args.cards:
        set_evaluation(bundled_root() / bundled_models()[MODEL]["directory"] / "README.md", full,
                       section="Fine-tuned with SSLRegressor: test folds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
