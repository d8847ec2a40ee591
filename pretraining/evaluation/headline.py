"""The README's headline results: every bundled structure model against its controls on the published tasks.

    python -m pretraining.evaluation.headline --split test --out eval/headline --results docs/results.md --readme README.md

For each task of :data:`pretraining.evaluation.tasks.TASKS` it runs the frozen-feature evaluation
(:func:`pretraining.evaluation.forests.evaluate_task`, what ``pretraining.evaluation.evaluate`` runs) on the rows of ``--split``
with ``--folds`` folds: every bundled structure model, random weights of each architecture (``--random-seeds``),
the statistics of each model's input table (``inputs:``), ElementProperty, every hybrid preset, and the presets
and ElementProperty together. Then it writes ``OUT/results.md``: the table of MAE mean ± std over folds, and
two verdicts:

* per model, on the seven targets of the shared tasks: on how many it beats every random-weights seed of its
  architecture and its input statistics, and on how many by more than one fold standard deviation (the margin
  over each control exceeds the larger of the two fold standard deviations);
* per preset + ElementProperty against ElementProperty alone on the structure-sensitive targets, also fold by
  fold (each fold tests both on the same rows, so the per-fold differences are free of how hard a fold is).

``--readme`` replaces the text between ``<!-- headline:start -->`` and ``<!-- headline:end -->`` with it;
``--cards`` writes each model's rows and verdict into the evaluation section of its bundled model card.
``--only cdssl`` re-evaluates only the named rows (a re-released model whose architecture, and so whose
random-weight controls, did not change; a model's name brings every row that reads its weights, see
:func:`rows_reading`) and keeps every other row already under ``--out``: the folds and forests are
seeded, so those rows are the ones a full run would give (up to floating-point differences in the features
between machines and installs, a small fraction of a fold standard deviation).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from matssl_featurizers.bundled import bundled_models, bundled_root
from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.hybrid import PRESETS

from ..arguments import at_least, share
from ..card import command_line, set_evaluation
from .featurizer_names import bundled_structure_models, distinct_architectures
from .forests import evaluate_task, parser
from .results import beats, combined_table, load_runs, markdown_table, write_results
from .tasks import SPLITS, TASKS, targets_of

SHARED_TARGETS = targets_of("shared")  # the seven targets of the shared tasks
STRUCTURE_SENSITIVE = targets_of("structure_sensitive")
START, END = "<!-- headline:start -->", "<!-- headline:end -->"


def controls_of(models: list[str]) -> dict[str, tuple[str, str]]:
    """model -> (``random:`` name, ``inputs:`` name) of the first model sharing its architecture / input table."""
    architectures = distinct_architectures(models)
    configs = {m: PretrainedEncoder.from_pretrained(m).readout_config() for m in models}
    out = {}
    for model in models:
        twin = next(m for m in architectures if configs[m] == configs[model])
        table = configs[model].get("atom_input", "embedding")
        same_table = next((m for m in models if table != "embedding"
                           and configs[m].get("atom_input", "embedding") == table), model)
        out[model] = (f"random:{twin}", f"inputs:{same_table}")
    return out


def headline_rows(models: list[str]) -> list[str]:
    controls = controls_of(models)
    randoms = list(dict.fromkeys(c[0] for c in controls.values()))
    inputs = list(dict.fromkeys(c[1] for c in controls.values()))
    presets = [f"preset:{p}" for p in headline_presets()]
    geometry = ["ShellAnisotropy+ElementProperty"] if any(PRESETS[p][3] for p in headline_presets()) else []
    return [*models, *randoms, *inputs, "ElementProperty", *presets, *(f"{p}+ElementProperty" for p in presets), *geometry]


def headline_presets() -> list[str]:
    """The presets without magpie: each is evaluated alone and + ElementProperty, and a preset with magpie is the
    latter (``hybrid-anisotropy-magpie`` has the columns of ``preset:hybrid-anisotropy+ElementProperty``, in order)."""
    return sorted(name for name, (*_, magpie) in PRESETS.items() if not magpie)


def rows_reading(model: str) -> list[str]:
    """The headline rows whose features come from ``model``'s weights: the model itself, its ``inputs:`` control
    when its input table is its own learned embedding, and the presets built on it (with ElementProperty too)."""
    rows = [model]
    if PretrainedEncoder.from_pretrained(model).config.get("atom_input", "embedding") == "embedding":
        rows.append(f"inputs:{model}")  # see controls_of
    for preset in headline_presets():
        if PRESETS[preset][0] == model:
            rows += [f"preset:{preset}", f"preset:{preset}+ElementProperty"]
    return rows


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over folds per (task, target, featurizer)."""
    return records.groupby(["task", "target", "row"])["mae"].agg(["mean", "std"])


