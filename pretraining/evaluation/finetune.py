"""Fine-tuning: ``SSLRegressor`` (a pretrained encoder plus a 2-layer MLP head, trained end to end) on a labelled
property, against the same architecture from random initialisation (Crystal Twins Table 2; Magar et al. 2022).

    python -m pretraining.evaluation.finetune --data labelled.jsonl.gz --target band_gap --model crystal-twins \\
        --folds 5 --train-sizes 100,all --limit 2000 --out finetune/

The folds are those of ``pretraining.evaluation.evaluate`` given the same ``--data``, ``--target``, ``--split``, ``--limit``,
``--folds``, ``--train-sizes``, ``--extra-train`` and ``--seed`` (:mod:`pretraining.evaluation.tasks`); ``--split test``
with ``--folds 5`` gives the folds of the headline table. Each run is one ``SSLRegressor`` fit
(:mod:`pretraining.evaluation.finetuning_runs`): the estimator's defaults unless an option says otherwise
(``--epochs`` is ``max_epochs``, ``--patience`` ``n_iter_no_change``, ``--val-fraction`` ``validation_fraction``, ...),
with ``random_state`` the run's seed.

``--init`` (comma separated) chooses the starting points compared side by side:

* ``pretrained``: the weights of ``--model`` (a bundled name or a weights directory);
* ``random``: the same architecture, randomly initialised;
* ``crysatom``: the same CGCNN with the bundled CrysAtom atom vectors as fixed node inputs (CrysAtom's
  protocol; Mukherjee et al. 2024), randomly initialised.

The randomly initialised starts are drawn once per ``--random-seeds`` seed (rows ``random:MODEL@SEED`` when
more than one is given), so that the pretrained encoder can be compared with several draws, as
``pretraining.evaluation.evaluate`` does for random weights. Seed 0 draws the weights of a single-seed run.

Writes ``results.json`` and ``results.md`` (test MAE mean ± std over folds); ``--card DIR`` puts the
table into those model cards.
"""

from __future__ import annotations

import sys

from ..card import command_line
from .finetuning_runs import finetune_task, parser


def main(argv=None) -> int:
    args = parser("pretraining.evaluation.finetune", __doc__.split("\n")[0]).parse_args(argv)
    finetune_task(args, command_line("pretraining.evaluation.finetune", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
