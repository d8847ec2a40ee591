"""Pretext tasks: each wraps a :mod:`matssl_featurizers.encoders` encoder with what it trains on.

A method is an ``nn.Module`` with an ``encoder`` attribute (what gets exported) and
``loss(batch) -> (loss, metrics)``.
"""

from __future__ import annotations

from torch import nn

from matssl_featurizers.encoders import build_encoder

from . import augmentations as aug
from .losses import barlow_twins_loss

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


METHODS = {"crystal-twins": CrystalTwins}