def shared_target_wins(stats: pd.DataFrame, model: str, controls: tuple[str, str], seeds: list[int]) -> tuple[str, str]:
    """On the seven shared targets: ``"k of n: targets"`` where ``model`` has a lower MAE than every control
    (each random seed and the input statistics), and the same for a margin of more than one fold std."""
    random, inputs = controls
    keys = [k for k in dict.fromkeys((t, g) for t, g, _ in stats.index) if k in SHARED_TARGETS]
    results = [beats(stats, key, model, [f"{random}@{s}" for s in seeds] + [inputs]) for key in keys]
    def listed(flags):
        names = [f"{t} {g}" for (t, g), flag in zip(keys, flags) if flag]
        return f"{len(names)} of {len(keys)}" + (f": {', '.join(names)}" if names else "")
    return listed(lower for lower, _ in results), listed(clear for _, clear in results)


def model_verdicts(records: pd.DataFrame, models: list[str], seeds: list[int]) -> str:
    stats = summary(records)
    lines = ["| model | controls | targets with a lower MAE than every control | by more than one fold std |",
             "|---|---|---|---|"]
    for model, (random, inputs) in controls_of(models).items():
        wins, clear = shared_target_wins(stats, model, (random, inputs), seeds)
        lines.append(f"| {model} | {random} (seeds {', '.join(map(str, seeds))}), {inputs} | {wins} | {clear} |")
    return "\n".join(lines)


def paired_difference(records: pd.DataFrame, key: tuple, row: str, control: str) -> str:
    """``row``'s MAE minus ``control``'s fold by fold (the folds are the same rows): ``"k of n"`` folds where it is
    lower, and the mean ± std of the differences."""
    task, target = key
    here = records[(records["task"] == task) & (records["target"] == target)]
    mae = here.pivot(index="fold", columns="row", values="mae")
    differences = mae[row] - mae[control]
    return (f"{int((differences < 0).sum())} of {len(differences)} "
            f"({differences.mean():+.3g} ± {differences.std():.2g})")


def preset_verdicts(records: pd.DataFrame) -> str:
    stats = summary(records)
    keys = [k for k in dict.fromkeys((t, g) for t, g, _ in stats.index) if k in STRUCTURE_SENSITIVE]
    lines = ["| featurizer | structure-sensitive target | MAE | ElementProperty alone | lower | by more than one fold std "
             "| lower on folds (difference per fold) |",
             "|---|---|---|---|---|---|---|"]
    for preset in headline_presets():
        row = f"preset:{preset}+ElementProperty"
        for key in keys:
            lower, clear = beats(stats, key, row, ["ElementProperty"])
            mine, alone = stats.loc[(*key, row)], stats.loc[(*key, "ElementProperty")]
            lines.append(f"| {row} | {key[0]} {key[1]} | {mine['mean']:.4g} ± {mine['std']:.2g} | "
                         f"{alone['mean']:.4g} ± {alone['std']:.2g} | {'yes' if lower else 'no'} | {'yes' if clear else 'no'} "
                         f"| {paired_difference(records, key, row, 'ElementProperty')} |")
    return "\n".join(lines)


def render(directories: list[Path], records: pd.DataFrame, models: list[str], seeds: list[int], command: str, folds: int,
           split: str, max_features: float) -> str:
    forest = "scikit-learn defaults" + (f" but max_features={max_features:g}" if max_features != 1.0 else "")
    return (f"Random forest ({forest}) on frozen features, {folds}-fold cross-validation of the {split} split "
            f"(up to 2,000 rows per task, never used for pretraining or model choice), MAE mean ± std over folds; "
            f"the lowest mean per column in bold. Regenerate with `{command}`.\n\n"
            f"{combined_table(directories)}\n\n"
            f"**Each model against its controls** (random weights of its architecture, every seed; the statistics of its "
            f"own input table) on the seven targets of the shared tasks:\n\n{model_verdicts(records, models, seeds)}\n\n"
            f"**Hybrid presets + ElementProperty against ElementProperty alone** (the last column pairs the folds, which test "
            f"both on the same rows: on how many the preset is lower, and its MAE minus magpie's, mean ± std over folds):"
            f"\n\n{preset_verdicts(records)}\n")


