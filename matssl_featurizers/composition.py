"""Composition featurizers from per-element vectors: CGCNN's input features or learned CrysAtom vectors."""

from __future__ import annotations

import os

import numpy as np

from .atom_vectors import CGCNN92, DEFAULT_ATOM_VECTORS, load_atom_vectors
from .base import InProcessFeaturizer
from .citations import CGCNN_CITATION, CRYSATOM_CITATION

STATS = ("mean", "std_dev", "minimum", "maximum", "range")


def _table_source(name, value) -> None:
    import pandas as pd

    if not isinstance(value, (str, os.PathLike, pd.DataFrame)):
        raise ValueError(f"{name} must be a table name, a CSV path or a DataFrame, got {type(value).__name__}")


def _stats(name, value) -> None:
    if isinstance(value, str) or not value or any(stat not in STATS for stat in value):
        raise ValueError(f"{name} must be a non-empty list of {', '.join(STATS)}, got {value!r}")


def weighted_stats(vectors: np.ndarray, fractions: np.ndarray, stats=STATS) -> np.ndarray:
    """Fraction-weighted statistics of element vectors, each ``[D]``, concatenated in ``stats`` order.

    ``vectors [k, D]`` (one row per element), ``fractions [k]`` (atomic fractions). ``std_dev`` is
    matminer's ``PropertyStats.std_dev`` with weights (reliability weights, 0 for a single element).
    """
    mean = fractions @ vectors
    out = []
    for stat in stats:
        if stat == "mean":
            out.append(mean)
        elif stat == "std_dev":
            total, squares = fractions.sum(), (fractions**2).sum()
            if len(fractions) == 1:
                out.append(np.zeros_like(mean))
            else:
                out.append(np.sqrt(total / (total**2 - squares) * (fractions @ (vectors - mean) ** 2)))
        elif stat == "minimum":
            out.append(vectors.min(axis=0))
        elif stat == "maximum":
            out.append(vectors.max(axis=0))
        elif stat == "range":
            out.append(vectors.max(axis=0) - vectors.min(axis=0))
        else:
            raise ValueError(f"unknown statistic {stat!r}; known: {', '.join(STATS)}")
    return np.concatenate(out)


