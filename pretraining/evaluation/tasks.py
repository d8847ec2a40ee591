"""Labelled tasks for the evaluation protocols: rows, development / test splits, cross-validation folds
and training subsets.

``pretraining.evaluation.evaluate`` (random forest on frozen features) and ``pretraining.evaluation.finetune``
(the encoder trained end to end) read their rows with :func:`load_labelled` and split them with :func:`cv_splits`
and :func:`training_rows`, so the same ``--data``, ``--target``, ``--split``, ``--limit``, ``--folds``,
``--train-sizes`` and ``--seed`` give both protocols the same test rows and the same training rows.
Rows a featurizer or the graph builder fails on are removed from a fold afterwards, never re-split.

Splits: the rows of a file that have every target, ordered by id and shuffled with a fixed seed,
give the ``test`` split (the first :data:`SPLIT_SIZE`) and the ``dev`` split (the next
:data:`SPLIT_SIZE`). Model choices are made on ``dev``; ``test`` is read only for the released
tables. :data:`TASKS` are the published tasks; ``python -m pretraining.evaluation.exclusions`` lists the ids
of their splits, which pretraining leaves out (``pretraining.run --exclude``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..data import iter_records, payload_to_structure

SPLITS = ("test", "dev")
OUTSIDE = "outside"  # the labelled rows of neither split: extra training rows for the large tasks
SPLIT_SIZE = 2000
SPLIT_SEED = 20261201


class Task(NamedTuple):
    """A published task: its file under the data folder, its targets, and what the headline asks of them."""

    file: str
    targets: tuple[str, ...]
    shared: bool = False  # its targets are among the seven of the shared tasks (the encoders' verdicts)
    structure_sensitive: bool = False  # set by the arrangement of atoms (the hybrid presets' verdicts)


TASKS = {
    "mp_cgcnn": Task("mp_cgcnn.jsonl.gz", ("formation_energy_per_atom", "band_gap", "efermi"), shared=True),
    "castelli_perovskites": Task("castelli_perovskites.jsonl.gz", ("e_form",), shared=True, structure_sensitive=True),
    "carbon24": Task("carbon24.jsonl.gz", ("energy_per_atom",), shared=True, structure_sensitive=True),
    "jarvis_dft3d": Task("jarvis_dft3d.jsonl.gz", ("formation_energy_peratom", "optb88vdw_bandgap"), shared=True),
    # structure-sensitive JARVIS targets (JARVIS is never pretrained on)
    "jarvis_dielectric": Task("jarvis_dft3d.jsonl.gz", ("epsx",), structure_sensitive=True),
    "jarvis_exfoliation": Task("jarvis_dft3d.jsonl.gz", ("exfoliation_energy",), structure_sensitive=True),
    # zero at sites of cubic symmetry: set by the arrangement
    "jarvis_efg": Task("jarvis_dft3d.jsonl.gz", ("max_efg",), structure_sensitive=True),
}


def targets_of(flag: str) -> set[tuple[str, str]]:
    """``(file stem, target)`` of every target of the tasks of :data:`TASKS` whose field ``flag`` is true,
    e.g. ``("carbon24", "energy_per_atom")`` for ``"structure_sensitive"``."""
    return {(task.file.split(".")[0], target) for task in TASKS.values() if getattr(task, flag) for target in task.targets}


def split_positions(ids, split: str) -> np.ndarray:
    """Positions in ``ids`` of the rows of ``split`` (``"test"`` or ``"dev"``): the ids are ordered,
    shuffled with :data:`SPLIT_SEED`, and cut into consecutive blocks of :data:`SPLIT_SIZE`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    ids = np.asarray(ids, dtype=str)
    order = np.argsort(ids, kind="stable")
    shuffled = order[np.random.default_rng(SPLIT_SEED).permutation(len(ids))]
    start = SPLITS.index(split) * SPLIT_SIZE
    return np.sort(shuffled[start:start + SPLIT_SIZE])


def labelled_records(paths, targets) -> list[dict]:
    """``{"id", "payload", target...}`` of every entry of ``paths`` with all ``targets`` present (CIF not parsed)."""
    rows = []
    for path in paths:
        for rid, payload, row in iter_records(path):
            if all(row.get(t) is not None for t in targets):
                rows.append({"id": str(rid), "payload": payload, **{t: float(row[t]) for t in targets}})
    return rows


def load_labelled(paths, targets, limit=None, seed=0, split: str | None = None) -> pd.DataFrame:
    """Rows with a readable structure and every target present, as a DataFrame indexed by id with
    a ``structure`` column and one column per target (``split``: only the rows of that split, or with
    :data:`OUTSIDE` the rows of neither; ``limit``: N rows drawn with ``seed``)."""
    df = pd.DataFrame(labelled_records(paths, targets))
    if df.empty:
        raise SystemExit(f"no rows of {', '.join(map(str, paths))} have all of {targets}")
    if split == OUTSIDE:
        inside = np.concatenate([split_positions(df["id"], s) for s in SPLITS])
        df = df.drop(index=df.index[inside])
    elif split is not None:
        df = df.iloc[split_positions(df["id"], split)]
        if df.empty:
            raise SystemExit(f"the {split} split of {', '.join(map(str, paths))} with {targets} is empty")
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


def task_rows(paths, targets, limit=None, seed=0, split: str | None = None, extra: int | None = None) -> tuple[pd.DataFrame, int]:
    """:func:`load_labelled` rows, then (``extra``) that many rows of neither split drawn with ``seed``, which every
    fold trains on besides its own (the large tasks); and how many rows the folds are cut from."""
    df = load_labelled(paths, targets, limit, seed, split=split)
    if not extra:
        return df, len(df)
    more = load_labelled(paths, targets, extra, seed, split=OUTSIDE)
    return pd.concat([df, more]), len(df)


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


def evaluation_ids(data_dir) -> list[str]:
    """The ids of the test and dev splits of every task of :data:`TASKS` (files under ``data_dir``), sorted."""
    ids = set()
    for task in TASKS.values():
        records = labelled_records([Path(data_dir) / task.file], task.targets)
        for split in SPLITS:
            ids.update(records[i]["id"] for i in split_positions([r["id"] for r in records], split))
    return sorted(ids)
