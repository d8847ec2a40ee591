"""Crystal graphs: pymatgen ``Structure`` -> tensors, as in CGCNN.

Nodes are the sites of the unit cell; each site is joined to its nearest
neighbours (at most ``max_neighbors``) within ``cutoff`` Å under periodic
boundary conditions (Xie & Grossman, PRL 120, 145301, 2018).

A graph keeps what is needed to recompute every edge length in torch from
perturbed positions or a strained lattice without a new neighbour list:

* ``atomic_numbers`` ``[N]`` (long)
* ``frac_coords`` ``[N, 3]`` fractional coordinates
* ``lattice`` ``[G, 3, 3]`` lattice vectors as rows (Å), one per graph
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


class GraphBatch:
    """Crystal graphs concatenated into one set of tensors (a plain container; no PyTorch Geometric).

    Attributes: the graph tensors listed in the module docstring, plus
    ``batch [N]`` (graph of each node) and ``ptr [G + 1]`` (node offsets); augmentations may add
    ``edge_keep [E]``. :meth:`clone` is shallow: augmentations replace tensors, never edit them.
    """

    def __init__(self, **tensors):
        self.__dict__.update(tensors)

    @property
    def num_graphs(self) -> int:
        return self.ptr.shape[0] - 1

    @property
    def num_nodes(self) -> int:
        return self.atomic_numbers.shape[0]

    def clone(self) -> "GraphBatch":
        return GraphBatch(**self.__dict__)

    def to(self, device) -> "GraphBatch":
        return GraphBatch(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})

    def graph_arrays(self, i: int) -> dict:
        """Numpy arrays (:func:`~matssl_featurizers.neighbors.neighbor_arrays` layout) of graph ``i``."""
        n0, n1 = int(self.ptr[i]), int(self.ptr[i + 1])
        edges = (self.batch.index_select(0, self.edge_index[1]) == i).nonzero().squeeze(1)
        return {
            "atomic_numbers": self.atomic_numbers[n0:n1].cpu().numpy(),
            "frac_coords": self.frac_coords[n0:n1].cpu().numpy(),
            "lattice": self.lattice[i].cpu().numpy(),
            "edge_index": (self.edge_index[:, edges] - n0).cpu().numpy(),
            "edge_image": self.edge_image[edges].cpu().numpy(),
        }


def collate_arrays(arrays: list[dict]) -> GraphBatch:
    """Batch the arrays of :func:`neighbor_arrays` of several structures into one :class:`GraphBatch` by
    concatenating them in numpy (float32 geometry, int64 indices)."""
    nodes = np.array([len(a["atomic_numbers"]) for a in arrays])
    edges = np.array([a["edge_index"].shape[1] for a in arrays])
    ptr = np.concatenate([[0], np.cumsum(nodes)])
    edge_index = np.concatenate([a["edge_index"] for a in arrays], axis=1).astype(np.int64) + np.repeat(ptr[:-1], edges)
    return GraphBatch(
        atomic_numbers=torch.from_numpy(np.concatenate([a["atomic_numbers"] for a in arrays]).astype(np.int64)),
        frac_coords=torch.from_numpy(np.concatenate([a["frac_coords"] for a in arrays]).astype(np.float32)),
        lattice=torch.from_numpy(np.stack([np.asarray(a["lattice"]).reshape(3, 3) for a in arrays]).astype(np.float32)),
        edge_index=torch.from_numpy(edge_index),
        edge_image=torch.from_numpy(np.concatenate([a["edge_image"] for a in arrays]).astype(np.int64)),
        batch=torch.from_numpy(np.repeat(np.arange(len(arrays)), nodes)),
        ptr=torch.from_numpy(ptr),
    )


def structure_to_graph(structure, cutoff: float = CUTOFF, max_neighbors: int = MAX_NEIGHBORS) -> GraphBatch:
    """The CGCNN crystal graph of a pymatgen ``Structure``, as a :class:`GraphBatch` of one graph."""
    return collate_arrays([neighbor_arrays(structure, cutoff, max_neighbors)])


def collate(graphs: list[GraphBatch]) -> GraphBatch:
    """Batch several :class:`GraphBatch` (e.g. of :func:`structure_to_graph`) into one."""
    return collate_arrays([g.graph_arrays(i) for g in graphs for i in range(g.num_graphs)])


def edge_vectors(batch) -> torch.Tensor:
    """Cartesian vectors ``r_j + image·L - r_i`` of every edge, ``[E, 3]``, recomputed in torch.

    Gradients flow to ``frac_coords`` and ``lattice``.
    """
    src, dst = batch.edge_index
    lattice = batch.lattice.index_select(0, batch.batch.index_select(0, dst))  # [E, 3, 3]
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
