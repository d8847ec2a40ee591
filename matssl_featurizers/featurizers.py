"""matminer featurizers backed by self-supervised crystal encoders."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from .base import GraphFeaturizer
from .params import integer, optional_string
from .runtime import check_device, torch_threads
from .sources import DEFAULT_MODEL, bundled_names, unknown_model_message


def _bundled_model(name, value) -> None:
    if not isinstance(value, str) or value not in bundled_names():
        raise ValueError(unknown_model_message(value))


def _weights(name, value) -> None:
    from .encoders import PretrainedEncoder

    if value is not None and not isinstance(value, (str, os.PathLike, PretrainedEncoder)):
        raise ValueError(f"{name} must be None, a bundled name, a folder, 'hf://OWNER/REPO[@REVISION]' or a "
                         f"PretrainedEncoder, got {type(value).__name__}")


def _device(name, value) -> None:
    check_device(value)


class SSLStructureFeaturizer(GraphFeaturizer):
    """Structure vectors from a self-supervised pretrained crystal graph encoder.

    The structure becomes a crystal graph with the model's cutoff and neighbour count (8 Å and 12 for every
    bundled model) and the encoder's readout is the feature vector; each label says what its column is (layer,
    statistic and channel, neighbour-distance bin in Å, or principal component). The model loads lazily on first
    use and is not pickled, so the featurizer clones, pickles and runs inside scikit-learn pipelines; a pickled
    featurizer remembers the fingerprint of the weights it first loaded (``weights_sha256_``, of the source
    ``weights_source_``) and refuses other weights from that source after unpickling.

    Args:
        model: name of a bundled model (``list_models()``), used when ``weights`` is None. A name that is not
            bundled fails at first use (or in ``set_params``) with the list of bundled names.
        weights: where the weights come from, overriding ``model``: a bundled name, a local folder,
            ``"hf://OWNER/REPO[@REVISION]"``, or a :class:`~matssl_featurizers.encoders.PretrainedEncoder` (copied
            at first use).
        batch_size: structures per forward pass (a positive integer).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        n_workers: processes that search neighbours while the model runs (0: in-process). Started with
            ``spawn`` on first use and kept for later calls (not pickled); a script using them needs the
            ``if __name__ == "__main__":`` guard.
        n_threads: torch threads while featurizing (default 1: small graphs gain little from more, and on a busy
            machine more threads are many times slower; see docs/scaling.md); ``None`` keeps torch's setting.
        n_components: ``None`` for the whole readout vector, or the number of its principal components (fitted
            on the pretraining corpus and stored with the weights; ``list_models()`` shows how many).
        label_prefix: prefix of the feature labels. Default: the bundled name, else the pretraining method and the
            first 8 hex digits of the weights' fingerprint (so that two custom models never share labels).

    Arguments are checked at first use and by ``set_params``, as in scikit-learn. Batches go through the model in
    this process, so ``n_jobs`` is not used. Inside matminer's ``MultipleFeaturizer``, whose worker processes are
    forked, each worker runs torch on one thread; ``MultipleFeaturizer(..., iterate_over_entries=False)`` lets this
    featurizer batch instead (faster). :meth:`featurize_iter` streams any iterable in bounded memory.
    """

    _parameter_checks = {"model": _bundled_model, "weights": _weights, "batch_size": integer(1), "device": _device,
                         "n_workers": integer(0), "n_threads": integer(1, allow_none=True),
                         "n_components": integer(1, allow_none=True), "label_prefix": optional_string}

    def __init__(self, model: str = DEFAULT_MODEL, weights=None, batch_size: int = 64, device: str = "cpu",
                 n_workers: int = 0, n_threads: int | None = 1, n_components: int | None = None,
                 label_prefix: str | None = None):
        self.model = model
        self.weights = weights
        self.batch_size = batch_size
        self.device = device
        self.n_workers = n_workers
        self.n_threads = n_threads
        self.n_components = n_components
        self.label_prefix = label_prefix

    def _check_params(self, params: dict | None = None) -> None:
        params = self.get_params(deep=False) if params is None else params
        if params.get("weights") is not None:  # model is not used: weights say where the encoder comes from
            params = {k: v for k, v in params.items() if k != "model"}
        super()._check_params(params)

    # -- the model -------------------------------------------------------------------------
    def encoder(self):
        """The :class:`~matssl_featurizers.encoders.PretrainedEncoder` this featurizer runs, loaded on first use
        (and again after ``set_params`` changed where it comes from or the device)."""
        source = self.model if self.weights is None else self.weights
        key = (id(source) if not isinstance(source, (str, os.PathLike)) else str(source), self.device)
        return self._cached("encoder", key, lambda: self._load(source))

    def _load(self, source):
        from .encoders import PretrainedEncoder

        self._check_params()
        if isinstance(source, PretrainedEncoder):
            encoder = copy.deepcopy(source).to(self.device).eval()
        else:
            encoder = PretrainedEncoder.from_pretrained(source, device=self.device)
        pinned, label = self.__dict__.get("weights_sha256_"), self._source_label(source)
        # the pin guards a source against changed files; set_params to another source starts a new pin
        same_source = self.__dict__.get("weights_source_", label) == label
        if pinned is not None and same_source and pinned not in encoder.fingerprints():
            raise OSError(
                f"the weights of {str(source)!r} changed since this featurizer first used them (fingerprint "
                f"{pinned[:12]}... then, {encoder.fingerprint()[:12]}... now): features, and predictions built on them, "
                "would change silently. Refit the pipeline with the new weights, or restore the old ones.")
        if self.n_components is not None and self.n_components > encoder.n_components:
            raise ValueError(f"n_components={self.n_components}: the weights of {str(source)!r} keep "
                             f"{encoder.n_components} principal components"
                             + (" (use n_components=None)" if not encoder.n_components else ""))
        self.weights_sha256_, self.weights_source_ = encoder.fingerprint(), label
        return encoder

    @staticmethod
    def _source_label(source) -> str:
        return str(source) if isinstance(source, (str, os.PathLike)) else "a PretrainedEncoder object"

    def _prepare(self) -> None:
        self.encoder()

    def _graph_settings(self) -> dict:
        return self.encoder().graph_settings

    @property
    def n_features(self) -> int:
        return self.n_components or self.encoder().out_features

    def _forward(self, graphs: list[dict]) -> np.ndarray:
        """Structure vectors ``[len(graphs), n_features]`` (float64) of a list of graph arrays."""
        import torch

        from .graphs import collate_arrays

        encoder = self.encoder()
        with torch.inference_mode(), torch_threads(self.n_threads):
            vectors = encoder(collate_arrays(graphs).to(self.device))
            if self.n_components is not None:
                vectors = encoder.principal_components(vectors)[:, : self.n_components]
            return vectors.double().cpu().numpy()

    # -- matminer API -----------------------------------------------------------------------
    def _label_prefix(self) -> str:
        encoder = self.encoder()
        if self.label_prefix is not None:
            return self.label_prefix
        if isinstance(self.weights, (str, os.PathLike)) and not encoder.name:  # a folder or hf:// address
            return f"{encoder.info.method or Path(str(self.weights)).name}-{encoder.fingerprint()[:8]}"
        return encoder.label_prefix()

    def feature_labels(self):
        encoder = self.encoder()
        labels = encoder.component_labels()[: self.n_components] if self.n_components else encoder.feature_labels()
        prefix = self._label_prefix()
        return [f"{prefix} {label}" for label in labels]

    def citations(self):
        from .citations import CGCNN_CITATION
        from .encoders import PretrainedEncoder

        try:
            return self.encoder().citations()
        except OSError:  # weights not reachable (offline Hub): the bundled model of that name tells
            if self.weights is None and self.model in bundled_names():
                return PretrainedEncoder.from_pretrained(self.model).citations()
            return [CGCNN_CITATION]


class BundledModelFeaturizer(SSLStructureFeaturizer):
    """:class:`SSLStructureFeaturizer` of the bundled model its subclass names (``model`` is not a parameter)."""

    def __init__(self, weights=None, batch_size: int = 64, device: str = "cpu", n_workers: int = 0,
                 n_threads: int | None = 1, n_components: int | None = None, label_prefix: str | None = None):
        super().__init__(type(self).model, weights, batch_size, device, n_workers, n_threads, n_components, label_prefix)


class CrystalTwinsFeaturizer(BundledModelFeaturizer):
    """Crystal Twins structure vectors: CGCNN pretrained with the Barlow Twins loss on two augmented
    views (perturbation, atom and edge masking) of each crystal (Magar et al., npj Comput. Mater. 8, 231, 2022).

    Args: as :class:`SSLStructureFeaturizer`, with the bundled ``crystal-twins`` model.
    """

    model = "crystal-twins"


class CrystalCLRFeaturizer(BundledModelFeaturizer):
    """CrystalCLR structure vectors: CGCNN pretrained with NT-Xent plus the composition-similarity loss on
    two augmented views (site perturbation, strain, column replace) of each crystal
    (Koker et al., NeurIPS 2022 AI4Mat workshop, arXiv:2211.13408).

    Args: as :class:`SSLStructureFeaturizer`, with the bundled ``crystalclr`` model.
    """

    model = "crystalclr"


class CDSSLFeaturizer(BundledModelFeaturizer):
    """CDSSL structure vectors: a MEGNet encoder pretrained to recover the original edge embeddings from
    structures with noisy atomic positions (New et al., arXiv:2408.17255, 2024). The bundled weights read
    out the ``layers`` statistics of the nodes, edges and global state of every block (937 values; the
    paper's Set2Set readout is the ``set2set`` option of the encoder config).

    Args: as :class:`SSLStructureFeaturizer`, with the bundled ``cdssl`` model.
    """

    model = "cdssl"


class MaskedDenoisingFeaturizer(BundledModelFeaturizer):
    """Structure vectors of a CGCNN pretrained to recover masked elements, the position noise and the volume
    strain of a corrupted crystal in one pass (this project's pretext, after Zaidi et al., ICLR 2023, and Hu et
    al., ICLR 2020); readout: mean, maximum and standard deviation of every layer and the mean edge expansion.

    Args: as :class:`SSLStructureFeaturizer`, with the bundled ``masked-denoising`` model.
    """

    model = "masked-denoising"
