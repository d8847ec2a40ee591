"""Labelled tasks for the evaluation protocols: rows, cross-validation folds and training subsets.

``pretraining.evaluate`` (random forest on frozen features) and ``pretraining.finetune`` (the encoder
trained end to end) read their rows with :func:`load_labelled` and split them with :func:`cv_splits`
and :func:`training_rows`, so the same ``--data``, ``--target``, ``--limit``, ``--folds``,
``--train-sizes`` and ``--seed`` give both protocols the same test rows and the same training rows.
Rows a featurizer or the graph builder fails on are removed from a fold afterwards, never re-split.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from .data import iter_records, payload_to_structure


def load_labelled(paths, targets, limit=None, seed=0) -> pd.DataFrame:
    """Rows with a readable structure and every target present, as a DataFrame indexed by id with
    a ``structure`` column and one column per target (``limit``: N rows drawn with ``seed``)."""
    rows = []
    for path in paths:
        for rid, payload, row in iter_records(path):
            if all(row.get(t) is not None for t in targets):
                rows.append({"id": rid, "payload": payload, **{t: float(row[t]) for t in targets}})
    df = pd.DataFrame(rows)
    if df.empty:
        raise SystemExit(f"no rows of {', '.join(map(str, paths))} have all of {targets}")
    if limit is not None and limit < len(df):
        df = df.sample(n=limit, random_state=seed)
    structures = []
    for payload in df.pop("payload"):
        try:
            structures.append(payload_to_structure(payload))
        except Exception:
            structures.append(None)
    df["structure"] = structures
    return df[df["structure"].notna()].set_index("id")


def parse_train_sizes(text: str) -> list:
    """``"100,500,all"`` -> ``[100, 500, "all"]``."""
    return [s if s == "all" else int(s) for s in (part.strip() for part in text.split(","))]


def cv_splits(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` row positions of shuffled K-fold cross-validation over ``n`` rows."""
    from sklearn.model_selection import KFold

    if not 2 <= folds <= n:
        raise SystemExit(f"--folds {folds} needs 2 to {n} rows per fold split ({n} rows loaded)")
    return list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n)))


def training_rows(train: np.ndarray, size, seed: int, fold: int) -> np.ndarray:
    """The first ``size`` rows of a seeded permutation of the fold's training rows (all for ``"all"``)."""
    if size == "all":
        return train
    if size > len(train):
        raise SystemExit(f"training size {size} exceeds the {len(train)} training rows of fold {fold}")
    return np.random.default_rng(seed + fold).permutation(train)[: int(size)]


def fingerprint(df: pd.DataFrame) -> str:
    """sha256 of the ids and structures of ``df`` in order: the key under which features are cached."""
    digest = hashlib.sha256()
    for rid, structure in zip(df.index, df["structure"]):
        digest.update(str(rid).encode())
        digest.update(json.dumps(structure.as_dict(), sort_keys=True, default=str).encode())
    return digest.hexdigest()