class AtomVectorFeaturizer(InProcessFeaturizer):
    """Composition features from a table of per-element vectors: fraction-weighted mean, standard
    deviation, minimum, maximum and range of the vectors of the elements present, like matminer's
    ElementProperty. Accepts a pymatgen ``Composition`` or a ``Structure`` (its composition);
    oxidation states are ignored.

    Args:
        vectors: the per-element table: ``"cgcnn92"`` (the 92-dim input features of CGCNN, which the
            CGCNN encoders read; its statistics are what a CGCNN encoder must beat), a bundled table name
            (``"crysatom"``), a CSV file or a directory written by ``python -m pretraining.atom_vectors``, or a
            ``DataFrame`` indexed by element symbol.
        stats: statistics to compute, from ``"mean"``, ``"std_dev"``, ``"minimum"``, ``"maximum"``, ``"range"``.

    An element without a vector raises ``ValueError`` naming it (NaNs with ``ignore_errors=True``).
    The table loads lazily on first use and is not pickled; featurization runs in this process (numpy only).
    """

    _parameter_checks = {"vectors": _table_source, "stats": _stats}

    def __init__(self, vectors: str = CGCNN92, stats: tuple = STATS):
        self.vectors = vectors
        self.stats = stats

    @classmethod
    def from_preset(cls, preset: str = CGCNN92, **kwargs):
        """``"cgcnn92"`` or ``"crysatom"``: that table with the five statistics of matminer's ``matscholar_el`` preset."""
        if preset not in (CGCNN92, DEFAULT_ATOM_VECTORS):
            raise ValueError(f"unknown preset {preset!r}; known: {CGCNN92!r}, {DEFAULT_ATOM_VECTORS!r}")
        return cls(vectors=preset, stats=STATS, **kwargs)

    @property
    def _label(self) -> str:
        names = {DEFAULT_ATOM_VECTORS: "CrysAtom", CGCNN92: "CGCNN92"}
        return names.get(self.vectors, "AtomVectors") if isinstance(self.vectors, str) else "AtomVectors"

    def citations(self):
        return [CGCNN_CITATION] if isinstance(self.vectors, str) and self.vectors == CGCNN92 else [CRYSATOM_CITATION]

    def _table(self):
        """``(table, row of each symbol, matrix)`` of ``vectors``, loaded on first use."""
        def load():
            self._check_params()
            table = load_atom_vectors(self.vectors)
            return table, {symbol: i for i, symbol in enumerate(table.index)}, table.to_numpy()

        key = str(self.vectors) if isinstance(self.vectors, (str, os.PathLike)) else id(self.vectors)
        return self._cached("table", (key, tuple(self.stats)), load)

    def featurize(self, composition):
        """Feature vector (list of floats) of one ``Composition`` or ``Structure``."""
        from pymatgen.core import Composition, IStructure

        if isinstance(composition, IStructure):
            composition = composition.composition
        if not isinstance(composition, Composition):
            hint = " (parse a formula with pymatgen's Composition first)" if isinstance(composition, str) else ""
            raise TypeError(f"expected a pymatgen Composition or Structure, got {type(composition).__name__}{hint}")
        table, rows, matrix = self._table()
        amounts = composition.element_composition.get_el_amt_dict()
        if not amounts or sum(amounts.values()) <= 0:
            raise ValueError("the composition is empty")
        missing = sorted(symbol for symbol in amounts if symbol not in rows)
        if missing:
            raise ValueError(f"no {self._label} vector for element(s) {', '.join(missing)}: "
                             "the vectors were learned from a corpus without them")
        symbols = list(amounts)
        fractions = np.array([amounts[s] for s in symbols], dtype=float)
        return weighted_stats(matrix[[rows[s] for s in symbols]], fractions / fractions.sum(), self.stats).tolist()

    def feature_labels(self):
        table = self._table()[0]
        return [f"{self._label} {stat} dim {column}" for stat in self.stats for column in table.columns]


class CrysAtomFeaturizer(AtomVectorFeaturizer):
    """Composition features from CrysAtom atom vectors: fraction-weighted mean, standard deviation,
    minimum, maximum and range of the vectors of the elements present, like matminer's ElementProperty.

    The vectors are the node embeddings of a CGCNN autoencoder pretrained without labels on crystal
    graphs, averaged per element over every occurrence in the corpus (Mukherjee, Ghosh &
    Basuchowdhuri, LoG 2024). Accepts a pymatgen ``Composition`` or a ``Structure`` (its composition);
    oxidation states are ignored.

    Args:
        vectors: the atom vectors: a bundled table name (``"crysatom"``), a CSV file or a directory
            written by ``python -m pretraining.atom_vectors``.
        stats: statistics to compute, from ``"mean"``, ``"std_dev"``, ``"minimum"``, ``"maximum"``, ``"range"``.

    An element without a vector raises ``ValueError`` naming it (NaNs with ``ignore_errors=True``).
    The table loads lazily on first use and is not pickled; featurization runs in this process.
    """

    def __init__(self, vectors: str = DEFAULT_ATOM_VECTORS, stats: tuple = STATS):
        super().__init__(vectors=vectors, stats=stats)

    @classmethod
    def from_preset(cls, preset: str = "crysatom", **kwargs):
        """``"crysatom"``: the bundled vectors with the five statistics of matminer's ``matscholar_el`` preset."""
        if preset != "crysatom":
            raise ValueError(f"unknown preset {preset!r}; known: 'crysatom'")
        return cls(vectors=DEFAULT_ATOM_VECTORS, stats=STATS, **kwargs)
