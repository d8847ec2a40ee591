"""Crystal graphs: pymatgen ``Structure`` -> PyG ``Data``, as in CGCNN.

Nodes are the sites of the unit cell; each site is joined to its nearest
neighbours (at most ``max_neighbors``) within ``cutoff`` Å under periodic
boundary conditions (Xie & Grossman, PRL 120, 145301, 2018).

A graph keeps what is needed to recompute every edge length in torch from
perturbed positions or a strained lattice without a new neighbour list:

* ``atomic_numbers`` ``[N]`` (long)
* ``frac_coords`` ``[N, 3]`` fractional coordinates
* ``lattice`` ``[1, 3, 3]`` lattice vectors as rows (Å)
* ``edge_index`` ``[2, E]``: row 0 the neighbour ``j`` (message source), row 1
  the centre site ``i`` (message target), following PyG's convention
* ``edge_image`` ``[E, 3]`` integer image offset of ``j`` relative to ``i``

The length of edge ``(j, i)`` is ``|(f_j + image - f_i) @ lattice|``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

CUTOFF = 8.0
MAX_NEIGHBORS = 12


def check_structure(structure) -> None:
    """Raise a ``TypeError``/``ValueError`` saying why ``structure`` cannot become a graph."""
    from pymatgen.core import IStructure

    if not isinstance(structure, IStructure):
        raise TypeError(
            f"expected a pymatgen Structure, got {type(structure).__name__}"
            + (" (a Molecule has no lattice; put it in a box first)" if type(structure).__name__ == "Molecule" else "")
        )
    if len(structure) == 0:
        raise ValueError("the structure has no sites")
    if not structure.is_ordered:
        raise ValueError(
            "the structure is disordered (partial occupancies); crystal graphs need one element per site. "
            "Order it first, e.g. with pymatgen's OrderDisorderedStructureTransformation"
        )
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not math.isfinite(structure.volume) or structure.volume < 1e-6:
        raise ValueError(f"the lattice is degenerate (volume {structure.volume!r} Å^3)")
    if not np.all(np.isfinite(structure.frac_coords)):
        raise ValueError("the structure has non-finite site coordinates")


def neighbor_arrays(structure, cutoff: float = CUTOFF, max_neighbors: int = MAX_NEIGHBORS) -> dict:
    """Numpy arrays of the crystal graph of ``structure`` (see module docstring)."""
    check_structure(structure)
    centers, neighbors, images, distances = structure.get_neighbor_list(r=cutoff)
    # Keep the ``max_neighbors`` nearest per centre: sort by centre, then distance.
    order = np.lexsort((distances, centers))
    centers, neighbors, images, distances = centers[order], neighbors[order], images[order], distances[order]
    starts = np.searchsorted(centers, centers, side="left")
    keep = (np.arange(len(centers)) - starts) < max_neighbors
    return {
        "atomic_numbers": np.array([site.specie.Z for site in structure], dtype=np.int64),
        "frac_coords": np.asarray(structure.frac_coords, dtype=np.float64),
        "lattice": np.array(structure.lattice.matrix, dtype=np.float64),
        "edge_index": np.stack([neighbors[keep], centers[keep]]).astype(np.int64),
        "edge_image": np.rint(images[keep]).astype(np.int64),
        "distances": distances[keep],
    }


def arrays_to_graph(arrays: dict):
    """Wrap the arrays of :func:`neighbor_arrays` as a PyG ``Data`` (float32 geometry)."""
    from torch_geometric.data import Data

    return Data(
        atomic_numbers=torch.from_numpy(arrays["atomic_numbers"]),
        frac_coords=torch.from_numpy(arrays["frac_coords"]).float(),
        lattice=torch.from_numpy(arrays["lattice"]).float().reshape(1, 3, 3),
        edge_index=torch.from_numpy(arrays["edge_index"]),
        edge_image=torch.from_numpy(arrays["edge_image"]),
        num_nodes=len(arrays["atomic_numbers"]),
    )


def structure_to_graph(structure, cutoff: float = CUTOFF, max_neighbors: int = MAX_NEIGHBORS):
    """The CGCNN crystal graph of a pymatgen ``Structure`` as a PyG ``Data``."""
    return arrays_to_graph(neighbor_arrays(structure, cutoff, max_neighbors))


def collate(graphs):
    """Batch a list of graphs into a PyG ``Batch``."""
    from torch_geometric.data import Batch

    return Batch.from_data_list(graphs)


def node_graph_index(batch) -> torch.Tensor:
    """The graph each node belongs to, ``[N]``: ``batch.batch``, or zeros for a single graph."""
    index = getattr(batch, "batch", None)
    return torch.zeros_like(batch.atomic_numbers) if index is None else index


def edge_vectors(batch) -> torch.Tensor:
    """Cartesian vectors ``r_j + image·L - r_i`` of every edge, ``[E, 3]``, recomputed in torch.

    Works on a single graph or a ``Batch``; gradients flow to ``frac_coords`` and ``lattice``.
    """
    src, dst = batch.edge_index
    lattice = batch.lattice.index_select(0, node_graph_index(batch).index_select(0, dst))  # [E, 3, 3]
    frac = (batch.frac_coords.index_select(0, src) + batch.edge_image.to(batch.frac_coords.dtype)
            - batch.frac_coords.index_select(0, dst))
    return torch.bmm(frac.unsqueeze(1), lattice).squeeze(1)


def edge_lengths(batch) -> torch.Tensor:
    """Length of every edge in Å, ``[E]``."""
    return edge_vectors(batch).norm(dim=-1)


class GaussianDistance(torch.nn.Module):
    r"""Expand distances in Gaussians (CGCNN):

    .. math:: e_k(d) = \exp\left(-(d - \mu_k)^2 / \sigma^2\right), \quad \mu_k = d_{min} + k\,\Delta

    Shapes: ``[E] -> [E, K]`` with ``K = round((dmax - dmin) / step) + 1`` (41 for the defaults).
    """

    def __init__(self, dmin: float = 0.0, dmax: float = CUTOFF, step: float = 0.2, width: float | None = None):
        super().__init__()
        n = int(round((dmax - dmin) / step)) + 1
        self.register_buffer("centers", torch.linspace(dmin, dmax, n), persistent=False)
        self.width = step if width is None else width

    @property
    def num_features(self) -> int:
        return self.centers.numel()

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((distances.unsqueeze(-1) - self.centers) ** 2) / self.width**2)
