"""The evaluation commands: how the published numbers were made (above :mod:`pretraining` and the library).

* ``python -m pretraining.evaluation.evaluate``: random forests on frozen features of one labelled dataset;
* ``python -m pretraining.evaluation.headline``: every bundled model and its controls on the published tasks,
  written to ``docs/results.md``, the README and the model cards;
* ``python -m pretraining.evaluation.finetune``: ``SSLRegressor`` fine-tuned from an encoder against random initialisations;
* ``python -m pretraining.evaluation.finetune_benchmark``: when to fine-tune: the estimator against forests on frozen
  features on the headline's folds, with 100, 400 and all training rows and one large task;
* ``python -m pretraining.evaluation.gpu_check``: pretraining steps and a fine-tuning fold on a GPU against the CPU;
* ``python -m pretraining.evaluation.evaluate_composition``: atom vectors against matminer's element tables;
* ``python -m pretraining.evaluation.report``: one table from several result folders;
* ``python -m pretraining.evaluation.readout_pca``: fit and store the principal components of an encoder's vectors;
* ``python -m pretraining.evaluation.pretext_floors``: reference values for reading pretext losses;
* ``python -m pretraining.evaluation.exclusions``: the ids of the evaluation rows, which pretraining leaves out;
* ``python -m pretraining.evaluation.periodic_groups``: whether element tables know the periodic table;
* ``python -m pretraining.evaluation.benchmark``: speed and memory against matminer's featurizers.

Commands share helpers through the modules :mod:`.tasks`, :mod:`.featurizer_names`, :mod:`.features`,
:mod:`.forests`, :mod:`.finetuning_runs` and :mod:`.results`, never through each other.
"""
