"""A composition block and a small structure block (optionally shell anisotropy and magpie) in one featurizer."""

from __future__ import annotations

import numpy as np

from .atom_vectors import CGCNN92
from .base import InProcessFeaturizer
from .featurizers import SSLStructureFeaturizer
from .params import boolean, integer, path_or_name
from .sources import DEFAULT_MODEL

PRESETS = {
    # name: (model, composition table, principal components of the structure vector, shell anisotropy, magpie)
    "hybrid": (DEFAULT_MODEL, CGCNN92, 32, False, False),
    "hybrid-anisotropy": (DEFAULT_MODEL, CGCNN92, 32, True, False),
    # the README's best recipe, preset:hybrid-anisotropy + ElementProperty, as one featurizer (same columns in order)
    "hybrid-anisotropy-magpie": (DEFAULT_MODEL, CGCNN92, 32, True, True),
}


def magpie_block():
    """matminer's ElementProperty magpie preset on each structure's composition (``StructureComposition``)."""
    from matminer.featurizers.composition import ElementProperty
    from matminer.featurizers.structure import StructureComposition

    block = StructureComposition(ElementProperty.from_preset("magpie", impute_nan=True))
    block.set_n_jobs(1)  # matminer's fork pool hangs in a process where torch has run
    return block


class HybridStructureFeaturizer(InProcessFeaturizer):
    """Composition statistics of a per-element table next to the first principal components of a pretrained
    structure vector, optionally followed by shell anisotropy and matminer's magpie statistics.

    The composition block is :class:`~matssl_featurizers.composition.AtomVectorFeaturizer` of ``composition``
    (CGCNN's 92 input features by default: what the CGCNN encoders read); the structure block is
    :class:`~matssl_featurizers.featurizers.SSLStructureFeaturizer` with ``n_components`` principal
    components (fitted on the pretraining corpus and stored with the weights). Few structure columns keep a
    random forest from spending most of its splits on them. With ``anisotropy`` the parameter-free
    :class:`~matssl_featurizers.anisotropy.ShellAnisotropy` block follows: how far each site's neighbours
    are from cubic symmetry, which distances, and so the encoders, cannot see. With ``magpie``, matminer's own
    ``ElementProperty.from_preset("magpie")`` on the structure's composition (through ``StructureComposition``).

    Args:
        model, weights, batch_size, device, n_workers, label_prefix: as ``SSLStructureFeaturizer``.
        composition: the element table of the composition block: ``"cgcnn92"``, ``"crysatom"`` or a CSV file.
        n_components: principal components in the structure block.
        anisotropy: append the :class:`~matssl_featurizers.anisotropy.ShellAnisotropy` block (default settings).
        magpie: append matminer's magpie composition statistics.
        n_threads: torch threads of every block that runs torch (the structure and anisotropy blocks).

    ``from_preset`` names the combinations measured in docs/results.md. A structure that cannot be featurized
    raises naming its row, or gives a row of NaN with ``ignore_errors=True``.
    """

    _parameter_checks = {**SSLStructureFeaturizer._parameter_checks, "composition": path_or_name,
                         "n_components": integer(1), "anisotropy": boolean, "magpie": boolean}

    def __init__(self, model: str = DEFAULT_MODEL, weights=None, composition: str = CGCNN92, n_components: int = 32,
                 anisotropy: bool = False, magpie: bool = False, batch_size: int = 64, device: str = "cpu",
                 n_workers: int = 0, n_threads: int | None = 1, label_prefix: str | None = None):
        self.model = model
        self.weights = weights
        self.composition = composition
        self.n_components = n_components
        self.anisotropy = anisotropy
        self.magpie = magpie
        self.batch_size = batch_size
        self.device = device
        self.n_workers = n_workers
        self.n_threads = n_threads
        self.label_prefix = label_prefix

    @classmethod
    def from_preset(cls, preset: str = "hybrid", **kwargs):
        """A named combination of model, composition table, structure components, anisotropy and magpie blocks
        (see :data:`PRESETS`)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        model, composition, n_components, anisotropy, magpie = PRESETS[preset]
        return cls(model=model, composition=composition, n_components=n_components, anisotropy=anisotropy,
                   magpie=magpie, **kwargs)

    def _parts(self) -> tuple:
        """The blocks (composition, structure, then anisotropy and magpie where asked for), built on first use and
        after a parameter changed; the structure block's model is loaded and its fingerprint kept as this
        featurizer's ``weights_sha256_`` and ``weights_source_`` (pickled, so that an unpickled featurizer refuses other weights)."""
        params = self.get_params()
        parts = self._cached("parts", tuple(sorted(params.items(), key=lambda item: item[0])), self._build_parts)
        self.weights_sha256_, self.weights_source_ = parts[1].weights_sha256_, parts[1].weights_source_
        return parts

    def _build_parts(self) -> tuple:
        from .composition import AtomVectorFeaturizer

        self._check_params()
        structure = SSLStructureFeaturizer(model=self.model, weights=self.weights, batch_size=self.batch_size,
                                           device=self.device, n_workers=self.n_workers, n_threads=self.n_threads,
                                           n_components=self.n_components, label_prefix=self.label_prefix)
        for pin in ("weights_sha256_", "weights_source_"):
            if pin in self.__dict__:
                setattr(structure, pin, self.__dict__[pin])
        structure.encoder()
        parts = (AtomVectorFeaturizer(vectors=self.composition), structure)
        if self.anisotropy:
            from .anisotropy import ShellAnisotropy

            parts += (ShellAnisotropy(batch_size=self.batch_size, n_threads=self.n_threads),)
        if self.magpie:
            parts += (magpie_block(),)
        return parts

    def featurize(self, structure):
        """Feature vector (list of floats) of one pymatgen ``Structure``."""
        return [value for part in self._parts() for value in part.featurize(structure)]

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """As ``BaseFeaturizer.featurize_many``: each block over all entries (the structure blocks in batches). A row
        that any block fails on is NaN in every column, as a failed entry of one featurizer is in matminer;
        with ``return_errors`` the last column holds the first block's error."""
        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        composition, structure_block, *others = self._parts()
        structures = structure_block.featurize_many(entries, ignore_errors, ignore_errors, pbar)
        compositions = composition.featurize_many(entries, ignore_errors, ignore_errors, pbar=False)  # fast
        blocks = [compositions, structures, *(part.featurize_many(entries, ignore_errors, ignore_errors, pbar=False)
                                              for part in others)]
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
