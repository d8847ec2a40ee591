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

The length of edge ``(j, i)`` is ``|(f_j + image - f_i) @ lattice|``. The neighbour search itself
is in :mod:`matssl_featurizers.neighbors` (numpy only).
"""

from __future__ import annotations

import numpy as np
import torch

from .neighbors import CUTOFF, MAX_NEIGHBORS, neighbor_arrays

UNDERFLOW = -87.0  # exp(-87) ~ 1.6e-38, just above float32's smallest normal number


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


def collate_arrays(arrays: list[dict]):
    """Batch the arrays of :func:`neighbor_arrays` of several structures into a PyG ``Batch`` by concatenating
    them in numpy: the tensors of ``collate([arrays_to_graph(a) for a in arrays])`` without a ``Data`` per graph."""
    from torch_geometric.data import Batch

    nodes = np.array([len(a["atomic_numbers"]) for a in arrays])
    edges = np.array([a["edge_index"].shape[1] for a in arrays])
    ptr = np.concatenate([[0], np.cumsum(nodes)])
    edge_index = np.concatenate([a["edge_index"] for a in arrays], axis=1) + np.repeat(ptr[:-1], edges)
    return Batch(
        atomic_numbers=torch.from_numpy(np.concatenate([a["atomic_numbers"] for a in arrays])),
        frac_coords=torch.from_numpy(np.concatenate([a["frac_coords"] for a in arrays])).float(),
        lattice=torch.from_numpy(np.stack([a["lattice"] for a in arrays])).float(),
        edge_index=torch.from_numpy(edge_index),
        edge_image=torch.from_numpy(np.concatenate([a["edge_image"] for a in arrays])),
        batch=torch.from_numpy(np.repeat(np.arange(len(arrays)), nodes)),
        ptr=torch.from_numpy(ptr),
        num_nodes=int(ptr[-1]),
    )


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
        exponent = -((distances.unsqueeze(-1) - self.centers) ** 2) / self.width**2
        # exp takes a slow path on CPU (about 10x) where the result is below float32's smallest normal
        # number (~1e-38, exponent < -87); those entries are set to 0 instead
        return torch.where(exponent < UNDERFLOW, 0.0, torch.exp(exponent.clamp(min=UNDERFLOW)))
