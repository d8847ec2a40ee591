"""Crystal encoders: a pretrained model is one object, :class:`PretrainedEncoder`.

An encoder turns a batch of crystal graphs into one vector per structure: message passing
(:mod:`~matssl_featurizers.convolutions`), then a readout and optionally its principal components
(:mod:`~matssl_featurizers.readouts`). :class:`CGCNNEncoder` and :class:`MEGNetEncoder` are the architectures;
both serve pretraining and featurization.

``PretrainedEncoder.from_pretrained(source)`` resolves a bundled name, a folder or ``hf://OWNER/REPO@REVISION``
once (:mod:`~matssl_featurizers.sources`), checks its sha256 and loads it; ``save_pretrained(folder)`` writes
``config.json`` (exactly the constructor arguments, captured by huggingface_hub's ``ModelHubMixin``),
``metadata.json`` (:class:`ModelInfo`: method, graph settings, format version, provenance), ``model.safetensors``,
the card and ``checksums.json``; ``push_to_hub`` uploads that folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar

import torch
from huggingface_hub import ModelHubMixin
from torch import nn

from .citations import ARCHITECTURE_CITATIONS, METHOD_CITATIONS
from .convolutions import MLP, CGCNNConv, MEGNetBlock
from .elements import N_ELEMENTS, check_atomic_numbers, element_table
from .graphs import GaussianDistance, edge_lengths
from .neighbors import CUTOFF, MAX_NEIGHBORS
from .readouts import POOLS, LayerStatistics, MeanHead, NodesEdgesState, Part, PrincipalComponents, check_pools
from .sources import CARD_NAME, CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME, resolve, write_checksums

FORMAT_VERSION = 3  # 1: release 0.1; 2: 0.2 (metadata inside config.json); 3: metadata.json
LEGACY_METADATA_KEYS = ("method", "max_neighbors", "format_version")  # inside config.json in formats 1 and 2
# tensors of the readouts that were attributes of the encoder before they became modules (formats 1 and 2)
LEGACY_TENSOR_PREFIXES = {"head.": "readout.linear.", "node_readout.": "readout.nodes.", "edge_readout.": "readout.edges."}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model folder records besides its architecture (``metadata.json``): the pretraining method, the
    crystal-graph settings its vectors need, and free-form provenance (training data, command, epochs, and the
    fingerprints the same weights had in earlier file formats)."""

    method: str | None = None
    cutoff: float = CUTOFF
    max_neighbors: int = MAX_NEIGHBORS
    provenance: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, "method": self.method,
                "graph": {"cutoff": self.cutoff, "max_neighbors": self.max_neighbors}, "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict) -> "ModelInfo":
        graph = data.get("graph", {})
        return cls(method=data.get("method"), cutoff=graph.get("cutoff", CUTOFF),
                   max_neighbors=graph.get("max_neighbors", MAX_NEIGHBORS), provenance=data.get("provenance", {}))


