"""What every featurizer of this package shares: matminer's ``BaseFeaturizer`` run in this process, errors that
name the entry or DataFrame row, parameters checked scikit-learn's way, one lazily loaded state that is never
pickled, and batched featurization of crystal graphs."""

from __future__ import annotations

import traceback

import numpy as np
import pandas as pd
from matminer.featurizers.base import BaseFeaturizer
from tqdm.auto import tqdm

from .params import CheckedParams

SKIP_HINT = "To skip entries that fail, pass ignore_errors=True (failed rows become NaN)."


def entries_as_list(entries) -> list:
    """The single input of each entry, for every list-like shape ``featurize_many`` accepts."""
    if isinstance(entries, pd.DataFrame):
        entries = entries.values
    if isinstance(entries, pd.Series):
        return list(entries)
    if isinstance(entries, np.ndarray) and entries.ndim == 2:
        return [row[0] for row in entries]
    if not isinstance(entries, (list, tuple, np.ndarray)):
        raise TypeError("'entries' must be a list-like object (list, tuple, ndarray, Series or DataFrame)")
    return [e[0] if isinstance(e, (list, tuple, np.ndarray)) and len(e) == 1 else e for e in entries]


def _with_context(err: BaseException, message: str) -> BaseException:
    """A copy of ``err`` with ``message`` (same type where the type allows), chained to it."""
    try:
        new = type(err)(message)
    except Exception:
        new = ValueError(message)
    new.__cause__ = err
    return new


def entry_error(err: BaseException, index: int) -> BaseException:
    """``err`` re-raised for entry ``index`` of ``featurize_many``, tagged so that
    :meth:`InProcessFeaturizer.featurize_dataframe` can name the DataFrame row."""
    raised = _with_context(err, f"cannot featurize entry {index}: {err}\n{SKIP_HINT}")
    raised.entry_index, raised.reason = index, str(err)
    return raised


class InProcessFeaturizer(CheckedParams, BaseFeaturizer):
    """A matminer featurizer that works in this process (``n_jobs`` is 1: matminer's fork pool hangs in a
    process where torch has run), names the DataFrame row an error comes from, checks its parameters at first
    use and in ``set_params``, and never pickles the ``_cached_*`` state it loads lazily (:meth:`_cached`)."""

    _n_jobs = 1

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cached_")}

    def _cached(self, name: str, key, build):
        """The value ``build()`` made for ``key``, built again when ``key`` changed (e.g. by ``set_params``)."""
        slot = self.__dict__.get(f"_cached_{name}")
        if slot is None or slot[0] != key:
            slot = (key, build())
            self.__dict__[f"_cached_{name}"] = slot
        return slot[1]

    def featurize_dataframe(self, df, col_id, *args, **kwargs):
        """As ``BaseFeaturizer.featurize_dataframe``; an error names the DataFrame row that caused it."""
        try:
            return super().featurize_dataframe(df, col_id, *args, **kwargs)
        except Exception as err:
            if not hasattr(err, "entry_index"):
                raise
            label = df.index[err.entry_index]
            raise _with_context(err, f"cannot featurize row {label!r} (column {col_id!r}): {err.reason}\n{SKIP_HINT}") from err

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """As ``BaseFeaturizer.featurize_many``, in this process; an error names the entry's position."""
        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        n = len(self.feature_labels())
        rows = []
        for index, entry in enumerate(tqdm(entries_as_list(entries), desc=type(self).__name__, disable=not pbar)):
            try:
                rows.append(self.featurize(entry) + ([float("nan")] if return_errors else []))
            except Exception as err:
                if not ignore_errors:
                    raise entry_error(err, index) from err
                rows.append([float("nan")] * n + (["".join(traceback.format_exception(err))] if return_errors else []))
        return rows

    def get_feature_names_out(self, input_features=None):
        """Feature names for scikit-learn's ``set_output`` and pipelines."""
        return np.asarray(self.feature_labels(), dtype=object)

    def implementors(self):
        return ["matssl-featurizers developers"]


