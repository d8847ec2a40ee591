"""Readouts: modules that turn the per-site (and per-edge) outputs of an encoder into one vector per structure.

Each readout has an ``out_features`` width and ``labels()``, one label per output column, that say what the
column is. An encoder composes one readout and, optionally, the :class:`PrincipalComponents` of its output.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

POOLS = ("mean", "max", "std")  # the default statistics of the "layers" readouts
KNOWN_POOLS = ("mean", "max", "min", "std")


def mean_pool(h: torch.Tensor, index: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean of the rows of each group: ``[R, F] -> [G, F]`` (zeros for a group without rows)."""
    total = torch.zeros(num_groups, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, index, h)
    count = torch.zeros(num_groups, dtype=h.dtype, device=h.device).index_add_(0, index, torch.ones_like(index, dtype=h.dtype))
    return total / count.clamp(min=1).unsqueeze(1)


def pool_rows(h: torch.Tensor, index: torch.Tensor, num_groups: int, pools=POOLS) -> torch.Tensor:
    r"""Statistics of the rows of each group, concatenated in ``pools`` order: ``[R, F] -> [G, len(pools) F]``.

    ``mean``; ``max``, ``min`` (elementwise); ``std`` :math:`= \sqrt{\mathrm{mean}((h - \bar h)^2) + 10^{-12}}` (0 for one row).
    A group without rows gives zeros.
    """
    mean = mean_pool(h, index, num_groups)
    out = []
    for pool in pools:
        if pool == "mean":
            out.append(mean)
        elif pool in ("max", "min"):
            empty = torch.zeros(num_groups, h.shape[1], dtype=h.dtype, device=h.device)
            out.append(empty.scatter_reduce(0, index.unsqueeze(1).expand_as(h), h, f"a{pool}", include_self=False))
        elif pool == "std":
            out.append((mean_pool((h - mean.index_select(0, index)) ** 2, index, num_groups) + 1e-12).sqrt())
        else:
            raise ValueError(f"unknown pool {pool!r}; known: {', '.join(KNOWN_POOLS)}")
    return torch.cat(out, dim=1)


def check_pools(pools) -> None:
    """Raise ``ValueError`` unless ``pools`` is a non-empty list of :data:`KNOWN_POOLS`."""
    if isinstance(pools, str) or not pools or any(p not in KNOWN_POOLS for p in pools):
        raise ValueError(f"pool must be a non-empty list of {', '.join(KNOWN_POOLS)}; got {pools!r}")


class Part(NamedTuple):
    """One input of :class:`LayerStatistics`: what its columns are called, and which statistics are taken over
    its rows (``None``: it has one row per structure already, e.g. a global state)."""

    name: str
    channels: tuple[str, ...]
    pools: tuple[str, ...] | None


class LayerStatistics(nn.Module):
    r"""The ``"layers"`` readout: for every part (e.g. the sites after each layer), its ``pools`` statistics over the
    rows of each structure, concatenated in order; a part with ``pools=None`` is taken as it is. No weights.

    Shapes: ``forward(values, groups, num_graphs)`` with ``values[i] [R_i, F_i]`` and ``groups[i] [R_i]`` (the
    structure of each row, ``None`` for a per-structure part) -> ``[G, out_features]``.
    """

    def __init__(self, parts: list[Part]):
        super().__init__()
        self.parts = list(parts)
        self.out_features = sum(len(p.channels) * (len(p.pools) if p.pools else 1) for p in self.parts)

    def forward(self, values: list[torch.Tensor], groups: list[torch.Tensor | None], num_graphs: int) -> torch.Tensor:
        out = []
        for part, value, group in zip(self.parts, values, groups):
            out.append(value if part.pools is None else pool_rows(value, group, num_graphs, part.pools))
        return torch.cat(out, dim=1)

    def labels(self) -> list[str]:
        """``"<part> <statistic> <channel>"`` per column, e.g. ``"conv 2 std 17"``, ``"edge expansion mean 2.4 A"``."""
        out = []
        for part in self.parts:
            if part.pools is None:
                out += [f"{part.name} {c}" for c in part.channels]
            else:
                out += [f"{part.name} {pool} {c}" for pool in part.pools for c in part.channels]
        return out


class MeanHead(nn.Module):
    r"""The ``"head"`` readout of CGCNN: the mean over the sites of the last layer, then (``out_features > 0``)
    :math:`\mathrm{softplus}(W \bar h + b)`. Shapes: ``[N, F]`` rows, ``index [N]`` -> ``[G, out_features or F]``."""

    def __init__(self, in_features: int, out_features: int = 0):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features) if out_features else None
        self.out_features = out_features or in_features

    def forward(self, h: torch.Tensor, index: torch.Tensor, num_graphs: int) -> torch.Tensor:
        pooled = mean_pool(h, index, num_graphs)
        return F.softplus(self.linear(pooled)) if self.linear is not None else pooled

    def labels(self) -> list[str]:
        return [f"head {i}" if self.linear is not None else f"last layer mean {i}" for i in range(self.out_features)]