class PretrainedEncoder(nn.Module, ModelHubMixin, library_name="matssl-featurizers",
                        tags=["materials-science", "crystal-structures", "self-supervised-learning"]):
    """A crystal encoder with its readout: a :class:`~matssl_featurizers.graphs.GraphBatch` -> ``[G, out_features]``.

    Attributes: ``config`` (the constructor arguments), ``info`` (:class:`ModelInfo`), ``card`` (the model card's
    text, or ``None``), ``name`` (the bundled name it was loaded by, or ``None``), ``readout`` and
    ``principal_components`` (modules with their ``out_features``).

    ``from_pretrained`` is this class's own rather than the mixin's: sources include bundled names and
    ``hf://OWNER/REPO@REVISION`` addresses, every file is checked against its recorded sha256, folders of earlier
    releases keep loading, and weights are only ever read from safetensors (the PyTorch mixin falls back to pickles).
    """

    architecture: ClassVar[str]
    card: str | None = None
    name: str | None = None

    def _start(self, architecture: str, cutoff: float) -> None:
        """Check ``architecture`` against the class's and set the default :class:`ModelInfo`."""
        if architecture != self.architecture:
            raise ValueError(f"architecture {architecture!r} is not {type(self).__name__}'s ({self.architecture!r})")
        self.info = ModelInfo(cutoff=cutoff)

    # -- what the vector is ----------------------------------------------------------------
    @property
    def config(self) -> dict:
        """The constructor arguments as ``config.json`` holds them (JSON values: lists, not tuples)."""
        return json.loads(json.dumps(self._hub_mixin_config))

    @property
    def out_features(self) -> int:
        """Length of the structure vector (before principal components)."""
        return self.readout.out_features

    @property
    def n_components(self) -> int:
        """Principal components stored with the weights (0: none)."""
        return self.principal_components.out_features

    @property
    def graph_settings(self) -> dict:
        """``cutoff`` and ``max_neighbors`` of the crystal graphs this encoder reads."""
        return {"cutoff": self.info.cutoff, "max_neighbors": self.info.max_neighbors}

    def feature_labels(self) -> list[str]:
        """What each column of the structure vector is, e.g. ``"conv 2 std 17"``."""
        return self.readout.labels()

    def component_labels(self) -> list[str]:
        return self.principal_components.labels()

    def citations(self) -> list[str]:
        return ARCHITECTURE_CITATIONS.get(self.architecture, []) + METHOD_CITATIONS.get(self.info.method, [])

    def fingerprint(self) -> str:
        """sha256 of the configuration, graph settings, method and every tensor: what a pickled featurizer pins
        its weights by. Folders and in-memory copies of the same weights share it."""
        digest = hashlib.sha256(json.dumps([self.config, self.graph_settings, self.info.method], sort_keys=True).encode())
        for key, tensor in sorted(self.state_dict().items()):
            digest.update(key.encode() + b"\0" + tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def fingerprints(self) -> set[str]:
        """This encoder's :meth:`fingerprint` and those the same weights had in earlier file formats."""
        return {self.fingerprint(), *self.info.provenance.get("earlier_fingerprints", [])}

    def label_prefix(self) -> str:
        """The bundled name, else the method and the first 8 hex digits of the fingerprint."""
        return self.name or f"{self.info.method or 'encoder'}-{self.fingerprint()[:8]}"

    # -- variants --------------------------------------------------------------------------
    def readout_config(self, **changes) -> dict:
        """The config with another readout (``readout``, ``pool``, ``pool_edges``) and no principal components."""
        return {**self.config, **changes, "readout_components": 0}

    def with_readout(self, **changes) -> "PretrainedEncoder":
        """The same trained weights read out another way (e.g. ``readout="layers", pool=["mean", "max"]``); tensors
        only the old readout had are dropped, principal components too (they belong to the readout they were
        fitted on). Raises ``ValueError`` when the new readout needs tensors these weights lack."""
        variant = PretrainedEncoder.from_config(self.readout_config(**changes))
        trained, wanted = self.state_dict(), variant.state_dict()
        missing = [k for k in wanted if k not in trained or trained[k].shape != wanted[k].shape]
        if missing:
            raise ValueError(f"the readout {changes} needs tensors these weights lack: {missing[:3]}")
        variant.load_state_dict({k: trained[k] for k in wanted})
        provenance = {k: v for k, v in self.info.provenance.items() if k != "earlier_fingerprints"}  # other vectors now
        variant.info = dataclasses.replace(self.info, provenance={**provenance, "readout_changed": changes})
        return variant.to(self._device()).train(self.training)

    def random_like(self, seed: int, **changes) -> "PretrainedEncoder":
        """Random weights of this architecture drawn with ``seed`` (optionally another readout), no principal
        components, no method: the control a pretrained encoder must beat."""
        torch.manual_seed(seed)
        # the second encoder built after seeding: releases up to 0.2.1 built the architecture once to read its
        # config, then again, and the published random-weight rows were drawn that way
        PretrainedEncoder.from_config(self.readout_config(**changes))
        variant = PretrainedEncoder.from_config(self.readout_config(**changes))
        variant.info = ModelInfo(cutoff=self.info.cutoff, max_neighbors=self.info.max_neighbors,
                                 provenance={"random_weights_seed": seed})
        return variant.to(self._device()).eval()

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # -- building and loading --------------------------------------------------------------
    @staticmethod
    def from_config(config: dict) -> "PretrainedEncoder":
        """A new encoder (random weights) of the architecture and constructor arguments ``config`` holds."""
        architecture = config.get("architecture")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
        try:
            return ARCHITECTURES[architecture](**config)
        except TypeError as err:
            raise ValueError(f"config does not fit the {architecture} encoder: {err}") from None

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | None = None, *, device: str = "cpu") -> "PretrainedEncoder":
        """Load the encoder of ``source`` (bundled name, folder or ``hf://OWNER/REPO[@REVISION]``; ``None``: the
        default bundled model) in eval mode on ``device``.

        Raises ``OSError`` when files are missing or do not match their sha256, ``ValueError`` when the config and
        the tensors disagree.
        """
        from safetensors.torch import load_file

        resolved = resolve(source)
        directory = resolved.directory
        config = json.loads((directory / CONFIG_NAME).read_text())
        legacy = not (directory / METADATA_NAME).is_file()
        if legacy:
            info = ModelInfo(method=config.get("method"), cutoff=config.get("cutoff", CUTOFF),
                             max_neighbors=config.get("max_neighbors", MAX_NEIGHBORS))
            config = {k: v for k, v in config.items() if k not in LEGACY_METADATA_KEYS}
        else:
            info = ModelInfo.from_json(json.loads((directory / METADATA_NAME).read_text()))
        try:
            encoder = PretrainedEncoder.from_config(config)
        except ValueError as err:
            raise ValueError(f"weights {resolved.given!r}: {err}") from None
        if not isinstance(encoder, cls):
            raise ValueError(f"weights {resolved.given!r} hold a {type(encoder).__name__}, not a {cls.__name__}")
        state = load_file(directory / WEIGHTS_NAME)
        if legacy:
            state = {_current_name(k): v for k, v in state.items()}
        expected = encoder.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong_shape:
            raise ValueError(f"weights {resolved.given!r}: config.json does not match model.safetensors "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]})")
        encoder.load_state_dict(state)
        encoder.info, encoder.name = info, resolved.bundled
        card = directory / CARD_NAME
        encoder.card = card.read_text() if card.is_file() else None
        return encoder.to(device).eval()

    def save_pretrained(self, save_directory, **kwargs):
        """Write ``config.json``, ``metadata.json``, ``model.safetensors``, the card (``card``, when set) and
        ``checksums.json`` to ``save_directory`` (the mixin's keyword arguments, e.g. ``push_to_hub``, pass through)."""
        push = kwargs.pop("push_to_hub", False)
        super().save_pretrained(save_directory, **kwargs)
        write_checksums(Path(save_directory))
        if push:
            return self.push_to_hub(kwargs.get("repo_id") or Path(save_directory).name)
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, save_directory / WEIGHTS_NAME, metadata={"format": "pt"})
        (save_directory / METADATA_NAME).write_text(json.dumps(self.info.to_json(), indent=2) + "\n")
        if self.card is not None:
            (save_directory / CARD_NAME).write_text(self.card)


