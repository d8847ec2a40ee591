"""A composition block and a small structure block (optionally a shell-anisotropy block) in one featurizer."""

from __future__ import annotations

import numpy as np

from . import weights as weights_io
from .atom_vectors import CGCNN92
from .composition import AtomVectorFeaturizer
from .featurizers import InProcessFeaturizer, SSLStructureFeaturizer

PRESETS = {
    # name: (model, composition table, principal components of the structure vector, shell-anisotropy block)
    "hybrid": (weights_io.DEFAULT_MODEL, CGCNN92, 32, False),
    "hybrid-anisotropy": (weights_io.DEFAULT_MODEL, CGCNN92, 32, True),
}


class HybridStructureFeaturizer(InProcessFeaturizer):
    """Composition statistics of a per-element table next to the first principal components of a pretrained
    structure vector.

    The composition block is :class:`~matssl_featurizers.composition.AtomVectorFeaturizer` of ``composition``
    (CGCNN's 92 input features by default: what the CGCNN encoders read); the structure block is
    :class:`~matssl_featurizers.featurizers.SSLStructureFeaturizer` with ``n_components`` principal
    components (fitted on the pretraining corpus and stored with the weights). Few structure columns keep a
    random forest from spending most of its splits on them. With ``anisotropy`` the parameter-free
    :class:`~matssl_featurizers.anisotropy.ShellAnisotropy` block follows: how far each site's neighbours
    are from cubic symmetry, which distances, and so the encoders, cannot see.

    Args:
        model, weights, batch_size, device, n_workers, n_threads, label_prefix: as ``SSLStructureFeaturizer``.
        composition: the element table of the composition block: ``"cgcnn92"``, ``"crysatom"`` or a CSV file.
        n_components: principal components in the structure block.
        anisotropy: append the :class:`~matssl_featurizers.anisotropy.ShellAnisotropy` block (default settings).

    ``from_preset`` names the combinations measured in the README. A structure that cannot be featurized
    raises naming its row, or gives a row of NaN with ``ignore_errors=True``.
    """

    def __init__(self, model: str = weights_io.DEFAULT_MODEL, weights: str | None = None, composition: str = CGCNN92,
                 n_components: int = 32, anisotropy: bool = False, batch_size: int = 64, device: str = "cpu",
                 n_workers: int = 0, n_threads: int | None = 1, label_prefix: str | None = None):
        self.model = model
        self.weights = weights
        self.composition = composition
        self.n_components = n_components
        self.anisotropy = anisotropy
        self.batch_size = batch_size
        self.device = device
        self.n_workers = n_workers
        self.n_threads = n_threads
        self.label_prefix = label_prefix
        self._parts()  # validates the arguments (nothing is loaded)

    @classmethod
    def from_preset(cls, preset: str = "hybrid", **kwargs):
        """A named combination of model, composition table, structure components and anisotropy block (see :data:`PRESETS`)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        model, composition, n_components, anisotropy = PRESETS[preset]
        return cls(model=model, composition=composition, n_components=n_components, anisotropy=anisotropy, **kwargs)

    def _parts(self) -> tuple:
        """The blocks (composition, structure, then the anisotropy block where asked for), rebuilt when a
        parameter changed; pickled with this featurizer (each without its loaded table or model, the
        structure block with the sha256 of the weights it used)."""
        key = tuple(sorted(self.get_params().items()))
        if self.__dict__.get("_parts_key") != key:
            structure = SSLStructureFeaturizer(model=self.model, weights=self.weights, batch_size=self.batch_size,
                                               device=self.device, n_workers=self.n_workers, n_threads=self.n_threads,
                                               n_components=self.n_components, label_prefix=self.label_prefix)
            parts = (AtomVectorFeaturizer(vectors=self.composition), structure)
            if self.anisotropy:
                from .anisotropy import ShellAnisotropy

                parts += (ShellAnisotropy(),)
            self._parts_key, self._parts_value = key, parts
        return self._parts_value

    def featurize(self, structure):
        """Feature vector (list of floats) of one pymatgen ``Structure``."""
        return [value for part in self._parts() for value in part.featurize(structure)]

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """As ``BaseFeaturizer.featurize_many``: the structure block in batches, then the other blocks. A row
        that any block fails on is NaN in every column, as a failed entry of one featurizer is in matminer;
        with ``return_errors`` the last column holds the first block's error."""
        composition, structure_block, *others = self._parts()
        structures = structure_block.featurize_many(entries, ignore_errors, ignore_errors, pbar)
        compositions = composition.featurize_many(entries, ignore_errors, ignore_errors, pbar=False)  # fast
        blocks = [compositions, structures, *(part.featurize_many(entries, ignore_errors, ignore_errors, pbar) for part in others)]
        if not ignore_errors:
            return [[value for block in row for value in block] for row in zip(*blocks)]
        rows, failed = [], [float("nan")] * self.n_features
        for row in zip(*blocks):
            error = next((block[-1] for block in row if isinstance(block[-1], str)), None)
            values = list(failed) if error else [value for block in row for value in block[:-1]]
            rows.append(values + [float("nan") if error is None else error] if return_errors else values)
        return rows

    def feature_labels(self):
        return [label for part in self._parts() for label in part.feature_labels()]

    def citations(self):
        return list(dict.fromkeys(citation for part in self._parts() for citation in part.citations()))

    @property
    def n_features(self) -> int:
        return int(np.sum([len(part.feature_labels()) for part in self._parts()]))
