"""Pretext tasks: each wraps a :mod:`matssl_featurizers.encoders` encoder with what it trains on.

A method is an ``nn.Module`` with an ``encoder`` attribute (what gets exported) and
``loss(batch) -> (loss, metrics)``.
"""

from __future__ import annotations

import torch
from torch import nn

from matssl_featurizers.elements import MASK_TOKEN, N_ELEMENTS, element_table
from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.readouts import POOLS, mean_pool, pool_rows
from matssl_featurizers.graphs import MAX_NEIGHBORS, edge_lengths, edge_vectors

from . import augmentations as aug
from .losses import (barlow_twins_loss, composition_similarity_loss, connectivity_loss, element_prototype_loss,
                     node_feature_loss, nt_xent_loss)

CRYSTAL_TWINS_ENCODER = {
    "architecture": "cgcnn",
    "atom_input": "cgcnn92",
    "atom_fea_len": 64,
    "n_conv": 3,
    "out_dim": 0,
    "cutoff": 8.0,
    "gaussian_step": 0.2,
    "readout": "layers",
}
HEAD_READOUT = {"readout": "head", "out_dim": 128}  # the readout of the models released before 0.2
READOUTS = ("layers", "head")


def cgcnn_config(base: dict, atom_input: str, readout: str, atom_fea_len: int = 64) -> dict:
    """``base`` with ``atom_input``, node width ``atom_fea_len`` and ``readout`` (``"layers"``, or ``"head"``:
    linear + softplus to 128)."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; choose from {READOUTS}")
    return {**base, "atom_input": atom_input, "atom_fea_len": atom_fea_len, **(HEAD_READOUT if readout == "head" else {})}


def projector(in_dim: int, hidden: int, out_dim: int) -> nn.Module:
    """Two-layer MLP head used by the contrastive methods."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class CrystalTwins(nn.Module):
    """Crystal Twins (Magar, Wang & Barati Farimani, npj Comput. Mater. 8, 231, 2022).

    Two views of each crystal, each perturbed by ``perturb_distance`` Å, then atom-masked
    (``atom_mask_ratio``) and edge-masked (``edge_mask_ratio``), go through the encoder and a 2-layer
    projector to ``projection_dim``; the Barlow Twins loss with ``lambd`` pulls their cross-correlation
    towards the identity. Loss and augmentation defaults are the paper's. ``atom_input`` picks the
    encoder's fixed element inputs (``"cgcnn92"``, or ``"crysatom"`` vectors); ``readout`` its structure
    vector (``"layers"``: statistics of every layer, see :class:`~matssl_featurizers.encoders.CGCNNEncoder`;
    ``"head"``: the paper's mean pool + linear layer); ``atom_fea_len`` the width of its node features (the
    paper's 64).
    """

    def __init__(self, encoder_config: dict | None = None, projection_dim: int = 128, lambd: float = 0.0051,
                 perturb_distance: float = 0.05, atom_mask_ratio: float = 0.1, edge_mask_ratio: float = 0.1,
                 atom_input: str = "cgcnn92", readout: str = "layers", atom_fea_len: int = 64):
        super().__init__()
        self.encoder = PretrainedEncoder.from_config(encoder_config or cgcnn_config(CRYSTAL_TWINS_ENCODER, atom_input, readout, atom_fea_len))
        self.projector = projector(self.encoder.out_features, projection_dim, projection_dim)
        self.lambd, self.perturb_distance = lambd, perturb_distance
        self.atom_mask_ratio, self.edge_mask_ratio = atom_mask_ratio, edge_mask_ratio

    def view(self, batch):
        batch = aug.perturb(batch, self.perturb_distance)
        return aug.mask_edges(aug.mask_atoms(batch, self.atom_mask_ratio), self.edge_mask_ratio)

    def loss(self, batch):
        z_a = self.projector(self.encoder(self.view(batch)))
        z_b = self.projector(self.encoder(self.view(batch)))
        loss = barlow_twins_loss(z_a, z_b, self.lambd)
        return loss, {"loss": float(loss.detach())}


CRYSTALCLR_ENCODER = dict(CRYSTAL_TWINS_ENCODER)
CLR_LOSSES = ("nt-xent", "nt-xent+cs")


def element_presence(batch) -> torch.Tensor:
    """``[G, 119]`` 0/1 matrix: which elements each crystal of the batch contains."""
    presence = torch.zeros(int(batch.num_graphs), N_ELEMENTS + 1, device=batch.atomic_numbers.device)
    presence[batch.batch, batch.atomic_numbers] = 1.0
    return presence