class Set2Set(nn.Module):
    r"""Set2Set readout (Vinyals, Bengio & Kudlur, ICLR 2016), ``steps`` rounds of LSTM + attention:

    .. math::
        q_t = \mathrm{LSTM}(q^*_{t-1}), \quad \alpha_{i,t} = \mathrm{softmax}_i(x_i \cdot q_t), \quad
        r_t = \sum_i \alpha_{i,t} x_i, \quad q^*_t = q_t \Vert r_t

    Shapes: ``x [R, F]``, ``index [R]`` (group of each row) -> ``[G, 2F]``. Same parameters (``lstm.*``) and
    output as PyTorch Geometric's ``Set2Set``, without importing it.
    """

    def __init__(self, in_channels: int, steps: int):
        super().__init__()
        self.in_channels, self.steps = in_channels, steps
        self.lstm = nn.LSTM(2 * in_channels, in_channels)
        self.out_features = 2 * in_channels

    def forward(self, x: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
        state = (x.new_zeros(1, dim_size, self.in_channels), x.new_zeros(1, dim_size, self.in_channels))
        q_star = x.new_zeros(dim_size, 2 * self.in_channels)
        for _ in range(self.steps):
            q, state = self.lstm(q_star.unsqueeze(0), state)
            q = q.view(dim_size, self.in_channels)
            e = (x * q.index_select(0, index)).sum(dim=-1)
            peak = torch.full((dim_size,), float("-inf"), dtype=e.dtype, device=e.device)
            peak = peak.scatter_reduce(0, index, e.detach(), "amax", include_self=False)
            a = (e - peak.index_select(0, index)).exp()
            total = torch.zeros(dim_size, dtype=e.dtype, device=e.device).index_add_(0, index, a)
            a = a / (total.index_select(0, index) + 1e-16)
            r = torch.zeros(dim_size, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, index, a.unsqueeze(1) * x)
            q_star = torch.cat([q, r], dim=-1)
        return q_star

    def labels(self) -> list[str]:
        return [f"{kind} {i}" for kind in ("query", "attention") for i in range(self.in_channels)]


class NodesEdgesState(nn.Module):
    r"""MEGNet's ``"set2set"`` readout (CDSSL's): :class:`Set2Set` over the nodes, over the edges, and the global
    state: ``Set2Set(v) || Set2Set(e) || u``. Shapes: ``v [N, F]``, ``e [E, F]``, ``u [G, F]`` -> ``[G, 5F]``."""

    def __init__(self, width: int, steps: int):
        super().__init__()
        self.nodes = Set2Set(width, steps)
        self.edges = Set2Set(width, steps)
        self.out_features = 5 * width

    def forward(self, v, e, u, node_graph, edge_graph) -> torch.Tensor:
        n_graphs = u.shape[0]
        return torch.cat([self.nodes(v, node_graph, n_graphs), self.edges(e, edge_graph, n_graphs), u], dim=1)

    def labels(self) -> list[str]:
        width = self.nodes.in_channels
        return ([f"nodes set2set {label}" for label in self.nodes.labels()]
                + [f"edges set2set {label}" for label in self.edges.labels()] + [f"state {i}" for i in range(width)])


class PrincipalComponents(nn.Module):
    """The first ``components`` principal components of a standardised structure vector.

    Buffers fitted after pretraining (``pretraining.evaluation.readout_pca``): ``center [D]``, ``scale [D]`` and
    ``basis [D, k]``; ``forward(x [G, D]) = ((x - center) / scale) @ basis``, ``[G, k]``. With ``components`` 0
    it holds nothing and cannot be called.
    """

    def __init__(self, in_features: int, components: int = 0):
        super().__init__()
        if not 0 <= components <= in_features:
            raise ValueError(f"readout_components must be between 0 and the vector length {in_features}, got {components}")
        self.out_features = components
        if components:
            self.register_buffer("center", torch.zeros(in_features))
            self.register_buffer("scale", torch.ones(in_features))
            self.register_buffer("basis", torch.zeros(in_features, components))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.out_features:
            raise ValueError("this encoder has no principal components (readout_components is 0)")
        return ((x - self.center) / self.scale) @ self.basis

    def labels(self) -> list[str]:
        return [f"PC {k + 1}" for k in range(self.out_features)]
