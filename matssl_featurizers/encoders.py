"""Graph encoders that turn a batch of crystal graphs into one vector per structure.

Every constructor argument is a plain JSON value, so a saved ``config.json`` *is*
the architecture (see :mod:`matssl_featurizers.weights`). The same classes serve
pretraining and featurization.
"""

from __future__ import annotations

import json
from importlib import resources

import torch
from torch import nn
from torch.nn import functional as F

from .graphs import CUTOFF, GaussianDistance, edge_lengths, node_graph_index

N_ELEMENTS = 118
MASK_TOKEN = 0  # atomic number used for masked atoms


def element_table(name: str) -> torch.Tensor:
    """Per-element input vectors as a ``[119, D]`` tensor; row 0 is the mask token (zeros),
    rows of elements the table lacks are NaN.

    ``"cgcnn92"``: the 92-dim one-hot-style atom features of CGCNN (from matminer's data files).
    ``"crysatom"`` (or another bundled table of :mod:`matssl_featurizers.atom_vectors`): learned
    CrysAtom vectors, fixed inputs as in the CrysAtom paper.
    """
    from .atom_vectors import bundled_atom_vectors, load_atom_vectors

    if name == "cgcnn92":
        path = resources.files("matminer.utils.data_files") / "cgcnn_atom_feature.json"
        table = {int(z): v for z, v in json.loads(path.read_text()).items()}
    elif name in bundled_atom_vectors():
        from pymatgen.core import Element

        table = {Element(symbol).Z: row.tolist() for symbol, row in load_atom_vectors(name).iterrows()}
    else:
        raise ValueError(f"unknown element table {name!r}; known: 'cgcnn92', {', '.join(map(repr, bundled_atom_vectors()))}")
    dim = len(next(iter(table.values())))
    out = torch.full((N_ELEMENTS + 1, dim), float("nan"))
    out[MASK_TOKEN] = 0.0
    for z, vec in table.items():
        out[z] = torch.tensor(vec, dtype=torch.float32)
    return out


def check_atomic_numbers(atomic_numbers: torch.Tensor) -> None:
    """Raise ``ValueError`` for atomic numbers outside 0 (mask token) .. 118, e.g. of a pymatgen ``DummySpecies``."""
    bad = (atomic_numbers < 0) | (atomic_numbers > N_ELEMENTS)
    if bad.any():
        values = sorted(set(atomic_numbers[bad].tolist()))
        raise ValueError(
            f"atomic number(s) {', '.join(map(str, values[:5]))} are not chemical elements (a pymatgen DummySpecies?); "
            "only elements H to Og have input vectors"
        )


class CGCNNConv(nn.Module):
    r"""The convolution of CGCNN (Xie & Grossman 2018, eq. 5):

    .. math::
        z_{ij} = \mathrm{BN}_1\left(W [h_i \Vert h_j \Vert e_{ij}] + b\right) = [z^f_{ij} \Vert z^s_{ij}]

        h_i' = \mathrm{softplus}\left(h_i + \mathrm{BN}_2\Big(\sum_{j \in N(i)}
               \sigma(z^f_{ij}) \odot \mathrm{softplus}(z^s_{ij})\Big)\right)

    One fused linear gives filter and core; messages are summed over neighbours.
    Shapes: ``h [N, F]``, ``edge_attr [E, K]``, ``edge_index [2, E]`` (source ``j``, target ``i``) -> ``[N, F]``.
    This is not PyG's ``CGConv`` (no batch norm, two linears).
    """

    def __init__(self, atom_fea_len: int, edge_fea_len: int):
        super().__init__()
        self.gate = nn.Linear(2 * atom_fea_len + edge_fea_len, 2 * atom_fea_len)
        self.bn_edge = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn_node = nn.BatchNorm1d(atom_fea_len)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        # W [h_i || h_j || e_ij] computed as W_i h_i + W_j h_j + W_e e_ij: the node terms are
        # multiplied once per node instead of once per edge (same parameters, ~3x fewer FLOPs).
        w_i, w_j, w_e = self.gate.weight.split([h.shape[1], h.shape[1], edge_attr.shape[1]], dim=1)
        # index_select rather than h[idx]: its backward is index_add_, much faster on CPU than index_put_
        z = (h @ w_i.T).index_select(0, dst) + (h @ w_j.T).index_select(0, src) + F.linear(edge_attr, w_e, self.gate.bias)
        z = self.bn_edge(z)
        filt, core = z.chunk(2, dim=-1)
        messages = torch.sigmoid(filt) * F.softplus(core)
        summed = torch.zeros_like(h).index_add_(0, dst, messages)
        return F.softplus(h + self.bn_node(summed))


