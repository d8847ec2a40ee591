import json
import shlex

import pytest

from pretraining.evaluation import report, results


def _run(directory, command, key, maes, settings=None):
    """A results.json as the evaluation commands write it: the task is named by the first --data file, which the
    payload records apart from the command."""
    directory.mkdir()
    records = [{"target": "e_form", key: name, "train_size": size, "n_train": 90 if size == "all" else size, "fold": fold, "mae": mae}
               for (name, size), folds in maes.items() for fold, mae in enumerate(folds)]
    data = shlex.split(command)[shlex.split(command).index("--data") + 1]
    (directory / "results.json").write_text(json.dumps({"command": command, "data": [data], "settings": settings or {},
                                                        "results": records}))
    return directory


def test_runs_of_both_protocols_become_one_table_with_the_best_in_bold(tmp_path):
    rf = _run(tmp_path / "rf", "python -m pretraining.evaluation.evaluate --data ../data/castelli.jsonl.gz --target e_form", "featurizer",
              {("ElementProperty", 10): [0.5, 0.7], ("ElementProperty", "all"): [0.2, 0.4]})
    ft = _run(tmp_path / "ft", "python -m pretraining.evaluation.finetune --data 'my data/carbon.jsonl' --target e_form", "model",
              {("crystal-twins", 10): [0.4, 0.4], ("random:crystal-twins", 10): [0.8, 1.0]})
    table = results.combined_table([rf, ft]).splitlines()
    assert table[0] == "| | castelli `e_form`, 10 train | castelli `e_form`, all ≈ 90 train | carbon `e_form`, 10 train |"
    assert table[2] == "| ElementProperty | **0.600 ± 0.141** | **0.300 ± 0.141** |  |"
    assert table[3] == "| crystal-twins |  |  | **0.400 ± 0.000** |"
    assert table[4] == "| random:crystal-twins |  |  | 0.900 ± 0.141 |"
    transposed = results.combined_table([rf, ft], digits=2, transpose=True).splitlines()
    assert transposed[0] == "| | ElementProperty | crystal-twins | random:crystal-twins |"
    assert transposed[4] == "| carbon `e_form`, 10 train |  | **0.400 ± 0.000** | 0.900 ± 0.141 |"


def test_small_errors_keep_three_significant_figures(tmp_path):
    run = _run(tmp_path / "rf", "python -m pretraining.evaluation.evaluate --data carbon24.jsonl.gz --target e", "featurizer",
               {("SineCoulombMatrix", "all"): [0.0212, 0.0208], ("ElementProperty", "all"): [0.113, 0.115]})
    assert results.combined_table([run]).splitlines()[2:] == ["| SineCoulombMatrix | **0.0210 ± 0.0003** |",
                                                             "| ElementProperty | 0.1140 ± 0.0014 |"]


def test_fine_tuning_runs_at_the_epoch_cap_are_counted(tmp_path):
    run = tmp_path / "ft"
    run.mkdir()
    records = [{"target": "e", "model": model, "train_size": 10, "n_train": 10, "fold": fold, "mae": 0.5, "epochs": epochs}
               for model, folds in {"a": [7, 7], "random:a": [5, 3]}.items() for fold, epochs in enumerate(folds)]
    command = "python -m pretraining.evaluation.finetune --data x.jsonl --target e --model a --epochs 9 --out ft"
    # the cap is read from the recorded settings, not from the command line
    (run / "results.json").write_text(json.dumps({"command": command, "data": ["x.jsonl"], "settings": {"epochs": 5},
                                                  "results": records}))
    assert results.combined_table([run]).splitlines()[-1] == (
        "Runs that reached the epoch cap: 3 of 4 (train size 10: a 2/2, random:a 1/2).")
    rf = _run(tmp_path / "rf", "python -m pretraining.evaluation.evaluate --data x.jsonl --target e", "featurizer", {("b", 10): [0.1, 0.2]})
    assert "epoch cap" not in results.combined_table([rf])


def test_runs_of_the_same_featurizers_with_other_settings_stay_apart(tmp_path):
    command = "python -m pretraining.evaluation.evaluate --data jarvis.jsonl.gz --target e"
    a = _run(tmp_path / "pool-mean", command, "featurizer", {("m", "all"): [0.3, 0.5]})
    b = _run(tmp_path / "pool-max", command, "featurizer", {("m", "all"): [0.1, 0.1]})
    assert results.combined_table([a, b]).splitlines()[2:] == ["| m | **0.250 ± 0.191** |"]
    assert results.combined_table([a, b], by_run=True).splitlines()[2:] == ["| pool-mean: m | 0.400 ± 0.141 |",
                                                                          "| pool-max: m | **0.100 ± 0.000** |"]


def test_versus_counts_wins_over_every_control_and_margins_beyond_the_larger_fold_std(tmp_path):
    command = "python -m pretraining.evaluation.finetune --data castelli.jsonl.gz --target e_form --model m --epochs 40"
    run = _run(tmp_path / "ft", command, "model", {
        ("m", 10): [0.30, 0.50], ("r@0", 10): [0.60, 0.80], ("r@1", 10): [0.45, 0.55],   # 0.5 vs 0.4: lower, margin < std 0.141
        ("m", "all"): [0.10, 0.12], ("r@0", "all"): [0.20, 0.22], ("r@1", "all"): [0.30, 0.30],  # clear against both
    })
    lines = results.versus_table([run], "m").splitlines()
    assert lines[2] == "| castelli `e_form`, 10 | 0.4 ± 0.14 | r@1: 0.5 ± 0.071 | yes | no |"
    assert lines[3] == "| castelli `e_form`, all | 0.11 ± 0.014 | r@0: 0.21 ± 0.014 | yes | yes |"
    assert lines[-1] == "m against r@0, r@1: lower on 2 of 2, by more than one fold std on 1 of 2."
    assert results.versus_table([run], "r@1", ["r@0"]).splitlines()[-1] == (
        "r@1 against r@0: lower on 1 of 2, by more than one fold std on 1 of 2.")  # 0.5 ± 0.071 vs 0.7 ± 0.141
    with pytest.raises(SystemExit, match="without results: x"):
        results.versus_table([run], "m", ["x"])


def test_the_command_prints_the_table_and_the_verdict_of_versus(tmp_path, capsys):
    command = "python -m pretraining.evaluation.evaluate --data castelli.jsonl.gz --target e_form"
    run = _run(tmp_path / "rf", command, "featurizer", {("m", "all"): [0.10, 0.12], ("r", "all"): [0.20, 0.22]})
    assert report.main([str(run), "--versus", "m", "--controls", "r"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(results.combined_table([run]) + "\n\n")
    assert printed.rstrip().endswith(results.versus_table([run], "m", ["r"]))
    assert "m against r: lower on 1 of 1, by more than one fold std on 1 of 1." in printed
