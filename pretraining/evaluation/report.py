"""One Markdown table from several ``results.json`` of ``pretraining.evaluation.evaluate`` or ``finetune``.

    python -m pretraining.evaluation.report eval/mp_cgcnn/finetune eval/castelli_perovskites/finetune --digits 3

One row per featurizer (or fine-tuned model), one column per dataset, target and training size
(``--transpose``: the other way round), MAE mean ± std over folds; the lowest mean of each dataset,
target and training size is bold; for fine-tuning runs a line below counts the runs that reached
the ``--epochs`` cap. Each column has at least ``--digits`` decimals and enough to show its
smallest mean to three significant figures. Featurizers missing from a run leave their cells empty.

``--versus ROW [--controls A,B]`` adds the verdict of one row against its controls (default: every other row)
per column: lower mean MAE than every control, and lower by more than the larger of the two fold standard
deviations for each control (the margin of the README's headline verdicts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .results import combined_table, versus_table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.report", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="output directories of evaluate or finetune")
    p.add_argument("--digits", type=int, default=3)
    p.add_argument("--transpose", action="store_true", help="one row per task and training size, one column per featurizer")
    p.add_argument("--by-run", action="store_true", help="one row per run and featurizer (runs of the same featurizers "
                                                         "with other settings, e.g. readouts)")
    p.add_argument("--versus", default=None, help="also print this row's verdict against --controls")
    p.add_argument("--controls", default=None, help="with --versus: comma separated rows (default: every other row)")
    args = p.parse_args(argv)
    print(combined_table(args.runs, args.digits, args.transpose, args.by_run))
    if args.versus:
        print("\n" + versus_table(args.runs, args.versus, args.controls.split(",") if args.controls else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
