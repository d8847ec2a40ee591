"""Graph encoders that turn a batch of crystal graphs into one vector per structure.

Every constructor argument is a plain JSON value, so a saved ``config.json`` *is*
the architecture (see :mod:`matssl_featurizers.weights`). The same classes serve
pretraining and featurization.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .graphs import CUTOFF, GaussianDistance, edge_lengths

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

    from .atom_vectors import CGCNN92, bundled_atom_vectors, load_atom_vectors

    if name != CGCNN92 and name not in bundled_atom_vectors():
        raise ValueError(f"unknown element table {name!r}; known: 'cgcnn92', {', '.join(map(repr, bundled_atom_vectors()))}")
    table = load_atom_vectors(name)
    out = torch.full((N_ELEMENTS + 1, table.shape[1]), float("nan"))
    out[MASK_TOKEN] = 0.0
    out[[Element(symbol).Z for symbol in table.index]] = torch.tensor(table.to_numpy(), dtype=torch.float32)
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


POOLS = ("mean", "max", "std")  # the default statistics of the "layers" readouts
KNOWN_POOLS = ("mean", "max", "min", "std")


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


class Readout(nn.Module):
    """The optional principal-component projection of a structure vector, shared by the encoders.

    With ``components`` = k > 0 the module holds buffers fitted after pretraining (``pretraining.readout_pca``):
    ``center [D]``, ``scale [D]`` and ``basis [D, k]``; :meth:`forward` gives ``((x - center) / scale) @ basis``,
    the first k principal components of the standardised vector ``x [G, D] -> [G, k]``.
    """

    def __init__(self, length: int, components: int = 0):
        super().__init__()
        if not 0 <= components <= length:
            raise ValueError(f"readout_components must be between 0 and the vector length {length}, got {components}")
        self.components = components
        if components:
            self.register_buffer("center", torch.zeros(length))
            self.register_buffer("scale", torch.ones(length))
            self.register_buffer("basis", torch.zeros(length, components))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.components:
            raise ValueError("this encoder has no principal components (readout_components is 0)")
        return ((x - self.center) / self.scale) @ self.basis


def check_readout(readout: str, known: tuple, pools) -> None:
    if readout not in known:
        raise ValueError(f"unknown readout {readout!r}; known: {', '.join(known)}")
    unknown = [p for p in pools if p not in KNOWN_POOLS]
    if unknown or not pools:
        raise ValueError(f"pool must be a non-empty list of {', '.join(KNOWN_POOLS)}; got {list(pools)}")


class CGCNNEncoder(nn.Module):
    """CGCNN structure encoder: element inputs -> ``n_conv`` :class:`CGCNNConv` -> a readout.

    Args:
        atom_input: ``"embedding"`` (a learned vector per element) or the name of a fixed
            per-element table (``"cgcnn92"``, ``"crysatom"``: see :func:`element_table`), mapped to
            ``atom_fea_len`` by a linear layer.
        atom_fea_len: node feature width ``F``.
        n_conv: number of convolutions.
        out_dim: ``readout="head"`` only: width of the structure vector (CGCNN's ``h_fea_len``); 0 returns
            the pooled ``F``.
        cutoff, gaussian_step: edge features, Gaussians from 0 to ``cutoff`` every ``gaussian_step`` Å.
        readout: ``"head"``: mean pool of the last layer, then linear + softplus to ``out_dim`` (the readout
            of the models released before 0.2). ``"layers"``: the ``pool`` statistics over the sites of
            every layer, the input layer included, then (``pool_edges``) the mean Gaussian expansion of the
            edge lengths: ``(n_conv + 1) * len(pool) * F (+ K)`` values, no weights of its own.
        pool: statistics of ``"layers"``: any of ``"mean"``, ``"max"``, ``"min"``, ``"std"`` (:func:`pool_rows`).
        pool_edges: ``"layers"``: append the mean edge expansion (a smoothed neighbour-distance histogram).
        readout_components: length of the principal-component projection kept in the weights
            (:class:`Readout`; 0: none).

    Input: a :class:`~matssl_featurizers.graphs.GraphBatch` (optionally with ``edge_keep [E]``, a 0/1 mask
    on edge features). Output: ``[G, D]`` with ``D`` = :meth:`vector_length`.

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
        readout: str = "head",
        pool: list = POOLS,
        pool_edges: bool = True,
        readout_components: int = 0,
    ):
        super().__init__()
        check_readout(readout, ("head", "layers"), pool)
        if readout == "layers" and out_dim:
            raise ValueError("readout 'layers' has no output layer: set out_dim to 0")
        self.config = {
            "architecture": "cgcnn",
            "atom_input": atom_input,
            "atom_fea_len": atom_fea_len,
            "n_conv": n_conv,
            "out_dim": out_dim,
            "cutoff": cutoff,
            "gaussian_step": gaussian_step,
            "readout": readout,
            "pool": list(pool),
            "pool_edges": pool_edges,
            "readout_components": readout_components,
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
        self.principal_components = Readout(self.out_dim, readout_components)

    @staticmethod
    def vector_length(config: dict) -> int:
        """Length of the structure vector of the encoder ``config`` describes."""
        if config.get("readout", "head") == "head":
            return config.get("out_dim") or config["atom_fea_len"]
        pools = len(config.get("pool", POOLS))
        edges = int(round(config["cutoff"] / config["gaussian_step"])) + 1 if config.get("pool_edges", True) else 0
        return (config["n_conv"] + 1) * pools * config["atom_fea_len"] + edges

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

    def edge_features(self, batch) -> torch.Tensor:
        """Gaussian-expanded edge lengths ``[E, K]``, zeroed where ``batch.edge_keep`` is 0."""
        edge_attr = self.distance(edge_lengths(batch))
        edge_keep = getattr(batch, "edge_keep", None)
        if edge_keep is not None:
            edge_attr = edge_attr * edge_keep.unsqueeze(-1).to(edge_attr.dtype)
        return edge_attr

    def node_layers(self, batch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Node features of every layer (input first), each ``[N, F]``, and the edge features ``[E, K]``."""
        edge_attr = self.edge_features(batch)
        layers = [self.embed_atoms(batch.atomic_numbers)]
        for conv in self.convs:
            layers.append(conv(layers[-1], batch.edge_index, edge_attr))
        return layers, edge_attr

    def node_embeddings(self, batch) -> torch.Tensor:
        """Node features after the convolutions, ``[N, F]``."""
        return self.node_layers(batch)[0][-1]

    def readout(self, batch, layers: list[torch.Tensor], edge_attr: torch.Tensor) -> torch.Tensor:
        """The structure vector ``[G, D]`` from the outputs of :meth:`node_layers`."""
        node_graph, n_graphs = batch.batch, batch.num_graphs
        if self.config["readout"] == "head":
            pooled = mean_pool(layers[-1], node_graph, n_graphs)
            return F.softplus(self.head(pooled)) if self.head is not None else pooled
        parts = [pool_rows(h, node_graph, n_graphs, self.config["pool"]) for h in layers]
        if self.config["pool_edges"]:
            parts.append(mean_pool(edge_attr, node_graph.index_select(0, batch.edge_index[1]), n_graphs))
        return torch.cat(parts, dim=1)

    def forward(self, batch) -> torch.Tensor:
        return self.readout(batch, *self.node_layers(batch))


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


class MEGNetEncoder(nn.Module):
    """MEGNet structure encoder, as CDSSL uses it.

    Element embedding (``embedding_dim``) and Gaussian edge features are mapped to ``width``; a learned
    initial global state stands in for MEGNet's ``[0, 0]`` crystal state; then ``n_blocks`` :class:`MEGNetBlock`.

    Readouts: ``"set2set"`` (CDSSL's, the default): :class:`Set2Set` (``set2set_steps`` steps) over nodes
    and over edges, and the state: ``Set2Set(nodes) || Set2Set(edges) || u``, ``5 * width`` values.
    ``"layers"``: for the input and every block, the ``pool`` statistics (:func:`pool_rows`) of the nodes
    and of the edges, and the state; then (``pool_edges``) the mean Gaussian expansion of the edge
    lengths. ``readout_components``: as in :class:`CGCNNEncoder`.

    Input: a :class:`~matssl_featurizers.graphs.GraphBatch`. Output: ``[G, D]``, ``D`` = :meth:`vector_length`.
    :meth:`edge_outputs` gives the final edge features ``[E, width]`` (CDSSL's denoising target lives there).

    References: Chen et al., Chem. Mater. 31, 3564 (2019); Vinyals et al., ICLR (2016);
    New et al., arXiv:2408.17255 (2024).
    """

    def __init__(self, embedding_dim: int = 16, width: int = 32, hidden: int = 64, n_blocks: int = 3,
                 set2set_steps: int = 3, cutoff: float = CUTOFF, gaussian_step: float = 0.2, readout: str = "set2set",
                 pool: list = POOLS, pool_edges: bool = True, readout_components: int = 0):
        super().__init__()
        check_readout(readout, ("set2set", "layers"), pool)
        self.config = {
            "architecture": "megnet",
            "embedding_dim": embedding_dim,
            "width": width,
            "hidden": hidden,
            "n_blocks": n_blocks,
            "set2set_steps": set2set_steps,
            "cutoff": cutoff,
            "gaussian_step": gaussian_step,
            "readout": readout,
            "pool": list(pool),
            "pool_edges": pool_edges,
            "readout_components": readout_components,
        }
        self.embedding = nn.Embedding(N_ELEMENTS + 1, embedding_dim)
        self.distance = GaussianDistance(0.0, cutoff, gaussian_step)
        self.node_in = MLP(embedding_dim, (hidden, width))
        self.edge_in = MLP(self.distance.num_features, (hidden, width))
        self.state0 = nn.Parameter(torch.randn(width))  # not zeros: the first state layer would get no gradient
        self.blocks = nn.ModuleList(MEGNetBlock(width, hidden) for _ in range(n_blocks))
        if readout == "set2set":
            self.node_readout = Set2Set(width, set2set_steps)
            self.edge_readout = Set2Set(width, set2set_steps)
        self.out_dim = self.vector_length(self.config)
        self.principal_components = Readout(self.out_dim, readout_components)

    @staticmethod
    def vector_length(config: dict) -> int:
        """Length of the structure vector: Set2Set of nodes and of edges (2 x ``width`` each) and the state,
        or the ``"layers"`` statistics."""
        width = config["width"]
        if config.get("readout", "set2set") == "set2set":
            return 5 * width
        per_stage = (2 * len(config.get("pool", POOLS)) + 1) * width
        edges = int(round(config["cutoff"] / config["gaussian_step"])) + 1 if config.get("pool_edges", True) else 0
        return (config["n_blocks"] + 1) * per_stage + edges

    def stages(self, batch) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(v [N, width], e [E, width], u [G, width])`` after the input layers and after every block."""
        node_graph = batch.batch
        check_atomic_numbers(batch.atomic_numbers)
        v = self.node_in(self.embedding(batch.atomic_numbers))
        e = self.edge_in(self.distance(edge_lengths(batch)))
        out = [(v, e, self.state0.expand(batch.num_graphs, -1))]
        for block in self.blocks:
            out.append(block(*out[-1], batch.edge_index, node_graph))
        return out

    def edge_outputs(self, batch) -> torch.Tensor:
        """Edge features after the last block, ``[E, width]``."""
        return self.stages(batch)[-1][1]

    def readout(self, batch, stages) -> torch.Tensor:
        """The structure vector ``[G, D]`` from the output of :meth:`stages`."""
        node_graph, n_graphs = batch.batch, batch.num_graphs
        edge_graph = node_graph.index_select(0, batch.edge_index[1])
        if self.config["readout"] == "set2set":
            v, e, u = stages[-1]
            return torch.cat([self.node_readout(v, node_graph, n_graphs), self.edge_readout(e, edge_graph, n_graphs), u], dim=1)
        pools = self.config["pool"]
        parts = [torch.cat([pool_rows(v, node_graph, n_graphs, pools), pool_rows(e, edge_graph, n_graphs, pools), u], dim=1)
                 for v, e, u in stages]
        if self.config["pool_edges"]:
            parts.append(mean_pool(self.distance(edge_lengths(batch)), edge_graph, n_graphs))
        return torch.cat(parts, dim=1)

    def forward(self, batch) -> torch.Tensor:
        return self.readout(batch, self.stages(batch))


ENCODERS = {"cgcnn": CGCNNEncoder, "megnet": MEGNetEncoder}


def build_encoder(config: dict) -> nn.Module:
    """Instantiate the encoder a ``config.json`` describes (``architecture`` + constructor arguments; its
    metadata, :data:`~matssl_featurizers.weights.METADATA_KEYS`, is ignored)."""
    from .weights import encoder_arguments

    kwargs = encoder_arguments(config)
    architecture = kwargs.pop("architecture", None)
    if architecture not in ENCODERS:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ENCODERS)}")
    try:
        return ENCODERS[architecture](**kwargs)
    except TypeError as err:
        raise ValueError(f"config does not fit the {architecture} encoder: {err}") from None