def card_evaluation(records: pd.DataFrame, model: str, controls: tuple[str, str], seeds: list[int], heading: str) -> str:
    """A model's MAEs beside those of its ``controls`` (``random:``, ``inputs:`` names) and ElementProperty on
    every task, and its verdict line."""
    stats = summary(records)
    random, inputs = controls
    rows = [model, *(f"{random}@{s}" for s in seeds), inputs, "ElementProperty"]
    lines = [heading, "", "| task | target | " + " | ".join(f"`{r}`" for r in rows) + " |", "|---|---|" + "---|" * len(rows)]
    for task, target in dict.fromkeys((t, g) for t, g, _ in stats.index):
        cells = [f"{stats.loc[(task, target, r)]['mean']:.4g} ± {stats.loc[(task, target, r)]['std']:.2g}" for r in rows]
        lines.append(f"| {task} | {target} | " + " | ".join(cells) + " |")
    wins, clear = shared_target_wins(stats, model, controls, seeds)
    lines += ["", f"Against every control on the seven targets of the shared tasks: lower MAE on {wins}; "
                  f"by more than one fold standard deviation on {clear}."]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between :data:`START` and :data:`END` replaced by ``block``."""
    if START not in text or END not in text:
        raise SystemExit(f"the README has no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def merge_rows(out: Path, update: Path) -> None:
    """Replace the rows of ``out/results.json`` evaluated again in ``update/results.json`` (same rows and folds)
    by the new ones, note the command that made them, and rewrite ``out/results.md`` (keeping its summary line)."""
    old, new = (json.loads((d / "results.json").read_text()) for d in (out, update))
    summary = (out / "results.md").read_text().split("Command: ", 1)[0] if (out / "results.md").exists() else ""
    if old["test_ids"] != new["test_ids"]:
        raise SystemExit(f"{out}: the folds differ from the results already there; run the whole headline again")
    names = set(new["features"])
    rows = list(dict.fromkeys([r["featurizer"] for r in old["results"]] + [r["featurizer"] for r in new["results"]]))
    targets = list(dict.fromkeys(r["target"] for r in old["results"] + new["results"]))
    merged = [r for r in old["results"] if r["featurizer"] not in names] + new["results"]
    old["results"] = sorted(merged, key=lambda r: (targets.index(r["target"]), rows.index(r["featurizer"])))  # rows keep their place
    old["features"].update(new["features"])
    command = new["command"].replace(f"--out {update}", f"--out {out}")  # not the scratch folder it wrote to
    entry = {"command": command, "featurizers": sorted(names)}
    same = [u for u in old.get("updated", []) if (u["command"], u["featurizers"]) == (command, entry["featurizers"])]
    entry["times"] = 1 + sum(u.get("times", 1) for u in same)  # the same command again: one line
    old["updated"] = [u for u in old.get("updated", []) if u not in same] + [entry]
    write_merged(out, old, summary)


def write_merged(out: Path, payload: dict, summary: str) -> None:
    """Write ``payload`` (a ``results.json`` with ``updated`` entries) as ``out/results.json`` and ``results.md``."""
    records = pd.DataFrame(payload["results"])
    shapes = {n: (f["n_features"], f["effective_rank"]) for n, f in payload["features"].items()}
    updates = "".join(
        f"\n\nRows {', '.join(u['featurizers'])} evaluated again"
        f"{f' ({times} times; the latest rows are shown)' if (times := u.get('times', 1)) > 1 else ''}: `{u['command']}`"
        for u in payload.get("updated", []))
    text = f"{summary}Command: `{payload['command']}`{updates}\n\n{markdown_table(records, shapes)}\n"
    write_results(out, text, payload)


def run_task(options: list[str]) -> None:
    """The frozen-feature evaluation of one task, recorded with the ``pretraining.evaluation.evaluate`` command
    that gives the same result folder."""
    evaluate_task(parser("pretraining.evaluation.evaluate", "").parse_args(options),
                  command_line("pretraining.evaluation.evaluate", options))


COMPACT_ROWS = {  # column of the compact README table -> headline row
    "magpie": "ElementProperty",
    "`hybrid-anisotropy-magpie`": "preset:hybrid-anisotropy+ElementProperty",
    "`hybrid` + magpie": "preset:hybrid+ElementProperty",
    "`masked-denoising`": "masked-denoising",
}


def compact_table(records: pd.DataFrame, command: str) -> str:
    """The README's table: per target, the MAE of magpie, of the recommended presets and of the default model
    alone (forests on frozen features, test split), the lowest in bold; the full table is in docs/results.md."""
    stats = summary(records)
    keys = list(dict.fromkeys((t, g) for t, g, _ in stats.index))
    lines = ["| target | " + " | ".join(COMPACT_ROWS) + " |", "|---|" + "---|" * len(COMPACT_ROWS)]
    for key in keys:
        cells = {label: stats.loc[(*key, row)] for label, row in COMPACT_ROWS.items() if (*key, row) in stats.index}
        best = min(cells, key=lambda label: cells[label]["mean"])
        texts = [f"{c['mean']:.3g} ± {c['std']:.2g}" for c in cells.values()]
        texts = [f"**{t}**" if label == best else t for label, t in zip(cells, texts)]
        lines.append(f"| {key[0]} `{key[1]}` | " + " | ".join(texts) + " |")
    return (f"Random forest on frozen features, MAE mean ± std over 5 test folds (≈ 1,600 training rows; `exfoliation_energy` "
            f"≈ 180); made by `{command}`, whose full table and verdicts are in [docs/results.md](docs/results.md).\n\n"
            + "\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.headline", description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=SPLITS, default="test", help="default: %(default)s")
    p.add_argument("--data-dir", type=Path, required=True, help="the folder holding the task files (the shared datasets)")
    p.add_argument("--folds", type=at_least(2), default=5, help="default: %(default)s")
    p.add_argument("--random-seeds", default="0,1,2", help="default: %(default)s")
    p.add_argument("--max-features", type=share, default=1.0, help="the forests' (default: %(default)s)")
    p.add_argument("--tasks", default=",".join(TASKS), help="default: all of pretraining.evaluation.tasks.TASKS")
    p.add_argument("--out", type=Path, default=Path("eval") / "headline", help="default: %(default)s")
    p.add_argument("--results", type=Path, default=None,
                   help="put the full table and verdicts between the headline markers of this file (docs/results.md)")
    p.add_argument("--readme", type=Path, default=None,
                   help="put the compact table (compact_table) between the headline markers of this file (README.md)")
    p.add_argument("--cards", action="store_true", help="write each model's results into its bundled model card")
    p.add_argument("--reuse", action="store_true", help="render the results already under --out instead of evaluating again "
                                                          "(a task with none there is evaluated)")
    p.add_argument("--only", default=None, help="comma separated rows to evaluate again (e.g. a re-released model, which "
                                                "brings every row reading its weights: see rows_reading); "
                                                "every other row is kept from the results already under --out")
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    given = [a for i, a in enumerate(given)  # the command that evaluates everything
             if a != "--reuse" and a != "--only" and not a.startswith("--only=") and not (i and given[i - 1] == "--only")]
    command = command_line("pretraining.evaluation.headline", given)
    models = bundled_structure_models()
    names = ",".join(headline_rows(models))
    if args.only is not None:  # a re-released model's rows, and every row that reads its weights
        only = list(dict.fromkeys(r for name in args.only.split(",")
                                  for r in (rows_reading(name) if name in models else [name])))
    directories = []
    for task in args.tasks.split(","):
        spec = TASKS[task]
        out = args.out / args.split / task
        if args.reuse and (out / "results.json").exists():
            directories.append(out)
            continue
        options = ["--data", str(args.data_dir / spec.file), "--target", ",".join(spec.targets), "--split", args.split,
                   "--folds", str(args.folds), "--random-seeds", args.random_seeds, "--max-features", str(args.max_features)]
        if args.only is None:
            run_task([*options, "--featurizers", names, "--out", str(out)])
        else:
            if not (out / "results.json").exists():
                raise SystemExit(f"--only needs the results of a whole run under {out}")
            with tempfile.TemporaryDirectory() as scratch:
                run_task([*options, "--featurizers", ",".join(only), "--out", scratch])
                merge_rows(out, Path(scratch))
        directories.append(out)
    seeds = [int(s) for s in args.random_seeds.split(",")]
    records = load_runs(directories)
    text = render(directories, records, models, seeds, command, args.folds, args.split, args.max_features)
    (args.out / "results.md").write_text(text)
    print(text)
    if args.results is not None:
        args.results.write_text(replace_block(args.results.read_text(), text))
    if args.readme is not None:
        args.readme.write_text(replace_block(args.readme.read_text(), compact_table(records, command)))
    if args.cards:
        forest = "" if args.max_features == 1.0 else f", max_features={args.max_features:g}"
        heading = (f"Random forest on frozen features{forest}, {args.folds}-fold cross-validation of the {args.split} split of "
                   f"each task (never used for pretraining or model choice), MAE mean ± std over folds, beside random weights "
                   f"of the same architecture and the statistics of the input table. Made by `{command}`.")
        controls = controls_of(models)
        for model in models:
            card = bundled_root() / bundled_models()[model]["directory"] / "README.md"
            set_evaluation(card, card_evaluation(records, model, controls[model], seeds, heading),
                           section=f"Headline: {args.split} split")
    return 0


if __name__ == "__main__":
    sys.exit(main())