class CrystalCLR(nn.Module):
    """CrystalCLR (Koker, Quigley, Spaeth, Frey & Li, NeurIPS 2022 AI4Mat workshop, arXiv:2211.13408).

    Two views of each crystal, each made by three augmentations applied independently with
    probability ``p_augment``: perturb every site by U(0, ``perturb_fraction`` x the shortest
    interatomic distance), anisotropic strain up to ``max_strain`` per lattice vector, and column
    replace (one site -> another element of its periodic-table column). ``supercell`` (off by default,
    the paper found it hurts) turns every view into its ``supercell`` x ``supercell`` x ``supercell``
    supercell. The encoder output goes through a 2-layer projector to ``projection_dim``; the loss is
    NT-Xent (``loss="nt-xent"``) or NT-Xent + composition similarity, equally weighted
    (``"nt-xent+cs"``, the paper's final model), at ``temperature``. ``atom_input``, ``readout``, ``atom_fea_len``:
    as Crystal Twins'.
    """

    def __init__(self, encoder_config: dict | None = None, projection_dim: int = 128, loss: str = "nt-xent+cs",
                 temperature: float = 0.1, p_augment: float = 0.5, perturb_fraction: float = 0.5,
                 max_strain: float = 0.05, supercell: int = 0, atom_input: str = "cgcnn92", readout: str = "layers",
                 atom_fea_len: int = 64):
        super().__init__()
        if loss not in CLR_LOSSES:
            raise ValueError(f"unknown CrystalCLR loss {loss!r}; choose from {CLR_LOSSES}")
        self.encoder = PretrainedEncoder.from_config(encoder_config or cgcnn_config(CRYSTALCLR_ENCODER, atom_input, readout, atom_fea_len))
        self.projector = projector(self.encoder.out_features, projection_dim, projection_dim)
        self.loss_name, self.temperature, self.p_augment = loss, temperature, p_augment
        self.perturb_fraction, self.max_strain, self.supercell = perturb_fraction, max_strain, supercell
        known = ~torch.isnan(self.encoder.element_table).any(1) if hasattr(self.encoder, "element_table") else None
        self.register_buffer("column_partners", aug.column_partners(known), persistent=False)

    def view(self, batch):
        def coin():
            return torch.rand(batch.num_graphs, device=batch.lattice.device) < self.p_augment

        batch = aug.perturb_uniform(batch, self.perturb_fraction, apply=coin())
        batch = aug.strain(batch, self.max_strain, apply=coin())
        batch = aug.column_replace(batch, self.column_partners, apply=coin())
        return aug.supercell(batch, self.supercell) if self.supercell > 1 else batch

    def loss(self, batch):
        z_a = self.projector(self.encoder(self.view(batch)))
        z_b = self.projector(self.encoder(self.view(batch)))
        clr = nt_xent_loss(z_a, z_b, self.temperature)
        metrics = {"nt_xent": float(clr.detach())}
        loss = clr
        if self.loss_name == "nt-xent+cs":
            cs = composition_similarity_loss(z_a, z_b, element_presence(batch), self.temperature)
            metrics["cs"] = float(cs.detach())
            loss = clr + cs
        metrics["loss"] = float(loss.detach())
        return loss, metrics


CDSSL_ENCODER = {
    "architecture": "megnet",
    "embedding_dim": 16,
    "width": 32,
    "hidden": 64,
    "n_blocks": 3,
    "set2set_steps": 3,
    "cutoff": 8.0,
    "gaussian_step": 0.2,
}


