"""Augmentations of batched crystal graphs, on tensors (no new neighbour lists).

Each function returns a new ``Batch`` and leaves its input untouched.
"""

from __future__ import annotations

import torch

from matssl_featurizers.encoders import MASK_TOKEN


def _node_graph(batch) -> torch.Tensor:
    node_graph = getattr(batch, "batch", None)
    return torch.zeros_like(batch.atomic_numbers) if node_graph is None else node_graph


def displace(batch, cartesian: torch.Tensor):
    """Move every site by ``cartesian [N, 3]`` Å (converted to fractional shifts per graph's lattice)."""
    out = batch.clone()
    inverse = torch.linalg.inv(batch.lattice)[_node_graph(batch)]  # [N, 3, 3]
    out.frac_coords = batch.frac_coords + torch.bmm(cartesian.unsqueeze(1), inverse).squeeze(1)
    return out


def random_directions(n: int, generator=None, device=None) -> torch.Tensor:
    """``[n, 3]`` unit vectors uniformly distributed on the sphere."""
    v = torch.randn(n, 3, generator=generator, device=device)
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)


def perturb(batch, distance: float = 0.05, generator=None):
    """Move every site by exactly ``distance`` Å in a random direction (Crystal Twins' random perturbation)."""
    n = batch.frac_coords.shape[0]
    return displace(batch, distance * random_directions(n, generator, batch.frac_coords.device))


def mask_atoms(batch, ratio: float = 0.1, generator=None):
    """Replace the element of each site by the mask token with probability ``ratio``."""
    out = batch.clone()
    hit = torch.rand(batch.atomic_numbers.shape[0], generator=generator, device=batch.atomic_numbers.device) < ratio
    out.atomic_numbers = batch.atomic_numbers.masked_fill(hit, MASK_TOKEN)
    return out


def mask_edges(batch, ratio: float = 0.1, generator=None):
    """Zero the features of each edge with probability ``ratio`` (sets ``edge_keep``)."""
    out = batch.clone()
    keep = torch.rand(batch.edge_index.shape[1], generator=generator, device=batch.edge_index.device) >= ratio
    previous = getattr(batch, "edge_keep", None)
    out.edge_keep = keep.float() if previous is None else previous * keep.float()
    return out
