"""Self-supervised losses."""

from __future__ import annotations

import torch


def cross_correlation(z_a: torch.Tensor, z_b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""Cross-correlation matrix of two views over the batch, ``[B, D] x [B, D] -> [D, D]``:

    .. math:: C_{ij} = \frac{1}{B} \sum_b \hat z^A_{b,i} \hat z^B_{b,j}

    where :math:`\hat z` is standardised per dimension over the batch (zero mean, unit variance),
    as in Zbontar et al. (2021) and Crystal Twins eq. 4.
    """
    n = z_a.shape[0]
    z_a = (z_a - z_a.mean(0)) / (z_a.std(0, unbiased=False) + eps)
    z_b = (z_b - z_b.mean(0)) / (z_b.std(0, unbiased=False) + eps)
    return z_a.T @ z_b / n


def barlow_twins_loss(z_a: torch.Tensor, z_b: torch.Tensor, lambd: float = 0.0051) -> torch.Tensor:
    r"""Barlow Twins loss (Zbontar et al. 2021; Crystal Twins eq. 3):

    .. math:: \mathcal{L}_{BT} = \sum_i (1 - C_{ii})^2 + \lambda \sum_i \sum_{j \ne i} C_{ij}^2

    Shapes: ``z_a, z_b [B, D]`` (projector outputs of two views) -> scalar.
    """
    c = cross_correlation(z_a, z_b)
    diagonal = torch.diagonal(c)
    on_diagonal = (1 - diagonal).pow(2).sum()
    off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diagonal + lambd * off_diagonal