def mean_pool(h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Mean of node rows per graph: ``[N, F] -> [G, F]``."""
    total = torch.zeros(num_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, batch, h)
    count = torch.zeros(num_graphs, dtype=h.dtype, device=h.device).index_add_(0, batch, torch.ones_like(batch, dtype=h.dtype))
    return total / count.clamp(min=1).unsqueeze(1)


class CGCNNEncoder(nn.Module):
    """CGCNN structure encoder: element inputs -> ``n_conv`` :class:`CGCNNConv` -> mean pool -> linear+softplus.

    Args:
        atom_input: ``"embedding"`` (a learned vector per element) or the name of a fixed
            per-element table (``"cgcnn92"``, ``"crysatom"``: see :func:`element_table`), mapped to
            ``atom_fea_len`` by a linear layer.
        atom_fea_len: node feature width ``F``.
        n_conv: number of convolutions.
        out_dim: width of the structure vector (CGCNN's ``h_fea_len``); 0 returns the pooled ``F``.
        cutoff, gaussian_step: edge features, Gaussians from 0 to ``cutoff`` every ``gaussian_step`` Å.

    Input: a PyG ``Batch`` from :mod:`matssl_featurizers.graphs` (optionally with ``edge_keep [E]``,
    a 0/1 mask on edge features). Output: ``[G, out_dim]``.

    References: Xie & Grossman, PRL 120, 145301 (2018).
    """

    def __init__(
        self,
        atom_input: str = "embedding",
        atom_fea_len: int = 64,
        n_conv: int = 3,
        out_dim: int = 128,
        cutoff: float = CUTOFF,
        gaussian_step: float = 0.2,
    ):
        super().__init__()
        self.config = {
            "architecture": "cgcnn",
            "atom_input": atom_input,
            "atom_fea_len": atom_fea_len,
            "n_conv": n_conv,
            "out_dim": out_dim,
            "cutoff": cutoff,
            "gaussian_step": gaussian_step,
        }
        self.atom_input = atom_input
        if atom_input == "embedding":
            self.embedding = nn.Embedding(N_ELEMENTS + 1, atom_fea_len)
        else:
            self.register_buffer("element_table", element_table(atom_input))
            self.embedding = nn.Linear(self.element_table.shape[1], atom_fea_len)
        self.distance = GaussianDistance(0.0, cutoff, gaussian_step)
        self.convs = nn.ModuleList(CGCNNConv(atom_fea_len, self.distance.num_features) for _ in range(n_conv))
        self.head = nn.Linear(atom_fea_len, out_dim) if out_dim else None
        self.out_dim = self.vector_length(self.config)

    @staticmethod
    def vector_length(config: dict) -> int:
        """Length of the structure vector of the encoder ``config`` describes."""
        return config.get("out_dim") or config["atom_fea_len"]

    def embed_atoms(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Input node features ``[N, F]``; raises ``ValueError`` for elements without an input vector."""
        check_atomic_numbers(atomic_numbers)
        if self.atom_input == "embedding":
            return self.embedding(atomic_numbers)
        vectors = self.element_table[atomic_numbers]
        missing = torch.isnan(vectors).any(dim=1)
        if missing.any():
            from pymatgen.core import Element

            symbols = sorted({Element.from_Z(int(z)).symbol for z in atomic_numbers[missing].unique()})
            raise ValueError(f"no {self.atom_input} input vector for element(s) {', '.join(symbols)}")
        return self.embedding(vectors)

    def node_embeddings(self, batch) -> torch.Tensor:
        """Node features after the convolutions, ``[N, F]``."""
        edge_attr = self.distance(edge_lengths(batch))
        edge_keep = getattr(batch, "edge_keep", None)
        if edge_keep is not None:
            edge_attr = edge_attr * edge_keep.unsqueeze(-1).to(edge_attr.dtype)
        h = self.embed_atoms(batch.atomic_numbers)
        for conv in self.convs:
            h = conv(h, batch.edge_index, edge_attr)
        return h

    def forward(self, batch) -> torch.Tensor:
        h = self.node_embeddings(batch)
        pooled = mean_pool(h, node_graph_index(batch), getattr(batch, "num_graphs", 1))
        return F.softplus(self.head(pooled)) if self.head is not None else pooled


def softplus2(x: torch.Tensor) -> torch.Tensor:
    """MEGNet's activation, ``softplus(x) - log 2`` (zero at zero)."""
    # in place: one tensor less per layer; autograd allows it, softplus's backward uses its input only
    return F.softplus(x).sub_(0.6931471805599453)


class MLP(nn.Module):
    """Dense layers with :func:`softplus2` after each (MEGNet's ``phi`` functions)."""

    def __init__(self, in_dim: int, widths: tuple[int, ...]):
        super().__init__()
        dims = (in_dim, *widths)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = softplus2(layer(x))
        return x


class MEGNetBlock(nn.Module):
    r"""One MEGNet block (Chen, Ye, Zuo, Zheng & Ong 2019, eqs. 1-5): dense layers on the inputs, then

    .. math::
        e_k' = \phi_e(v_{s_k} \Vert v_{r_k} \Vert e_k \Vert u), \quad
        v_i' = \phi_v(\bar e_i' \Vert v_i \Vert u), \quad
        u' = \phi_u(\bar e' \Vert \bar v' \Vert u)

    (bars: means over the edges arriving at ``i``, over all edges, over all nodes of the graph), and a
    residual connection around the block. Shapes: ``v [N, F]``, ``e [E, F]``, ``u [G, F]`` -> same.
    """

    def __init__(self, width: int = 32, hidden: int = 64):
        super().__init__()
        self.pre_v, self.pre_e, self.pre_u = (MLP(width, (hidden, width)) for _ in range(3))
        self.phi_e = MLP(4 * width, (hidden, hidden, width))
        self.phi_v = MLP(3 * width, (hidden, hidden, width))
        self.phi_u = MLP(3 * width, (hidden, hidden, width))

    def forward(self, v, e, u, edge_index, node_graph):
        src, dst = edge_index
        n_graphs, width = u.shape[0], u.shape[1]
        edge_graph = node_graph.index_select(0, dst)
        v1, e1, u1 = self.pre_v(v), self.pre_e(e), self.pre_u(u)
        # phi_e's first layer on [v_s || v_r || e || u], computed per node / graph before gathering
        first = self.phi_e.layers[0]
        w_s, w_r, w_e, w_u = first.weight.split([width] * 4, dim=1)
        z = ((v1 @ w_s.T).index_select(0, src) + (v1 @ w_r.T).index_select(0, dst)
             + F.linear(e1, w_e, first.bias) + (u1 @ w_u.T).index_select(0, edge_graph))
        e2 = softplus2(z)
        for layer in self.phi_e.layers[1:]:
            e2 = softplus2(layer(e2))
        v2 = self.phi_v(torch.cat([mean_pool(e2, dst, v.shape[0]), v1, u1.index_select(0, node_graph)], dim=1))
        u2 = self.phi_u(torch.cat([mean_pool(e2, edge_graph, n_graphs), mean_pool(v2, node_graph, n_graphs), u1], dim=1))
        return v + v2, e + e2, u + u2


class MEGNetEncoder(nn.Module):
    """MEGNet structure encoder with Set2Set readouts, as CDSSL uses it.

    Element embedding (``embedding_dim``) and Gaussian edge features are mapped to ``width``; a learned
    initial global state stands in for MEGNet's ``[0, 0]`` crystal state. After ``n_blocks``
    :class:`MEGNetBlock`, Set2Set (``set2set_steps`` steps) reads out nodes and edges; the structure
    vector is ``Set2Set(nodes) || Set2Set(edges) || u``, of length ``5 * width``.

    Input: a PyG ``Batch`` from :mod:`matssl_featurizers.graphs`. Output: ``[G, 5 * width]``.
    :meth:`edge_outputs` gives the final edge features ``[E, width]`` (CDSSL's denoising target lives there).

    References: Chen et al., Chem. Mater. 31, 3564 (2019); Vinyals et al., ICLR (2016);
    New et al., arXiv:2408.17255 (2024).
    """

    def __init__(self, embedding_dim: int = 16, width: int = 32, hidden: int = 64, n_blocks: int = 3,
                 set2set_steps: int = 3, cutoff: float = CUTOFF, gaussian_step: float = 0.2):
        super().__init__()
        self.config = {
            "architecture": "megnet",
            "embedding_dim": embedding_dim,
            "width": width,
            "hidden": hidden,
            "n_blocks": n_blocks,
            "set2set_steps": set2set_steps,
            "cutoff": cutoff,
            "gaussian_step": gaussian_step,
        }
        from torch_geometric.nn.aggr import Set2Set

        self.embedding = nn.Embedding(N_ELEMENTS + 1, embedding_dim)
        self.distance = GaussianDistance(0.0, cutoff, gaussian_step)
        self.node_in = MLP(embedding_dim, (hidden, width))
        self.edge_in = MLP(self.distance.num_features, (hidden, width))
        self.state0 = nn.Parameter(torch.zeros(width))
        self.blocks = nn.ModuleList(MEGNetBlock(width, hidden) for _ in range(n_blocks))
        self.node_readout = Set2Set(width, set2set_steps)
        self.edge_readout = Set2Set(width, set2set_steps)
        self.out_dim = self.vector_length(self.config)

    @staticmethod
    def vector_length(config: dict) -> int:
        """Length of the structure vector: Set2Set of nodes and of edges (2 x ``width`` each) and the state."""
        return 5 * config["width"]

    def _run(self, batch):
        node_graph = node_graph_index(batch)
        n_graphs = int(getattr(batch, "num_graphs", 1))
        check_atomic_numbers(batch.atomic_numbers)
        v = self.node_in(self.embedding(batch.atomic_numbers))
        e = self.edge_in(self.distance(edge_lengths(batch)))
        u = self.state0.expand(n_graphs, -1)
        for block in self.blocks:
            v, e, u = block(v, e, u, batch.edge_index, node_graph)
        return v, e, u, node_graph, n_graphs

    def edge_outputs(self, batch) -> torch.Tensor:
        """Edge features after the last block, ``[E, width]``."""
        return self._run(batch)[1]

    def forward(self, batch) -> torch.Tensor:
        v, e, u, node_graph, n_graphs = self._run(batch)
        edge_graph = node_graph.index_select(0, batch.edge_index[1])
        nodes = self.node_readout(v, node_graph, dim_size=n_graphs)
        edges = self.edge_readout(e, edge_graph, dim_size=n_graphs)
        return torch.cat([nodes, edges, u], dim=1)


ENCODERS = {"cgcnn": CGCNNEncoder, "megnet": MEGNetEncoder}


def build_encoder(config: dict) -> nn.Module:
    """Instantiate the encoder a ``config.json`` describes (``architecture`` + constructor arguments)."""
    kwargs = dict(config)
    architecture = kwargs.pop("architecture", None)
    if architecture not in ENCODERS:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ENCODERS)}")
    try:
        return ENCODERS[architecture](**kwargs)
    except TypeError as err:
        raise ValueError(f"config does not fit the {architecture} encoder: {err}") from None
