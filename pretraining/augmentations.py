"""Augmentations of batched crystal graphs, on tensors (no new neighbour lists).

Each function returns a new :class:`~matssl_featurizers.graphs.GraphBatch` and leaves its input untouched.
"""

from __future__ import annotations

import numpy as np
import torch

from matssl_featurizers.elements import MASK_TOKEN
from matssl_featurizers.graphs import collate_arrays, edge_lengths


def displace(batch, cartesian: torch.Tensor):
    """Move every site by ``cartesian [N, 3]`` Å (converted to fractional shifts per graph's lattice)."""
    out = batch.clone()
    inverse = torch.linalg.inv(batch.lattice)[batch.batch]  # [N, 3, 3]
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


# -- CrystalCLR (Koker et al. 2022) ---------------------------------------------------------------

PERIODIC_TABLE_COLUMNS = {
    "1": (3, 11, 19, 37, 55, 87),
    "2": (4, 12, 20, 38, 56, 88),
    "3": (21, 39),
    "4": (22, 40, 72),
    "5": (23, 41, 73),
    "6": (24, 42, 74),
    "7": (25, 43, 75),
    "8": (26, 44, 76),
    "9": (27, 45, 77),
    "10": (28, 46, 78),
    "11": (29, 47, 79),
    "12": (30, 48, 80),
    "13": (5, 13, 31, 49, 81),
    "14": (6, 14, 32, 50, 82),
    "15": (7, 15, 33, 51, 83),
    "16": (8, 16, 34, 52, 84),
    "17": (9, 17, 35, 53, 85),
    "18": (2, 10, 18, 36, 54, 86),
    "lanthanides": tuple(range(57, 72)),
    "actinides": tuple(range(89, 101)),
}
"""Elements a column replace may swap between: the periodic-table columns, restricted to Z <= 100 (the
elements of CGCNN's input table). Hydrogen has no partner; the f-block elements, which have no column,
swap within the lanthanides (La-Lu) or the actinides (Ac-Fm)."""


def column_partners(known: torch.Tensor | None = None) -> torch.Tensor:
    """``[119, M]`` table: row ``Z`` lists the other elements of Z's column (padded with -1)."""
    width = max(len(c) for c in PERIODIC_TABLE_COLUMNS.values()) - 1
    table = torch.full((119, width), -1, dtype=torch.long)
    for column in PERIODIC_TABLE_COLUMNS.values():
        allowed = [z for z in column if known is None or bool(known[z])]
        for z in allowed:
            partners = [p for p in allowed if p != z]
            table[z, : len(partners)] = torch.tensor(partners, dtype=torch.long)
    return table


def min_pair_distances(batch) -> torch.Tensor:
    """Shortest interatomic distance of each graph, periodic images included, ``[G]`` (Å).

    The nearest neighbour of every site is among its edges, so the shortest edge is the shortest distance.
    """
    lengths = edge_lengths(batch)
    edge_graph = batch.batch.index_select(0, batch.edge_index[1])
    n_graphs = batch.ptr.shape[0] - 1
    out = torch.full((n_graphs,), float("inf"), dtype=lengths.dtype, device=lengths.device)
    return out.scatter_reduce(0, edge_graph, lengths, reduce="amin")


def perturb_uniform(batch, fraction: float = 0.5, apply=None, generator=None):
    """Move each site by U(0, ``fraction`` x its structure's shortest distance) Å in a random direction.

    ``apply [G]`` (bool) selects the structures that are perturbed (default: all).
    """
    node_graph = batch.batch
    device = batch.frac_coords.device
    limit = (fraction * min_pair_distances(batch)).nan_to_num(posinf=0.0)
    if apply is not None:
        limit = limit * apply.to(limit.dtype)
    n = batch.frac_coords.shape[0]
    distance = torch.rand(n, generator=generator, device=device) * limit.index_select(0, node_graph)
    return displace(batch, distance.unsqueeze(1) * random_directions(n, generator, device))


def strain(batch, max_strain: float = 0.05, apply=None, generator=None):
    """Anisotropic tensile strain: each lattice vector of each structure is scaled by 1 + U(0, ``max_strain``).

    Fractional coordinates are kept, so every site follows its lattice.
    """
    n_graphs = batch.lattice.shape[0]
    scale = 1 + max_strain * torch.rand(n_graphs, 3, generator=generator, device=batch.lattice.device)
    if apply is not None:
        scale = torch.where(apply.unsqueeze(1), scale, torch.ones_like(scale))
    out = batch.clone()
    out.lattice = batch.lattice * scale.unsqueeze(2)
    return out


def column_replace(batch, partners: torch.Tensor, apply=None, generator=None):
    """Replace the element of one random site per structure by another element of its periodic-table column.

    ``partners`` is the table of :func:`column_partners`; a site whose element has no partner is kept.
    """
    ptr = batch.ptr
    device = batch.atomic_numbers.device
    sizes = ptr[1:] - ptr[:-1]
    n_graphs = sizes.shape[0]
    site = ptr[:-1] + (torch.rand(n_graphs, generator=generator, device=device) * sizes).long().clamp(max=sizes - 1)
    options = partners.to(device)[batch.atomic_numbers.index_select(0, site)]  # [G, M]
    n_options = (options >= 0).sum(1)
    pick = (torch.rand(n_graphs, generator=generator, device=device) * n_options).long()
    pick = torch.minimum(pick, (n_options - 1).clamp(min=0))  # rand() * n can round up to n in float32
    new = options.gather(1, pick.unsqueeze(1)).squeeze(1)
    ok = n_options > 0
    if apply is not None:
        ok = ok & apply
    out = batch.clone()
    out.atomic_numbers = batch.atomic_numbers.clone()
    out.atomic_numbers[site[ok]] = new[ok]
    return out


def supercell(batch, factor: int = 3):
    """The ``factor`` x ``factor`` x ``factor`` supercell of every structure, built from the existing edges.

    Site ``i`` of cell ``c`` keeps the neighbours it had: neighbour ``j`` seen through image ``t`` sits in
    cell ``(c + t) mod factor`` of the supercell, seen through image ``floor((c + t) / factor)``.
    """
    cells = torch.cartesian_prod(*[torch.arange(factor)] * 3).numpy()  # [C, 3]
    n_cells = cells.shape[0]
    graphs = []
    for g in range(batch.num_graphs):
        data = batch.graph_arrays(g)
        n = data["atomic_numbers"].shape[0]
        src, dst = data["edge_index"]
        shifted = cells[:, None, :] + data["edge_image"][None, :, :]  # [C, E, 3]: j's cell, seen from cell c of i
        src_cell = np.mod(shifted, factor)
        src_cell_index = (src_cell[..., 0] * factor + src_cell[..., 1]) * factor + src_cell[..., 2]
        cell_index = np.arange(n_cells)[:, None]
        graphs.append({
            "atomic_numbers": np.tile(data["atomic_numbers"], n_cells),
            "frac_coords": ((data["frac_coords"][None] + cells[:, None, :]) / factor).reshape(-1, 3),
            "lattice": data["lattice"] * factor,
            "edge_index": np.stack([(src_cell_index * n + src).reshape(-1), (cell_index * n + dst).reshape(-1)]),
            "edge_image": np.floor_divide(shifted, factor).reshape(-1, 3),
        })
    return collate_arrays(graphs).to(batch.frac_coords.device)
