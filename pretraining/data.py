"""Reading structure datasets and caching their crystal graphs on disk.

Accepted ``--data`` sources:

* JSON Lines (``.jsonl``, ``.jsonl.gz``) with a ``cif`` (CIF text) or ``structure`` (pymatgen dict) key,
  the format of the shared DFT datasets;
* a directory of CIF / POSCAR files;
* a pandas / matminer DataFrame file (``.json``/``.json.gz`` as written by matminer's
  ``store_dataframe_as_json``, or ``.pkl``) with a column of structures.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from matssl_featurizers.bundled import sha256
from matssl_featurizers.graphs import CUTOFF, MAX_NEIGHBORS, collate_arrays
from matssl_featurizers.neighbors import MIN_DISTANCE, graph_arrays, site_arrays

VALIDATION_FRACTION = 0.05  # of the pretraining corpus, for the validation loss
CACHE_VERSION = 3  # 2: equidistant neighbours at the twelfth place chosen by site index (neighbors.graph_arrays);
# 3: GraphStore.source, the file each graph was read from
STRUCTURE_FILE_PATTERNS = ("*.cif", "*.vasp", "POSCAR*", "CONTCAR*")


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _is_jsonl(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz"))


def _structure_column(df, column: str | None) -> str:
    from pymatgen.core import IStructure

    if column is not None:
        if column not in df.columns:
            raise ValueError(f"column {column!r} not in the DataFrame (columns: {list(df.columns)})")
        return column
    for name in df.columns:
        first = df[name].dropna()
        if len(first) and (isinstance(first.iloc[0], IStructure)
                           or (isinstance(first.iloc[0], dict) and "lattice" in first.iloc[0])):
            return name
    raise ValueError("no column of structures found; name it with structure_column")


def iter_records(path: str | os.PathLike, structure_column: str | None = None):
    """Yield ``(row_id, payload, row)`` from one source; ``payload`` is CIF text, a pymatgen dict,
    a ``Structure`` or ``None`` (unreadable), ``row`` the other fields of that entry."""
    path = Path(path)
    if path.is_dir():
        files = sorted({f for pattern in STRUCTURE_FILE_PATTERNS for f in path.glob(pattern)})
        for file in files:
            yield file.name, ("file", str(file)), {}
    elif _is_jsonl(path):
        with _open_text(path) as handle:
            for number, line in enumerate(handle):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    yield f"{path.name}:{number + 1}", None, {}
                    continue
                payload = ("cif", row.pop("cif")) if "cif" in row else ("dict", row.pop("structure", None))
                yield row.get("id", f"{path.name}:{number + 1}"), payload, row
    elif path.name.endswith((".json", ".json.gz", ".pkl", ".pickle")):
        import pandas as pd

        if path.name.endswith((".pkl", ".pickle")):
            df = pd.read_pickle(path)
        else:
            from matminer.utils.io import load_dataframe_from_json

            df = load_dataframe_from_json(str(path))
        column = _structure_column(df, structure_column)
        for index, row in df.iterrows():
            value = row[column]
            kind = "dict" if isinstance(value, dict) else "object"
            yield str(index), (kind, value), row.drop(labels=[column]).to_dict()
    else:
        raise ValueError(f"{path}: not a directory, JSON Lines (.jsonl[.gz]) or DataFrame file (.json[.gz], .pkl)")


def payload_to_structure(payload):
    """The pymatgen ``Structure`` of a record payload (raises on unreadable input)."""
    from pymatgen.core import IStructure, Structure

    if payload is None:
        raise ValueError("unreadable line")
    kind, value = payload
    if value is None:
        raise ValueError("no structure in this entry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "cif":
            return Structure.from_str(value, fmt="cif")
        if kind == "file":
            return Structure.from_file(value)
        if kind == "dict":
            return Structure.from_dict(value)
    if isinstance(value, IStructure):
        return value
    raise TypeError(f"expected a Structure, got {type(value).__name__}")


def _payload_to_arrays(payload):
    try:
        return graph_arrays(site_arrays(payload_to_structure(payload)))  # overlapping sites: one warning, by build_graphs
    except Exception as err:  # reported and counted by the caller
        return f"{type(err).__name__}: {err}"


@dataclass
class GraphStore:
    """Crystal graphs of a dataset, concatenated into flat arrays with per-graph offsets."""

    ids: np.ndarray
    source: np.ndarray  # per graph, the position of its file among the paths given to build_graphs
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray
    lattice: np.ndarray
    edge_index: np.ndarray  # local to each graph
    edge_image: np.ndarray
    node_ptr: np.ndarray
    edge_ptr: np.ndarray
    skipped: int = 0

    @classmethod
    def from_arrays(cls, ids, source, arrays: list[dict], skipped: int = 0) -> "GraphStore":
        node_counts = [len(a["atomic_numbers"]) for a in arrays]
        edge_counts = [a["edge_index"].shape[1] for a in arrays]

        def cat(key, axis=0, empty_shape=(0,), dtype=np.float32):
            parts = [a[key] for a in arrays]
            return np.concatenate(parts, axis=axis).astype(dtype) if parts else np.zeros(empty_shape, dtype)

        return cls(
            ids=np.asarray(ids, dtype=str),
            source=np.asarray(source, dtype=np.int64),
            atomic_numbers=cat("atomic_numbers", dtype=np.int16),
            frac_coords=cat("frac_coords", empty_shape=(0, 3)),
            lattice=np.stack([a["lattice"] for a in arrays]).astype(np.float32) if arrays else np.zeros((0, 3, 3), np.float32),
            edge_index=cat("edge_index", axis=1, empty_shape=(2, 0), dtype=np.int32),
            edge_image=cat("edge_image", empty_shape=(0, 3), dtype=np.int16),
            node_ptr=np.concatenate([[0], np.cumsum(node_counts)]).astype(np.int64),
            edge_ptr=np.concatenate([[0], np.cumsum(edge_counts)]).astype(np.int64),
            skipped=skipped,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> "GraphStore":
        """The first ``n`` graphs (``skipped`` is not known for them and set to 0)."""
        if n >= len(self):
            return self
        nodes, edges = int(self.node_ptr[n]), int(self.edge_ptr[n])
        return GraphStore(ids=self.ids[:n], source=self.source[:n], atomic_numbers=self.atomic_numbers[:nodes],
                          frac_coords=self.frac_coords[:nodes], lattice=self.lattice[:n], edge_index=self.edge_index[:, :edges], edge_image=self.edge_image[:edges],
                          node_ptr=self.node_ptr[:n + 1], edge_ptr=self.edge_ptr[:n + 1], skipped=0)

    def graph(self, i: int) -> dict:
        """The arrays of graph ``i`` (the layout of :func:`~matssl_featurizers.neighbors.neighbor_arrays`)."""
        n0, n1, e0, e1 = self.node_ptr[i], self.node_ptr[i + 1], self.edge_ptr[i], self.edge_ptr[i + 1]
        return {
            "atomic_numbers": self.atomic_numbers[n0:n1],
            "frac_coords": self.frac_coords[n0:n1],
            "lattice": self.lattice[i],
            "edge_index": self.edge_index[:, e0:e1],
            "edge_image": self.edge_image[e0:e1],
        }

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **{k: v for k, v in self.__dict__.items()})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "GraphStore":
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files}
        fields["skipped"] = int(fields["skipped"])
        return cls(**fields)


class GraphDataset(torch.utils.data.Dataset):
    """A ``GraphStore`` (optionally a subset of it, in the order of ``indices``) as a torch dataset of graph arrays."""

    def __init__(self, store: GraphStore, indices=None):
        self.store = store
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.store.graph(int(self.indices[i]))


def graph_loader(dataset: GraphDataset, batch_size: int, shuffle: bool = False, generator=None, sampler=None,
                 drop_last: bool = False) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` as :class:`~matssl_featurizers.graphs.GraphBatch` (torch's ``DataLoader``)."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                                       drop_last=drop_last, generator=generator, collate_fn=collate_arrays)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "matssl_featurizers" / "graphs"


def _cache_key(paths, structure_column, limit=None) -> str:
    """The cache file name of ``paths``: their contents (not their names or modification times, so a
    fresh copy of the same data finds its graphs), in order, and the graph settings."""
    parts = [f"v{CACHE_VERSION}", f"cutoff={CUTOFF}", f"k={MAX_NEIGHBORS}", f"column={structure_column}"]
    if limit is not None:
        parts.append(f"limit={limit}")
    for path in paths:
        path = Path(path)
        members = sorted(m for m in path.rglob("*") if m.is_file()) if path.is_dir() else [path]
        for member in members:
            name = member.relative_to(path).as_posix() if path.is_dir() else ""
            parts.append(f"{name}:{sha256(member)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def build_graphs(paths, cache_dir=None, workers: int = 1, strict: bool = False,
                 structure_column: str | None = None, progress: bool = True, limit: int | None = None) -> GraphStore:
    """Crystal graphs of every readable entry of ``paths`` (only the first ``limit`` entries when given),
    built once and cached in ``cache_dir``. Where all entries are cached already, ``limit`` takes the
    first ``limit`` readable graphs from that cache.

    Unreadable entries are skipped and counted (``GraphStore.skipped``); with ``strict`` the first one
    raises ``ValueError`` naming it.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    full = cache_dir / f"{_cache_key(paths, structure_column)}.npz"
    cache = full if limit is None else cache_dir / f"{_cache_key(paths, structure_column, limit)}.npz"
    if full.is_file() and limit is not None and not cache.is_file():
        return GraphStore.load(full).head(limit)
    if cache.is_file():
        return GraphStore.load(cache)
    entries = ((k, rid, payload) for k, path in enumerate(paths) for rid, payload, _ in iter_records(path, structure_column))
    records = list(itertools.islice(entries, limit))
    payloads = [payload for _, _, payload in records]
    bar = tqdm(total=len(records), desc="building crystal graphs", disable=not progress, unit="structure")
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = []
            for result in pool.imap(_payload_to_arrays, payloads, chunksize=64):
                results.append(result)
                bar.update()
    else:
        results = []
        for payload in payloads:
            results.append(_payload_to_arrays(payload))
            bar.update()
    bar.close()
    ids, source, arrays, skipped = [], [], [], []
    for (k, rid, _), result in zip(records, results):
        if isinstance(result, str):
            if strict:
                raise ValueError(f"entry {rid!r} cannot be read: {result} (drop --strict to skip such entries)")
            skipped.append(f"{rid}: {result}")
        else:
            ids.append(str(rid))
            source.append(k)
            arrays.append(result)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable entries, e.g. {skipped[0]}")
    overlaps = [(rid, a["overlap"]) for rid, a in zip(ids, arrays) if a["overlap"] is not None]
    if overlaps:
        rid, (i, j, distance) = overlaps[0]
        warnings.warn(f"{len(overlaps)} of {len(ids)} structures have two sites closer than any two atoms can be "
                      f"({MIN_DISTANCE} Å), e.g. {rid}: sites {i} and {j}, {distance:.3f} Å apart")
    store = GraphStore.from_arrays(ids, source, arrays, skipped=len(skipped))
    cache_dir.mkdir(parents=True, exist_ok=True)
    store.save(cache)
    return store


def corpus_rows(store, exclude_files, limit=None) -> tuple[np.ndarray, dict]:
    """Positions in ``store`` to pretrain on: the first occurrence of each id, without the ids listed in
    ``exclude_files``, at most ``limit``; and the counts of what was left out."""
    excluded = set()
    for path in exclude_files:
        excluded.update(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    seen, keep, duplicates, dropped = set(), [], 0, 0
    for i, rid in enumerate(store.ids):
        if rid in seen:
            duplicates += 1
        elif rid in excluded:
            dropped += 1
        else:
            keep.append(i)
        seen.add(rid)
    keep = np.asarray(keep[:limit] if limit is not None else keep, dtype=np.int64)
    return keep, {"n_duplicate_ids": duplicates, "n_excluded": dropped}


def split_indices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 95 / 5 train / validation split, with at least two validation structures (the losses
    need a batch of two) when n > 3. The validation rows stay shuffled, so that each validation batch
    mixes the data files like a training batch (the batch-normalised losses depend on the mix)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(2, int(round(VALIDATION_FRACTION * n))) if n > 3 else 0
    return np.sort(order[n_val:]), order[:n_val]
