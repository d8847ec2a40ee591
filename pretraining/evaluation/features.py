"""Features of the evaluation rows for every featurizer name, cached on disk with joblib."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import featurizer_names
from .tasks import fingerprint


def featurize(name: str, structures: list, readout: dict | None = None, progress: bool = True) -> np.ndarray:
    """Features of every structure for one name without ``+`` (a row of NaN where it fails), with a progress bar."""
    parsed = featurizer_names.parse(name)
    featurizer = featurizer_names.make(parsed, readout)
    if parsed.kind == "matminer":
        entries = [s.composition for s in structures] if name == "ElementProperty" else structures
        if name == "SineCoulombMatrix":
            featurizer.fit(structures)
        rows = [featurizer.featurize_wrapper((x,), ignore_errors=True)
                for x in tqdm(entries, desc=name, unit="structure", disable=not progress)]
    else:
        rows = featurizer.featurize_many(structures, ignore_errors=True, pbar=progress)
    return np.array(rows, dtype=float)


def _cached_features(name: str, identity: str, data_key: str, structures: list, readout: dict) -> np.ndarray:
    """:func:`featurize` behind the joblib cache: keyed by name, identity, data_key and readout, not the structures."""
    return featurize(name, structures, readout)


def all_features(names: list[str], df: pd.DataFrame, cache: Path | None, readout: dict | None = None) -> dict[str, np.ndarray]:
    """Features of every featurizer in ``names`` (``a+b`` concatenated; each part computed once) for the rows of
    ``df``, read from / written to the joblib cache ``cache`` when given."""
    readout = readout or {}
    compute = _cached_features
    if cache is not None:
        import joblib

        compute = joblib.Memory(cache, verbose=0).cache(_cached_features, ignore=["structures"])
    structures, data_key = list(df["structure"]), fingerprint(df)
    parts = list(dict.fromkeys(p for name in names for p in name.split("+")))
    for part in parts:
        if part in featurizer_names.SLOW:
            minutes = featurizer_names.SLOW[part] * len(structures) / 60
            print(f"note: {part} takes about {minutes:.0f} min for {len(structures)} structures", file=sys.stderr)
    features = {}
    for part in tqdm(parts, desc="featurizers", unit="featurizer"):
        identity = featurizer_names.identity(featurizer_names.parse(part), readout)
        features[part] = compute(part, identity, data_key, structures, readout)
    return {name: np.hstack([features[p] for p in name.split("+")]) for name in names}
