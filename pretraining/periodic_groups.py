"""Do element vectors know the periodic table? The share of main-group elements whose nearest neighbour
(raw cosine similarity, no centring or scaling) is an element of the same group (the command that prints it for
several tables is ``python -m pretraining.evaluation.periodic_groups``).

Main-group elements: groups 1, 2 and 13-18 (hydrogen counts as group 1), those the table has a vector
for; the neighbour is searched among every element of the table. A table is a name or a path that
:func:`matssl_featurizers.atom_vectors.load_atom_vectors` reads, or ``matscholar`` (the mat2vec vectors in
matminer's data files).
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd

MAIN_GROUPS = (1, 2, 13, 14, 15, 16, 17, 18)


def load_table(name: str) -> pd.DataFrame:
    """A per-element table indexed by symbol."""
    from pymatgen.core import Element

    from matssl_featurizers.atom_vectors import load_atom_vectors

    if name == "matscholar":
        rows = json.loads((resources.files("matminer.utils.data_files") / "matscholar_els.json").read_text())
        return pd.DataFrame.from_dict({s: v for s, v in rows.items() if Element.is_valid_symbol(s)}, orient="index")
    return load_atom_vectors(name)


def is_main_group(symbol: str) -> bool:
    from pymatgen.core import Element

    element = Element(symbol)
    return element.group in MAIN_GROUPS and not (element.is_lanthanoid or element.is_actinoid)


def nearest_neighbours(table: pd.DataFrame) -> dict[str, str]:
    """Each main-group element of ``table`` -> the other element with the highest cosine similarity."""
    vectors = table.to_numpy(float)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    symbols = list(table.index)
    return {s: symbols[int(np.argmax(similarity[i]))] for i, s in enumerate(symbols) if is_main_group(s)}


def same_group_share(table: pd.DataFrame) -> tuple[float, int]:
    """The share of main-group elements whose nearest neighbour is in their group, and how many were counted."""
    from pymatgen.core import Element

    pairs = nearest_neighbours(table)
    hits = sum(Element(a).group == Element(b).group for a, b in pairs.items())
    return hits / len(pairs), len(pairs)
