"""Self-supervised pretraining of the crystal encoders shipped by :mod:`matssl_featurizers`.

Entry points: ``python -m pretraining.run`` (train and export weights) and
``python -m pretraining.evaluate`` (random forest on frozen features).
"""
