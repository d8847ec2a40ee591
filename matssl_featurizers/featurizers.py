"""matminer featurizers backed by self-supervised crystal encoders."""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from matminer.featurizers.base import BaseFeaturizer
from tqdm.auto import tqdm

from . import weights as weights_io
from .citations import ARCHITECTURE_CITATIONS, METHOD_CITATIONS

SKIP_HINT = "To skip entries that fail, pass ignore_errors=True (failed rows become NaN)."


def _entries_as_list(entries) -> list:
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


class InProcessFeaturizer(BaseFeaturizer):
    """A matminer featurizer that works in this process (``n_jobs`` is 1: matminer's fork pool hangs in a
    process where torch has run), names the DataFrame row an error comes from, and never pickles the
    ``_cached_*`` state it loads lazily."""

    _n_jobs = 1

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cached_")}

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
        for index, entry in enumerate(tqdm(_entries_as_list(entries), desc=type(self).__name__, disable=not pbar)):
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


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= ``minimum`` (or ``None`` where allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        wanted = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {wanted}, got {value!r}")


_IN_FORKED_CHILD = False


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (``None``: leave torch's setting; always 1 in a forked
    child, see :func:`_one_torch_thread_after_fork`), then restore it."""
    import torch

    if _IN_FORKED_CHILD:
        n = 1
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _one_torch_thread_after_fork() -> None:
    """In a forked child (matminer's ``Pool``, e.g. inside ``MultipleFeaturizer``), torch's inherited OpenMP
    thread pool does not exist and the first parallel operation would wait for it forever; one thread
    runs without it."""
    global _IN_FORKED_CHILD
    _IN_FORKED_CHILD = True
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread_after_fork)


def check_device(device: str) -> None:
    """Raise ``ValueError`` for a device string torch cannot use here (e.g. ``"cuda"`` without a GPU)."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device: {err}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this PyTorch build has no CUDA support or sees no GPU; use device='cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: Apple's MPS backend is not available here; use device='cpu'")


class SSLStructureFeaturizer(InProcessFeaturizer):
    """Structure vectors from a self-supervised pretrained crystal graph encoder.

    The structure becomes a CGCNN crystal graph (the model's cutoff and neighbour count, 8 Å and 12 for
    every bundled model) and the encoder's readout is the feature vector. Weights load lazily on first
    use and are not pickled, so the featurizer clones, pickles and runs inside scikit-learn pipelines; a
    pickled featurizer remembers the sha256 of the weights it first loaded (``weights_sha256_``) and
    refuses other weights after unpickling.

    Args:
        model: name of a bundled model (``list_models()``); the feature-label prefix when ``weights`` is None.
        weights: where the weights come from, overriding the bundled ``model``: a local directory or
            ``"hf://OWNER/REPO[@REVISION]"``. ``None`` uses the bundled files of ``model``.
        batch_size: structures per forward pass (a positive integer).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        n_workers: processes that search neighbours while the model runs (0: in-process). Started with
            ``spawn`` on first use and kept for later calls (not pickled); a script using them needs the
            ``if __name__ == "__main__":`` guard.
        n_threads: torch threads while featurizing (default 1: small graphs gain little from more, and on a
            busy machine more threads are many times slower); ``None`` keeps torch's own setting.
        n_components: ``None`` for the whole readout vector, or the number of its principal components
            (fitted on the pretraining corpus and stored with the weights; ``list_models()`` shows how many).
        label_prefix: prefix of the feature labels. Default: the model name for a bundled model, else the
            pretraining method and the first 8 hex digits of the weights' sha256 (so that two custom models
            never share labels).

    Batches go through the model in this process, so ``n_jobs`` is not used. Inside matminer's
    ``MultipleFeaturizer``, whose worker processes are forked, each worker runs torch on one thread;
    ``MultipleFeaturizer(..., iterate_over_entries=False)`` lets this featurizer batch instead (faster).
    :meth:`featurize_iter` streams any iterable in bounded memory.
    """

    def __init__(self, model: str = weights_io.DEFAULT_MODEL, weights: str | None = None, batch_size: int = 64,
                 device: str = "cpu", n_workers: int = 0, n_threads: int | None = 1, n_components: int | None = None,
                 label_prefix: str | None = None):
        _check_int("batch_size", batch_size, 1)
        _check_int("n_workers", n_workers, 0)
        _check_int("n_threads", n_threads, 1, allow_none=True)
        _check_int("n_components", n_components, 1, allow_none=True)
        if not isinstance(device, str):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
        self.model = model
        self.weights = weights
        self.batch_size = batch_size
        self.device = device
        self.n_workers = n_workers
        self.n_threads = n_threads
        self.n_components = n_components
        self.label_prefix = label_prefix

    # -- lazy model -------------------------------------------------------------------------
    @property
    def _source(self):
        return self.model if self.weights is None else self.weights

    def _config(self) -> dict:
        cached = self.__dict__.get("_cached_config")
        if cached is None or cached[0] != self._source:
            config = weights_io.read_config(self._source)
            available = config.get("readout_components", 0)
            if self.n_components is not None and self.n_components > available:
                raise ValueError(f"n_components={self.n_components}: the weights of {self._source!r} keep "
                                 f"{available} principal components" + (" (use n_components=None)" if not available else ""))
            cached = (self._source, config)
            self._cached_config = cached
        return cached[1]

    def _fingerprint(self) -> str:
        cached = self.__dict__.get("_cached_fingerprint")
        if cached is None or cached[0] != self._source:
            cached = (self._source, weights_io.fingerprint(self._source))
            self._cached_fingerprint = cached
        return cached[1]

    def _encoder(self):
        key = (self._source, self.device)
        cached = self.__dict__.get("_cached_encoder")
        if cached is None or cached[0] != key:
            check_device(self.device)
            pinned, found = self.__dict__.get("weights_sha256_"), self._fingerprint()
            if pinned is not None and pinned != found:
                raise OSError(
                    f"the weights of {self._source!r} changed since this featurizer first used them (sha256 "
                    f"{pinned[:12]}... then, {found[:12]}... now): features, and predictions built on them, would "
                    "change silently. Refit the pipeline with the new weights, or restore the old ones.")
            self._config()  # checks n_components
            cached = (key, weights_io.load_encoder(self._source, device=self.device))
            self._cached_encoder = cached
            self.weights_sha256_ = found
        return cached[1]

    def _pool(self):
        """The neighbour-search worker processes (``None`` when ``n_workers`` is 0)."""
        if self.n_workers <= 0:
            return None
        cached = self.__dict__.get("_cached_pool")
        if cached is None or cached[0] != self.n_workers:
            from .neighbors import worker_pool

            if cached is not None:
                cached[1].shutdown()
            cached = (self.n_workers, worker_pool(self.n_workers))
            self._cached_pool = cached
        return cached[1]

    def _graph_settings(self) -> dict:
        config = self._config()
        return {"cutoff": config["cutoff"], "max_neighbors": config.get("max_neighbors", 12)}

    @property
    def n_features(self) -> int:
        return self.n_components or weights_io.feature_length(self._config())

    def _forward(self, graphs: list[dict]) -> np.ndarray:
        """Structure vectors ``[len(graphs), n_features]`` (float64) of a list of graph arrays."""
        import torch

        from .graphs import collate_arrays

        encoder = self._encoder()
        with torch.inference_mode(), torch_threads(self.n_threads):
            vectors = encoder(collate_arrays(graphs).to(self.device))
            if self.n_components is not None:
                vectors = encoder.principal_components(vectors)[:, : self.n_components]
            return vectors.double().cpu().numpy()

    def _vectors(self, graphs: list) -> tuple[np.ndarray, list]:
        """Vectors ``[len(graphs), n_features]`` of graph arrays (or exceptions), and per entry the exception
        that kept it from a finite vector (``None`` where it has one; its row is then NaN)."""
        self._encoder()  # missing or changed weights and unusable devices are not errors of an entry: they raise
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
                errors[i] = ValueError("the encoder returned non-finite values")
                vectors[i] = np.nan
        return vectors, errors

    def _blocks(self, structures):
        """``(vectors, errors)`` of :meth:`_vectors` per batch of the iterable ``structures``, built lazily."""
        from .neighbors import graph_batches

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

    # -- matminer API -----------------------------------------------------------------------
    def featurize(self, structure):
        """Feature vector (list of floats) of one pymatgen ``Structure``."""
        from .neighbors import neighbor_arrays

        vector = self._forward([neighbor_arrays(structure, **self._graph_settings())])[0]
        if not np.all(np.isfinite(vector)):
            raise ValueError("the encoder returned non-finite values")
        return vector.tolist()

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """Featurize structures in batches, keeping ``BaseFeaturizer.featurize_many``'s contract.

        Returns a list with one list of floats per entry; with ``ignore_errors`` a failing entry gives
        NaNs (and, with ``return_errors``, its traceback as a last element), else the error is raised
        naming the entry's position.
        """
        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        items = _entries_as_list(entries)
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

    def _label_prefix(self) -> str:
        if self.label_prefix is not None:
            return self.label_prefix
        if self.weights is None:
            return self.model
        return f"{self._config().get('method') or Path(str(self.weights)).name}-{self._fingerprint()[:8]}"

    def feature_labels(self):
        kind = "pc" if self.n_components is not None else ""
        return [f"{self._label_prefix()}_{kind}{i}" for i in range(self.n_features)]

    def citations(self):
        try:
            config = self._config()
        except OSError:  # weights not reachable (offline Hub): the bundled model of that name tells
            bundled = self.weights is None and self.model in weights_io.bundled_index()
            config = weights_io.read_config(self.model) if bundled else {"architecture": "cgcnn"}
        method = config.get("method")
        return ARCHITECTURE_CITATIONS.get(config["architecture"], []) + METHOD_CITATIONS.get(method, [])


class CrystalTwinsFeaturizer(SSLStructureFeaturizer):
    """Crystal Twins structure vectors: CGCNN pretrained with the Barlow Twins loss on two augmented
    views (perturbation, atom and edge masking) of each crystal (Magar et al., npj Comput. Mater. 8, 231, 2022).

    Args: as :class:`SSLStructureFeaturizer`, with ``model="crystal-twins"``.
    """

    def __init__(self, weights: str | None = None, batch_size: int = 64, device: str = "cpu", n_workers: int = 0,
                 n_threads: int | None = 1, n_components: int | None = None, label_prefix: str | None = None):
        super().__init__(model="crystal-twins", weights=weights, batch_size=batch_size, device=device, n_workers=n_workers,
                         n_threads=n_threads, n_components=n_components, label_prefix=label_prefix)


class CrystalCLRFeaturizer(SSLStructureFeaturizer):
    """CrystalCLR structure vectors: CGCNN pretrained with NT-Xent plus the composition-similarity loss on
    two augmented views (site perturbation, strain, column replace) of each crystal
    (Koker et al., NeurIPS 2022 AI4Mat workshop, arXiv:2211.13408).

    Args: as :class:`SSLStructureFeaturizer`, with ``model="crystalclr"``.
    """

    def __init__(self, weights: str | None = None, batch_size: int = 64, device: str = "cpu", n_workers: int = 0,
                 n_threads: int | None = 1, n_components: int | None = None, label_prefix: str | None = None):
        super().__init__(model="crystalclr", weights=weights, batch_size=batch_size, device=device, n_workers=n_workers,
                         n_threads=n_threads, n_components=n_components, label_prefix=label_prefix)


class CDSSLFeaturizer(SSLStructureFeaturizer):
    """CDSSL structure vectors: a MEGNet encoder pretrained to recover the original edge embeddings from
    structures with noisy atomic positions (New et al., arXiv:2408.17255, 2024). The bundled weights read
    out the ``layers`` statistics of the nodes, edges and global state of every block (937 values; the
    paper's Set2Set readout is the ``set2set`` option of the encoder config).

    Args: as :class:`SSLStructureFeaturizer`, with ``model="cdssl"``.
    """

    def __init__(self, weights: str | None = None, batch_size: int = 64, device: str = "cpu", n_workers: int = 0,
                 n_threads: int | None = 1, n_components: int | None = None, label_prefix: str | None = None):
        super().__init__(model="cdssl", weights=weights, batch_size=batch_size, device=device, n_workers=n_workers,
                         n_threads=n_threads, n_components=n_components, label_prefix=label_prefix)


class MaskedDenoisingFeaturizer(SSLStructureFeaturizer):
    """Structure vectors of a CGCNN pretrained to recover masked elements, the position noise and the volume
    strain of a corrupted crystal in one pass (this project's pretext, after Zaidi et al., ICLR 2023, and Hu et
    al., ICLR 2020); readout: mean, maximum and standard deviation of every layer and the mean edge expansion.

    Args: as :class:`SSLStructureFeaturizer`, with ``model="masked-denoising"``.
    """

    def __init__(self, weights: str | None = None, batch_size: int = 64, device: str = "cpu", n_workers: int = 0,
                 n_threads: int | None = 1, n_components: int | None = None, label_prefix: str | None = None):
        super().__init__(model="masked-denoising", weights=weights, batch_size=batch_size, device=device,
                         n_workers=n_workers, n_threads=n_threads, n_components=n_components, label_prefix=label_prefix)
