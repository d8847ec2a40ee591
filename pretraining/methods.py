"""Pretext tasks: each wraps a :mod:`matssl_featurizers.encoders` encoder with what it trains on.

A method is an ``nn.Module`` with an ``encoder`` attribute (what gets exported) and
``loss(batch) -> (loss, metrics)``.
"""

from __future__ import annotations

import torch
from torch import nn

from matssl_featurizers.encoders import N_ELEMENTS, build_encoder
from matssl_featurizers.graphs import edge_lengths, node_graph_index

from . import augmentations as aug
from .losses import barlow_twins_loss, composition_similarity_loss, nt_xent_loss

CRYSTAL_TWINS_ENCODER = {
    "architecture": "cgcnn",
    "atom_input": "cgcnn92",
    "atom_fea_len": 64,
    "n_conv": 3,
    "out_dim": 128,
    "cutoff": 8.0,
    "gaussian_step": 0.2,
}


def projector(in_dim: int, hidden: int, out_dim: int) -> nn.Module:
    """Two-layer MLP head used by the contrastive methods."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class CrystalTwins(nn.Module):
    """Crystal Twins (Magar, Wang & Barati Farimani, npj Comput. Mater. 8, 231, 2022).

    Two views of each crystal, each perturbed by ``perturb_distance`` Å, then atom-masked
    (``atom_mask_ratio``) and edge-masked (``edge_mask_ratio``), go through the encoder and a 2-layer
    projector to ``projection_dim``; the Barlow Twins loss with ``lambd`` pulls their cross-correlation
    towards the identity. Defaults are the paper's.
    """

    def __init__(self, encoder_config: dict | None = None, projection_dim: int = 128, lambd: float = 0.0051,
                 perturb_distance: float = 0.05, atom_mask_ratio: float = 0.1, edge_mask_ratio: float = 0.1):
        super().__init__()
        self.encoder = build_encoder(encoder_config or CRYSTAL_TWINS_ENCODER)
        self.projector = projector(self.encoder.out_dim, projection_dim, projection_dim)
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
    presence[node_graph_index(batch), batch.atomic_numbers] = 1.0
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
    (``"nt-xent+cs"``, the paper's final model), at ``temperature``.
    """

    def __init__(self, encoder_config: dict | None = None, projection_dim: int = 128, loss: str = "nt-xent+cs",
                 temperature: float = 0.1, p_augment: float = 0.5, perturb_fraction: float = 0.5,
                 max_strain: float = 0.05, supercell: int = 0):
        super().__init__()
        if loss not in CLR_LOSSES:
            raise ValueError(f"unknown CrystalCLR loss {loss!r}; choose from {CLR_LOSSES}")
        self.encoder = build_encoder(encoder_config or CRYSTALCLR_ENCODER)
        self.projector = projector(self.encoder.out_dim, projection_dim, projection_dim)
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
    expansion of the clean edge lengths, under mean squared error:

    .. math:: \mathcal{L} = \frac{1}{E K} \sum_k \lVert W e_k(\tilde G) + b - \bar e_k(G) \rVert^2
    """

    def __init__(self, encoder_config: dict | None = None, noise_std: float = 0.1):
        super().__init__()
        self.encoder = build_encoder(encoder_config or CDSSL_ENCODER)
        self.noise_std = noise_std
        self.head = nn.Linear(self.encoder.config["width"], self.encoder.distance.num_features)

    def loss(self, batch):
        with torch.no_grad():
            target = self.encoder.distance(edge_lengths(batch))
        noise = self.noise_std * torch.randn(batch.frac_coords.shape, device=batch.frac_coords.device)
        predicted = self.head(self.encoder.edge_outputs(aug.displace(batch, noise)))
        loss = torch.nn.functional.mse_loss(predicted, target)
        return loss, {"loss": float(loss.detach())}


METHODS = {"crystal-twins": CrystalTwins, "crystalclr": CrystalCLR, "cdssl": CDSSL}