class GraphFeaturizer(InProcessFeaturizer):
    """A featurizer that turns batches of crystal graphs into rows: subclasses give ``batch_size``, ``n_workers``,
    :meth:`_graph_settings`, :meth:`_prepare` (load what the batches need; its errors are not an entry's) and
    :meth:`_forward` (graph arrays -> float64 rows ``[k, n_features]``)."""

    n_workers = 0

    def _graph_settings(self) -> dict:
        raise NotImplementedError

    def _prepare(self) -> None:
        raise NotImplementedError

    def _forward(self, graphs: list[dict]) -> np.ndarray:
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        return len(self.feature_labels())

    def _pool(self):
        """The neighbour-search worker processes (``None`` when ``n_workers`` is 0), started once and kept."""
        if self.n_workers <= 0:
            return None
        from .neighbors import worker_pool

        old = self.__dict__.get("_cached_pool")
        pool = self._cached("pool", self.n_workers, lambda: worker_pool(self.n_workers))
        if old is not None and old[1] is not pool:
            old[1].shutdown()
        return pool

    def _vectors(self, graphs: list) -> tuple[np.ndarray, list]:
        """Rows ``[len(graphs), n_features]`` of graph arrays (or exceptions), and per entry the exception that kept
        it from a finite row (``None`` where it has one; its row is then NaN)."""
        vectors = np.full((len(graphs), self.n_features), np.nan)
        errors = [g if isinstance(g, Exception) else None for g in graphs]
        ok = [i for i, err in enumerate(errors) if err is None]
        if ok:
            try:
                vectors[ok] = self._forward([graphs[i] for i in ok])
            except Exception:  # find the entries that fail on their own
                for i in ok:
                    try:
                        vectors[i] = self._forward([graphs[i]])[0]
                    except Exception as err:
                        errors[i] = err
        for i in ok:
            if errors[i] is None and not np.all(np.isfinite(vectors[i])):
                errors[i] = ValueError("the featurizer returned non-finite values")
                vectors[i] = np.nan
        return vectors, errors

    def _blocks(self, structures):
        """``(vectors, errors)`` of :meth:`_vectors` per batch of the iterable ``structures``, built lazily."""
        from .neighbors import graph_batches

        self._prepare()  # bad parameters, missing or changed weights and unusable devices raise here, not per entry
        for graphs in graph_batches(structures, self.batch_size, self._pool(), in_flight=2 * self.n_workers,
                                    **self._graph_settings()):
            yield self._vectors(graphs)

    def featurize_iter(self, structures, ignore_errors: bool = False):
        """Yield a float64 block ``[k, n_features]`` per batch (``k <= batch_size``) of any iterable of
        ``Structure`` objects, in order; reads the iterable lazily, so memory does not grow with its length.

        A structure that cannot be featurized raises, naming its position in the stream; with
        ``ignore_errors`` its row is NaN.
        """
        start = 0
        for vectors, errors in self._blocks(structures):
            for i, err in enumerate(errors):
                if err is not None and not ignore_errors:
                    raise entry_error(err, start + i) from err
            start += len(errors)
            yield vectors

    def featurize(self, structure):
        """Feature vector (list of floats) of one pymatgen ``Structure``."""
        from .neighbors import neighbor_arrays

        self._prepare()
        vector = self._forward([neighbor_arrays(structure, **self._graph_settings())])[0]
        if not np.all(np.isfinite(vector)):
            raise ValueError("the featurizer returned non-finite values")
        return vector.tolist()

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """Featurize structures in batches, keeping ``BaseFeaturizer.featurize_many``'s contract.

        Returns a list with one list of floats per entry; with ``ignore_errors`` a failing entry gives
        NaNs (and, with ``return_errors``, its traceback as a last element), else the error is raised
        naming the entry's position.
        """
        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        items = entries_as_list(entries)
        if not items:
            return []
        rows: list = []
        progress = tqdm(total=len(items), desc=type(self).__name__, disable=not pbar)
        for vectors, errors in self._blocks(items):
            for vector, err in zip(vectors, errors):
                if err is None:
                    rows.append(vector.tolist() + ([float("nan")] if return_errors else []))
                elif ignore_errors:
                    rows.append(vector.tolist() + (["".join(traceback.format_exception(err))] if return_errors else []))
                else:
                    raise entry_error(err, len(rows)) from err
            progress.update(len(errors))
        progress.close()
        return rows