def _current_name(key: str) -> str:
    for old, new in LEGACY_TENSOR_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _layer_parts(stages: list[str], width: int, pools, edge_bins: GaussianDistance | None, per_stage) -> list[Part]:
    """The :class:`Part` list of a ``"layers"`` readout: ``per_stage(stage name)`` parts for every stage, then the
    mean Gaussian expansion of the edge lengths (a smoothed neighbour-distance histogram) when ``edge_bins``."""
    channels = tuple(str(i) for i in range(width))
    parts = [part for stage in stages for part in per_stage(stage, channels, tuple(pools))]
    if edge_bins is not None:
        parts.append(Part("distance histogram", tuple(f"{c:.1f} A" for c in edge_bins.centers.tolist()), ("mean",)))
    return parts


class CGCNNEncoder(PretrainedEncoder):
    """CGCNN structure encoder: element inputs -> ``n_conv`` :class:`~matssl_featurizers.convolutions.CGCNNConv`
    -> a readout.

    Args:
        architecture: ``"cgcnn"`` (recorded so that ``config.json`` alone says what to build).
        atom_input: ``"embedding"`` (a learned vector per element) or the name of a fixed per-element table
            (``"cgcnn92"``, ``"crysatom"``: see :func:`~matssl_featurizers.elements.element_table`), mapped to
            ``atom_fea_len`` by a linear layer.
        atom_fea_len: node feature width ``F``.
        n_conv: number of convolutions.
        out_dim: ``readout="head"`` only: width of the structure vector (CGCNN's ``h_fea_len``); 0 returns
            the pooled ``F``.
        cutoff, gaussian_step: edge features, Gaussians from 0 to ``cutoff`` every ``gaussian_step`` Å.
        readout: ``"head"`` (:class:`~matssl_featurizers.readouts.MeanHead`, the readout of release 0.1) or
            ``"layers"`` (:class:`~matssl_featurizers.readouts.LayerStatistics`: the ``pool`` statistics over the
            sites of every layer, the input layer included, then, with ``pool_edges``, the mean Gaussian expansion
            of the edge lengths; ``(n_conv + 1) * len(pool) * F (+ K)`` values, no weights of its own).
        pool: statistics of ``"layers"``: any of ``"mean"``, ``"max"``, ``"min"``, ``"std"``.
        pool_edges: ``"layers"``: append the mean edge expansion.
        readout_components: principal components kept with the weights (0: none).

    Input: a :class:`~matssl_featurizers.graphs.GraphBatch` (optionally with ``edge_keep [E]``, a 0/1 mask on edge
    features). Output: ``[G, out_features]``.

    References: Xie & Grossman, PRL 120, 145301 (2018).
    """

    architecture = "cgcnn"

    def __init__(self, architecture: str = "cgcnn", atom_input: str = "embedding", atom_fea_len: int = 64,
                 n_conv: int = 3, out_dim: int = 128, cutoff: float = CUTOFF, gaussian_step: float = 0.2,
                 readout: str = "head", pool: list = POOLS, pool_edges: bool = True, readout_components: int = 0):
        super().__init__()
        self._start(architecture, cutoff)
        if readout not in ("head", "layers"):
            raise ValueError(f"unknown readout {readout!r}; known: head, layers")
        check_pools(pool)
        if readout == "layers" and out_dim:
            raise ValueError("readout 'layers' has no output layer: set out_dim to 0")
        self.atom_input = atom_input
        if atom_input == "embedding":
            self.embedding = nn.Embedding(N_ELEMENTS + 1, atom_fea_len)
        else:
            self.register_buffer("element_table", element_table(atom_input))
            self.embedding = nn.Linear(self.element_table.shape[1], atom_fea_len)
        self.distance = GaussianDistance(0.0, cutoff, gaussian_step)
        self.convs = nn.ModuleList(CGCNNConv(atom_fea_len, self.distance.num_features) for _ in range(n_conv))
        if readout == "head":
            self.readout = MeanHead(atom_fea_len, out_dim)
        else:
            stages = ["input", *(f"conv {i + 1}" for i in range(n_conv))]
            self.readout = LayerStatistics(_layer_parts(
                stages, atom_fea_len, pool, self.distance if pool_edges else None,
                lambda stage, channels, pools: [Part(stage, channels, pools)]))
        self.principal_components = PrincipalComponents(self.out_features, readout_components)

    def readout_config(self, **changes) -> dict:
        config = super().readout_config(**changes)
        if "readout" in changes:  # "layers" has no output layer; "head" gets the old one back, or CGCNN's 128
            config["out_dim"] = 0 if changes["readout"] == "layers" else (self.config["out_dim"] or 128)
        return config

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

    def structure_vector(self, batch, layers: list[torch.Tensor], edge_attr: torch.Tensor) -> torch.Tensor:
        """The structure vector ``[G, out_features]`` from the outputs of :meth:`node_layers`."""
        node_graph, n_graphs = batch.batch, batch.num_graphs
        if isinstance(self.readout, MeanHead):
            return self.readout(layers[-1], node_graph, n_graphs)
        edge_graph = node_graph.index_select(0, batch.edge_index[1])
        values = [*layers, edge_attr] if self.config["pool_edges"] else layers
        return self.readout(values, [node_graph] * len(layers) + [edge_graph], n_graphs)

    def forward(self, batch) -> torch.Tensor:
        return self.structure_vector(batch, *self.node_layers(batch))