class CDSSL(nn.Module):
    r"""Crystal denoising self-supervised learning (New, Le, Pekala & Stiles 2024, arXiv:2408.17255).

    Every site moves by Gaussian noise of ``noise_std`` Å per Cartesian coordinate; the MEGNet encoder
    sees the noisy structure (edge lengths recomputed over the same neighbour list), and a linear head
    on its final edge features predicts the edge embeddings of the ORIGINAL structure, the Gaussian
    expansion of the clean edge lengths, under mean squared error (the paper's loss):

    .. math:: \mathcal{L}_E = \frac{1}{E K} \sum_k \lVert W e_k(\tilde G) + b - \bar e_k(G) \rVert^2

    The paper's loss reads only the final edge features, so the last block's node and state updates and
    the readout would never be trained. A second linear head on the structure vector of the noisy crystal
    (the exported readout) predicts each crystal's mean clean edge expansion, with weight ``graph_weight``:

    .. math:: \mathcal{L} = \mathcal{L}_E + w_G \frac{1}{G K} \sum_g \lVert V x(\tilde G_g) + c - \mathrm{mean}_{k \in g}\, \bar e_k(G) \rVert^2

    ``readout``: the encoder's (``"set2set"``, the paper's, or ``"layers"``).
    """

    def __init__(self, encoder_config: dict | None = None, noise_std: float = 0.1, graph_weight: float = 1.0,
                 readout: str = "set2set"):
        super().__init__()
        self.encoder = PretrainedEncoder.from_config(encoder_config or {**CDSSL_ENCODER, "readout": readout})
        self.noise_std, self.graph_weight = noise_std, graph_weight
        self.head = nn.Linear(self.encoder.config["width"], self.encoder.distance.num_features)
        self.graph_head = nn.Linear(self.encoder.out_features, self.encoder.distance.num_features)

    def loss(self, batch):
        with torch.no_grad():
            target = self.encoder.distance(edge_lengths(batch))
            graph_target = mean_pool(target, batch.batch.index_select(0, batch.edge_index[1]), batch.num_graphs)
        noise = self.noise_std * torch.randn(batch.frac_coords.shape, device=batch.frac_coords.device)
        noisy = aug.displace(batch, noise)
        stages = self.encoder.stages(noisy)
        edges = torch.nn.functional.mse_loss(self.head(stages[-1][1]), target)
        graph = torch.nn.functional.mse_loss(self.graph_head(self.encoder.structure_vector(noisy, stages)), graph_target)
        loss = edges + self.graph_weight * graph
        return loss, {"loss": float(loss.detach()), "edges": float(edges.detach()), "graph": float(graph.detach())}


