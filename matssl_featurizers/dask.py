"""Featurize a dask DataFrame of structures across processes or machines (``pip install "matssl-featurizers[dask]"``).

Nothing here imports dask (the caller has it); the rest of the package works without it.
"""

from __future__ import annotations

import threading

_LOADED: dict = {}  # per worker process: featurizer parameters -> the featurizer that holds their loaded model
_LOCK = threading.Lock()


def _local(featurizer):
    """This process's copy of ``featurizer`` (the first one seen with the same class and parameters), which loads
    the weights on its first batch and keeps them for every later partition."""
    key = (type(featurizer).__module__, type(featurizer).__qualname__, repr(sorted(featurizer.get_params().items())))
    with _LOCK:
        return _LOADED.setdefault(key, featurizer)


def _featurize_partition(partition, column: str, featurizer, ignore_errors: bool):
    return _local(featurizer).featurize_dataframe(partition, column, ignore_errors=ignore_errors, pbar=False)


def featurize_dask(ddf, column: str, featurizer, ignore_errors: bool = False):
    """``ddf`` (a ``dask.dataframe.DataFrame`` with pymatgen ``Structure`` objects in ``column``) with the
    featurizer's columns appended, one ``featurize_dataframe`` per partition (``map_partitions``), lazily.

    Each worker process loads the model once and reuses it for all its partitions; with ``ignore_errors``
    a structure that cannot be featurized gives NaNs, else computing raises naming its row. Leave the
    featurizer's ``n_workers`` at 0: dask's workers are the parallelism. Build ``ddf`` under
    ``dask.config.set({"dataframe.convert-string": False})``, or dask turns the structures into strings.
    """
    import numpy as np
    import pandas as pd

    if pd.api.types.is_string_dtype(ddf[column].dtype) and ddf[column].dtype != object:
        raise TypeError(f"column {column!r} holds strings ({ddf[column].dtype}), not Structures: dask converted them; "
                        "create the frame under dask.config.set({'dataframe.convert-string': False})")
    labels = featurizer.feature_labels()
    features = pd.DataFrame(np.empty((0, len(labels))), columns=labels, index=ddf._meta.index)
    meta = pd.concat([ddf._meta, features], axis=1)
    return ddf.map_partitions(_featurize_partition, column, featurizer, ignore_errors, meta=meta)
