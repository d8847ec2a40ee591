"""Self-supervised pretraining of the crystal encoders shipped by :mod:`matssl_featurizers` (the training layer).

``python -m pretraining.run`` trains an encoder on your structures and exports a weights folder;
``python -m pretraining.bundle`` ships one inside the package; ``python -m pretraining.atom_vectors`` writes CrysAtom
atom vectors from a trained encoder. The evaluation commands that produced the published numbers are in
:mod:`pretraining.evaluation`, a layer above this one: nothing here imports them.
"""
