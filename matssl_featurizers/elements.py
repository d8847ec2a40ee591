"""Per-element input vectors of the encoders, as tensors indexed by atomic number."""

from __future__ import annotations

import torch

from .atom_vectors import CGCNN92, load_atom_vectors
from . import bundled

N_ELEMENTS = 118
MASK_TOKEN = 0  # atomic number used for masked atoms


def element_table(name: str) -> torch.Tensor:
    """Per-element input vectors as a ``[119, D]`` tensor; row 0 is the mask token (zeros),
    rows of elements the table lacks are NaN.

    ``"cgcnn92"``: the 92-dim one-hot-style atom features of CGCNN (from matminer's data files).
    ``"crysatom"`` (or another bundled table of :mod:`matssl_featurizers.atom_vectors`): learned
    CrysAtom vectors, fixed inputs as in the CrysAtom paper.
    """
    from pymatgen.core import Element

    if name != CGCNN92 and name not in bundled.bundled_atom_vectors():
        raise ValueError(f"unknown element table {name!r}; known: 'cgcnn92', {', '.join(map(repr, bundled.bundled_atom_vectors()))}")
    table = load_atom_vectors(name)
    out = torch.full((N_ELEMENTS + 1, table.shape[1]), float("nan"))
    out[MASK_TOKEN] = 0.0
    out[[Element(symbol).Z for symbol in table.index]] = torch.tensor(table.to_numpy(), dtype=torch.float32)
    return out


def check_atomic_numbers(atomic_numbers: torch.Tensor) -> None:
    """Raise ``ValueError`` for atomic numbers outside 0 (mask token) .. 118."""
    bad = (atomic_numbers < 0) | (atomic_numbers > N_ELEMENTS)
    if bad.any():
        values = sorted(set(atomic_numbers[bad].tolist()))
        raise ValueError(f"atomic number(s) {', '.join(map(str, values[:5]))} are not chemical elements; "
                         "only elements H to Og have input vectors")