def node_pairs(batch, generator=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Node pairs to decode and their edge multiplicity: every connected pair ``(i, j)`` of the
    batch once, with the number of edges from ``j`` (any periodic image) to centre ``i``, and as many
    pairs ``(i, j')`` with ``j'`` drawn uniformly from ``i``'s crystal (mostly unconnected: multiplicity 0).

    Returns ``centre [P]``, ``other [P]``, ``multiplicity [P]`` (long), global node indices.
    """
    src, dst = batch.edge_index
    n = batch.atomic_numbers.shape[0]
    keys, counts = torch.unique(dst * n + src, return_counts=True)  # sorted
    centre, other = keys // n, keys % n
    node_graph = batch.batch
    ptr = batch.ptr
    graph = node_graph.index_select(0, centre)
    start, size = ptr.index_select(0, graph), (ptr[1:] - ptr[:-1]).index_select(0, graph)
    draw = torch.rand(centre.shape[0], generator=generator, device=src.device)
    random_other = start + (draw * size).long().clamp(max=size - 1)
    random_keys = centre * n + random_other
    position = torch.searchsorted(keys, random_keys).clamp(max=keys.shape[0] - 1)
    random_counts = torch.where(keys[position] == random_keys, counts[position], torch.zeros_like(counts[position]))
    return (torch.cat([centre, centre]), torch.cat([other, random_other]), torch.cat([counts, random_counts]))


CRYSATOM_ENCODER = {
    "architecture": "cgcnn",
    "atom_input": "cgcnn92",
    "atom_fea_len": 200,
    "n_conv": 5,
    "out_dim": 0,
    "cutoff": 8.0,
    "gaussian_step": 0.2,
}
ELEMENT_PROTOTYPES = {  # CrysAtom's element term: what each node's final embedding is classified against
    "learned": "a learned prototype vector per element",
    "inputs": "the encoder's own input embeddings of the elements present in the batch (tied, as input and output "
              "embeddings are in language models)",
}


class CrysAtom(nn.Module):
    r"""CrysAtom (Mukherjee, Ghosh & Basuchowdhuri, LoG 2024): a CGCNN autoencoder whose node embeddings
    become per-element vectors.

    The encoder (``n_conv`` = 5 convolutions, ``atom_dim`` = 200 features per node) sees two views of each
    crystal, one atom-masked (``atom_mask_ratio``) and one edge-masked (``edge_mask_ratio``). On each view
    two decoders reconstruct the ORIGINAL crystal: a linear layer predicts every node's 92 CGCNN element
    features (:func:`~pretraining.losses.node_feature_loss`), and a bilinear decoder
    :math:`\mathrm{softmax}(W_2\,\sigma(h_i^\top W_1 h_j + b_1) + b_2)` predicts the number of edges
    between node pairs (0 to ``MAX_NEIGHBORS``; :func:`node_pairs`, :func:`~pretraining.losses.connectivity_loss`).
    Barlow Twins (``lambd``) ties the mean-pooled node embeddings of the two views. The loss is

    .. math:: \mathcal{L} = w_F \mathcal{L}_F + w_C \mathcal{L}_C + w_{BT} \mathcal{L}_{BT}

    with ``feature_weight``, ``connectivity_weight``, ``barlow_weight`` = 0.25 / 0.25 / 0.5 (the paper's).
    Reconstruction terms are averaged over the two views. ``atom_input``: the encoder's element inputs.

    ``element_weight`` > 0 adds this project's element term :math:`w_Z \mathcal{L}_Z` (not in the paper; 0,
    the default, is the paper's method): on the atom-masked view every node's final embedding is classified
    into its element by cosine similarity to prototypes (:func:`~pretraining.losses.element_prototype_loss`,
    temperature ``element_temperature``), the masked sites from their environment alone. ``element_prototypes``:
    ``"learned"``, a free vector per element, or ``"inputs"``, the encoder's own input embeddings of the
    elements present in the batch (tied, as in language models; no extra parameters).
    """

    def __init__(self, encoder_config: dict | None = None, atom_dim: int = 200, lambd: float = 0.0051,
                 atom_mask_ratio: float = 0.1, edge_mask_ratio: float = 0.1, feature_weight: float = 0.25,
                 connectivity_weight: float = 0.25, barlow_weight: float = 0.5, decoder_hidden: int = 64,
                 atom_input: str = "cgcnn92", element_weight: float = 0.0, element_temperature: float = 0.1,
                 element_prototypes: str = "learned"):
        super().__init__()
        self.encoder = PretrainedEncoder.from_config(encoder_config or {**CRYSATOM_ENCODER, "atom_fea_len": atom_dim, "atom_input": atom_input})
        width = self.encoder.config["atom_fea_len"]
        self.register_buffer("feature_targets", element_table("cgcnn92"), persistent=False)
        self.feature_decoder = nn.Linear(width, self.feature_targets.shape[1])
        self.pair_left = nn.Linear(width, decoder_hidden)
        self.pair_right = nn.Linear(width, decoder_hidden, bias=False)
        self.multiplicity_decoder = nn.Linear(decoder_hidden, MAX_NEIGHBORS + 1)
        self.lambd, self.atom_mask_ratio, self.edge_mask_ratio = lambd, atom_mask_ratio, edge_mask_ratio
        self.weights = {"feature": feature_weight, "connectivity": connectivity_weight, "barlow_twins": barlow_weight}
        if element_prototypes not in ELEMENT_PROTOTYPES:
            raise ValueError(f"element_prototypes must be one of {', '.join(ELEMENT_PROTOTYPES)}, not {element_prototypes!r}")
        if element_weight:
            self.weights["element"] = element_weight
            if element_prototypes == "learned":
                self.element_prototypes = nn.Parameter(torch.randn(N_ELEMENTS + 1, width) / width**0.5)
        self.element_temperature, self.prototype_source = element_temperature, element_prototypes

    def element_loss(self, h: torch.Tensor, batch) -> torch.Tensor:
        """The element term on node embeddings ``h [N, F]``: against learned prototypes of every element, or
        against the encoder's own input embeddings of the elements present in the batch."""
        if self.prototype_source == "learned":
            return element_prototype_loss(h, self.element_prototypes, batch.atomic_numbers, self.element_temperature)
        present, index = torch.unique(batch.atomic_numbers, return_inverse=True)
        return element_prototype_loss(h, self.encoder.embed_atoms(present), index, self.element_temperature)

    def reconstruction_losses(self, h: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Node-feature and connectivity losses of node embeddings ``h [N, F]`` against the clean ``batch``."""
        feature = node_feature_loss(self.feature_decoder(h), self.feature_targets.index_select(0, batch.atomic_numbers))
        centre, other, multiplicity = node_pairs(batch)
        pair = torch.sigmoid(self.pair_left(h).index_select(0, centre) * self.pair_right(h).index_select(0, other))
        return feature, connectivity_loss(self.multiplicity_decoder(pair), multiplicity)

    def loss(self, batch):
        graphs = int(batch.num_graphs)
        h_a = self.encoder.node_embeddings(aug.mask_atoms(batch, self.atom_mask_ratio))
        h_b = self.encoder.node_embeddings(aug.mask_edges(batch, self.edge_mask_ratio))
        feature_a, connectivity_a = self.reconstruction_losses(h_a, batch)
        feature_b, connectivity_b = self.reconstruction_losses(h_b, batch)
        node_graph = batch.batch
        terms = {
            "feature": (feature_a + feature_b) / 2,
            "connectivity": (connectivity_a + connectivity_b) / 2,
            "barlow_twins": barlow_twins_loss(mean_pool(h_a, node_graph, graphs),
                                              mean_pool(h_b, node_graph, graphs), self.lambd),
        }
        if "element" in self.weights:
            terms["element"] = self.element_loss(h_a, batch)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        metrics = {name: float(value.detach()) for name, value in terms.items()}
        metrics["loss"] = float(loss.detach())
        return loss, metrics


def element_statistics(table: torch.Tensor, batch) -> torch.Tensor:
    """Mean and (population) std over each crystal's sites of its elements' rows of ``table`` ``[119, D]``:
    ``[G, 2 D]``, the targets of the masked-denoising composition term."""
    return pool_rows(table[batch.atomic_numbers], batch.batch, batch.num_graphs, ("mean", "std"))


class MaskedDenoising(nn.Module):
    r"""Chemistry and geometry in one pass: masked-element prediction, position denoising and strain prediction.

    Each crystal of the batch is corrupted once: every site's element is replaced by the mask token with
    probability ``mask_ratio``; each lattice vector is scaled by :math:`e^{\varepsilon_a}`,
    :math:`\varepsilon_a \sim U(-s, s)` with :math:`s` = ``max_strain``; then every site moves by Gaussian
    noise :math:`\delta_i` of ``noise_std`` Å per Cartesian coordinate (its mean over the crystal removed).
    One encoder pass over the corrupted crystal feeds three heads:

    * elements: an MLP on the final node features of each masked site gives logits over the elements;
      cross-entropy with the true element (:math:`\mathcal{L}_Z`);
    * noise: an MLP on ``[h_i || h_j || e_ij]`` gives a weight per edge, and the predicted displacement of
      site ``i`` is :math:`\hat\delta_i = \mathrm{mean}_j\, w_{ij} \hat r_{ij}` over the unit vectors to its neighbours
      (rotation-equivariant); :math:`\mathcal{L}_\delta = \mathrm{mean}_i \lVert \hat\delta_i - \delta_i \rVert^2 / \sigma^2`;
    * strain: an MLP on the structure vector (the exported readout) predicts
      :math:`\sum_a \varepsilon_a / s` (the log volume change in units of ``max_strain``); squared error
      (:math:`\mathcal{L}_\varepsilon`);
    * composition (off by default): an MLP on the mean, max and std over the sites of the *last* layer predicts
      the mean and (population) std over the sites of the uncorrupted crystal's 92 CGCNN element features,
      masked sites included, as the ``inputs:`` control summarizes them; squared error summed over the 184 values
      (:math:`\mathcal{L}_c`). It reads the last layer, not the whole readout, whose input-layer part is a
      linear image of those statistics: the term asks the convolutions to keep the chemistry they are given.

    .. math:: \mathcal{L} = w_Z \mathcal{L}_Z + w_\delta \mathcal{L}_\delta + w_\varepsilon \mathcal{L}_\varepsilon + w_c \mathcal{L}_c

    with ``element_weight``, ``noise_weight``, ``strain_weight``, ``composition_weight`` (a weight of 0 drops
    its term; the strain is not applied when ``strain_weight`` is 0). This pretext is this project's addition, not one of
    the four papers' methods; it follows denoising pretraining (Zaidi et al., ICLR 2023) and masked-atom
    prediction (Hu et al., ICLR 2020). ``atom_input``, ``readout``, ``atom_fea_len``: as :class:`CrystalTwins`.
    """

    def __init__(self, encoder_config: dict | None = None, mask_ratio: float = 0.15, noise_std: float = 0.1,
                 max_strain: float = 0.05, element_weight: float = 1.0, noise_weight: float = 1.0,
                 strain_weight: float = 1.0, composition_weight: float = 0.0, atom_input: str = "cgcnn92",
                 readout: str = "layers", atom_fea_len: int = 64):
        super().__init__()
        self.encoder = PretrainedEncoder.from_config(encoder_config or cgcnn_config(CRYSTAL_TWINS_ENCODER, atom_input, readout, atom_fea_len))
        width, edge_width = self.encoder.config["atom_fea_len"], self.encoder.distance.num_features
        self.element_head = nn.Sequential(nn.Linear(width, width), nn.Softplus(), nn.Linear(width, N_ELEMENTS + 1))
        self.noise_head = nn.Sequential(nn.Linear(2 * width + edge_width, width), nn.Softplus(), nn.Linear(width, 1))
        self.strain_head = nn.Sequential(nn.Linear(self.encoder.out_features, width), nn.Softplus(), nn.Linear(width, 1))
        if composition_weight:
            self.register_buffer("composition_table", element_table("cgcnn92"))
            n_features = self.composition_table.shape[1]
            self.composition_head = nn.Sequential(nn.Linear(len(POOLS) * width, 2 * width), nn.Softplus(),
                                                  nn.Linear(2 * width, 2 * n_features))
        self.mask_ratio, self.noise_std, self.max_strain = mask_ratio, noise_std, max_strain
        self.weights = {"element": element_weight, "noise": noise_weight, "strain": strain_weight,
                        "composition": composition_weight}

    def corrupt(self, batch):
        """The corrupted batch, the mask ``[N]`` (bool), the displacements ``[N, 3]`` and the log strains ``[G, 3]``."""
        device = batch.frac_coords.device
        masked = aug.mask_atoms(batch, self.mask_ratio)
        hit = (masked.atomic_numbers == MASK_TOKEN) & (batch.atomic_numbers != MASK_TOKEN)
        log_strain = torch.zeros(batch.num_graphs, 3, device=device)
        if self.weights["strain"]:
            log_strain = self.max_strain * (2 * torch.rand(batch.num_graphs, 3, device=device) - 1)
            masked.lattice = batch.lattice * log_strain.exp().unsqueeze(2)
        noise = self.noise_std * torch.randn(batch.frac_coords.shape, device=device)
        noise = noise - mean_pool(noise, batch.batch, batch.num_graphs).index_select(0, batch.batch)
        return aug.displace(masked, noise), hit, noise, log_strain

    def loss(self, batch):
        corrupted, hit, noise, log_strain = self.corrupt(batch)
        layers, edge_attr = self.encoder.node_layers(corrupted)
        h = layers[-1]
        terms = {}
        if self.weights["element"]:
            logits = self.element_head(h[hit])
            terms["element"] = torch.nn.functional.cross_entropy(logits, batch.atomic_numbers[hit]) if hit.any() else h.sum() * 0
        if self.weights["noise"]:
            src, dst = corrupted.edge_index
            vectors = edge_vectors(corrupted)  # from centre i (dst) to neighbour j (src)
            unit = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-6)
            weight = self.noise_head(torch.cat([h.index_select(0, dst), h.index_select(0, src), edge_attr], dim=1))
            predicted = mean_pool(weight * unit, dst, noise.shape[0])
            terms["noise"] = ((predicted - noise) ** 2).sum(1).mean() / self.noise_std**2
        if self.weights["strain"]:
            vector = self.encoder.structure_vector(corrupted, layers, edge_attr)
            target = log_strain.sum(1) / self.max_strain
            terms["strain"] = torch.nn.functional.mse_loss(self.strain_head(vector).squeeze(1), target)
        if self.weights["composition"]:
            target = element_statistics(self.composition_table, batch)
            predicted = self.composition_head(pool_rows(h, batch.batch, batch.num_graphs, POOLS))
            terms["composition"] = ((predicted - target) ** 2).sum(1).mean()
        loss = sum(self.weights[name] * value for name, value in terms.items())
        metrics = {name: float(value.detach()) for name, value in terms.items()}
        if self.weights["element"] and hit.any():
            metrics["element_accuracy"] = float((logits.argmax(1) == batch.atomic_numbers[hit]).float().mean())
        metrics["loss"] = float(loss.detach())
        return loss, metrics


METHODS = {"crystal-twins": CrystalTwins, "crystalclr": CrystalCLR, "cdssl": CDSSL, "crysatom": CrysAtom,
           "masked-denoising": MaskedDenoising}