class MEGNetEncoder(PretrainedEncoder):
    """MEGNet structure encoder, as CDSSL uses it.

    Element embedding (``embedding_dim``) and Gaussian edge features are mapped to ``width``; a learned initial
    global state stands in for MEGNet's ``[0, 0]`` crystal state; then ``n_blocks``
    :class:`~matssl_featurizers.convolutions.MEGNetBlock`.

    Readouts: ``"set2set"`` (CDSSL's, the default): :class:`~matssl_featurizers.readouts.NodesEdgesState`
    (``set2set_steps`` steps), ``5 * width`` values. ``"layers"``: for the input and every block, the ``pool``
    statistics of the nodes and of the edges, and the state; then (``pool_edges``) the mean Gaussian expansion of
    the edge lengths. ``architecture`` (``"megnet"``) and ``readout_components``: as in :class:`CGCNNEncoder`.

    Input: a :class:`~matssl_featurizers.graphs.GraphBatch`. Output: ``[G, out_features]``. :meth:`edge_outputs`
    gives the final edge features ``[E, width]`` (CDSSL's denoising target lives there).

    References: Chen et al., Chem. Mater. 31, 3564 (2019); Vinyals et al., ICLR (2016);
    New et al., arXiv:2408.17255 (2024).
    """

    architecture = "megnet"

    def __init__(self, architecture: str = "megnet", embedding_dim: int = 16, width: int = 32, hidden: int = 64,
                 n_blocks: int = 3, set2set_steps: int = 3, cutoff: float = CUTOFF, gaussian_step: float = 0.2,
                 readout: str = "set2set", pool: list = POOLS, pool_edges: bool = True, readout_components: int = 0):
        super().__init__()
        self._start(architecture, cutoff)
        if readout not in ("set2set", "layers"):
            raise ValueError(f"unknown readout {readout!r}; known: set2set, layers")
        check_pools(pool)
        self.embedding = nn.Embedding(N_ELEMENTS + 1, embedding_dim)
        self.distance = GaussianDistance(0.0, cutoff, gaussian_step)
        self.node_in = MLP(embedding_dim, (hidden, width))
        self.edge_in = MLP(self.distance.num_features, (hidden, width))
        self.state0 = nn.Parameter(torch.randn(width))  # not zeros: the first state layer would get no gradient
        self.blocks = nn.ModuleList(MEGNetBlock(width, hidden) for _ in range(n_blocks))
        if readout == "set2set":
            self.readout = NodesEdgesState(width, set2set_steps)
        else:
            stages = ["input", *(f"block {i + 1}" for i in range(n_blocks))]
            self.readout = LayerStatistics(_layer_parts(
                stages, width, pool, self.distance if pool_edges else None,
                lambda stage, channels, pools: [Part(f"{stage} nodes", channels, pools),
                                                Part(f"{stage} edges", channels, pools),
                                                Part(f"{stage} state", channels, None)]))
        self.principal_components = PrincipalComponents(self.out_features, readout_components)

    def stages(self, batch) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(v [N, width], e [E, width], u [G, width])`` after the input layers and after every block."""
        check_atomic_numbers(batch.atomic_numbers)
        v = self.node_in(self.embedding(batch.atomic_numbers))
        e = self.edge_in(self.distance(edge_lengths(batch)))
        out = [(v, e, self.state0.expand(batch.num_graphs, -1))]
        for block in self.blocks:
            out.append(block(*out[-1], batch.edge_index, batch.batch))
        return out

    def edge_outputs(self, batch) -> torch.Tensor:
        """Edge features after the last block, ``[E, width]``."""
        return self.stages(batch)[-1][1]

    def structure_vector(self, batch, stages) -> torch.Tensor:
        """The structure vector ``[G, out_features]`` from the output of :meth:`stages`."""
        node_graph, n_graphs = batch.batch, batch.num_graphs
        edge_graph = node_graph.index_select(0, batch.edge_index[1])
        if isinstance(self.readout, NodesEdgesState):
            return self.readout(*stages[-1], node_graph, edge_graph)
        values = [tensor for stage in stages for tensor in stage]
        groups = [node_graph, edge_graph, None] * len(stages)
        if self.config["pool_edges"]:
            values.append(self.distance(edge_lengths(batch)))
            groups.append(edge_graph)
        return self.readout(values, groups, n_graphs)

    def forward(self, batch) -> torch.Tensor:
        return self.structure_vector(batch, self.stages(batch))


ARCHITECTURES = {"cgcnn": CGCNNEncoder, "megnet": MEGNetEncoder}


def list_models():
    """A ``pandas.DataFrame`` of the bundled models: method, architecture, readout, vector length, stored principal
    components, training data, where the files are."""
    import pandas as pd

    from .bundled import bundled_models
    from .sources import DEFAULT_MODEL

    rows = []
    for name, entry in bundled_models().items():
        encoder = PretrainedEncoder.from_pretrained(name)
        rows.append({"model": name, "method": encoder.info.method, "architecture": encoder.architecture,
                     "readout": encoder.config["readout"], "n_features": encoder.out_features,
                     "n_components": encoder.n_components, "trained_on": entry["trained_on"],
                     "weights": f"bundled: matssl_featurizers/models/{entry['directory']}", "default": name == DEFAULT_MODEL})
    return pd.DataFrame(rows).set_index("model")

