import argparse

import pytest

from pretraining.evaluation import evaluate, finetune, readout_pca
from pretraining.arguments import at_least, held_out_share, positive_float, share


def _parser():
    p = argparse.ArgumentParser(prog="tool", exit_on_error=False)
    p.add_argument("--folds", type=at_least(2))
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--max-features", type=share)
    p.add_argument("--val-fraction", type=held_out_share)
    return p


def test_values_in_range_are_parsed_as_numbers():
    args = _parser().parse_args(["--folds", "2", "--lr", "1e-5", "--max-features", "1", "--val-fraction", "0.1"])
    assert (args.folds, args.lr, args.max_features, args.val_fraction) == (2, 1e-5, 1.0, 0.1)


@pytest.mark.parametrize("argv, message", [(["--folds", "1"], "must be at least 2, got 1"),
                                           (["--folds", "two"], "invalid integer >= 2 value: 'two'"),
                                           (["--lr", "-0.1"], "must be above 0, got -0.1"),
                                           (["--lr", "nan"], "must be above 0, got nan"),
                                           (["--max-features", "1.5"], "must be above 0 and at most 1, got 1.5"),
                                           (["--val-fraction", "1"], "must be above 0 and below 1, got 1")])
def test_values_that_could_not_work_are_refused_with_the_option_name(argv, message):
    with pytest.raises(argparse.ArgumentError, match=message):
        _parser().parse_args(argv)


@pytest.mark.parametrize("main, argv, message", [
    (evaluate.main, ["--data", "missing.jsonl", "--target", "y", "--folds", "1"], "argument --folds: must be at least 2, got 1"),
    (finetune.main, ["--data", "missing.jsonl", "--target", "y", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (finetune.main, ["--data", "missing.jsonl", "--target", "y", "--val-fraction", "0"],
     "argument --val-fraction: must be above 0 and below 1, got 0"),
    (readout_pca.main, ["missing-weights", "--data", "missing.jsonl", "--components", "0"],
     "argument --components: must be at least 1, got 0"),
])
def test_the_command_lines_refuse_them_before_reading_anything(capsys, main, argv, message):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
