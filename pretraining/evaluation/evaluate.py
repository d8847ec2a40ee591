"""Random forest on frozen features: pretrained encoders against random weights, input statistics and
matminer baselines.

    python -m pretraining.evaluation.evaluate --data labelled.jsonl.gz --target formation_energy_per_atom,band_gap \\
        --split dev --folds 5 --train-sizes 100,all --out eval/dev/

Every featurizer sees identical K-fold splits (:mod:`pretraining.evaluation.tasks`, shared with
``pretraining.evaluation.finetune``) of the rows of ``--split`` (``dev`` for model choices, ``test`` for the
published tables; all labelled rows when not given); scikit-learn's ``RandomForestRegressor`` with a
fixed seed (default hyperparameters; ``--max-features`` changes the share of features tried per split)
is fitted on each training fold, or on ``--train-sizes`` rows drawn from it. Rows a featurizer fails on
are dropped from every featurizer's folds (and counted). Features are cached with joblib under
``--cache`` keyed by featurizer, weights, structures and the source of ``matssl_featurizers`` (so an edit
of the featurizing code computes them anew), so a second run only fits forests. Writes
``results.json`` and ``results.md`` (MAE mean ± std over folds); ``--card DIR`` also puts the table into
that model's card.

Featurizer names (comma separated): see :mod:`pretraining.evaluation.featurizer_names`. ``--readout``,
``--pool`` and ``--no-pool-edges`` rebuild every encoder (pretrained or random) with another parameter-free
readout of the same weights, for choosing the readout on the dev split.
"""

from __future__ import annotations

import sys

from ..card import command_line
from .forests import evaluate_task, parser


def main(argv=None) -> int:
    args = parser("pretraining.evaluation.evaluate", __doc__.split("\n")[0]).parse_args(argv)
    evaluate_task(args, command_line("pretraining.evaluation.evaluate", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
