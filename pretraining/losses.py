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


def _log_softmax_over_others(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[2N, 2N]`` matrix of ``log( exp(s_ik / t) / sum_{k' != i} exp(s_ik' / t) )`` with cosine similarity ``s``;
    the diagonal (``k = i``) is ``-inf``."""
    z = torch.nn.functional.normalize(z, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    return logits.log_softmax(dim=1)


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    r"""NT-Xent (Chen et al. 2020; CrystalCLR eq. 1), averaged over the ``2N`` views:

    .. math:: \ell_i = -\log \frac{\exp(\mathrm{sim}(z_i, z_{j(i)}) / \tau)}{\sum_{k \ne i} \exp(\mathrm{sim}(z_i, z_k) / \tau)}

    where ``j(i)`` is the other view of the same crystal and ``sim`` the cosine similarity.
    Shapes: ``z_a, z_b [N, D]`` (row ``n`` of both is crystal ``n``) -> scalar.
    """
    n = z_a.shape[0]
    log_p = _log_softmax_over_others(torch.cat([z_a, z_b]), temperature)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z_a.device)
    return -log_p.gather(1, partner.unsqueeze(1)).mean()


def composition_similarity_loss(z_a: torch.Tensor, z_b: torch.Tensor, elements: torch.Tensor,
                                temperature: float = 0.1) -> torch.Tensor:
    r"""Composition-similarity loss (CrystalCLR eq. 2), averaged over the ``2N`` views:

    .. math:: \ell_i = -\log \Big( \frac{1}{|P(i)|} \sum_{p \in P(i)}
              \frac{\exp(\mathrm{sim}(z_i, z_p) / \tau)}{\sum_{k \ne i} \exp(\mathrm{sim}(z_i, z_k) / \tau)} \Big)

    ``P(i)``: the other views whose crystal shares at least one element with view ``i``'s crystal
    (so it always holds ``i``'s own partner view).
    Shapes: ``z_a, z_b [N, D]``; ``elements [N, 119]`` 0/1 element presence of each crystal -> scalar.
    """
    log_p = _log_softmax_over_others(torch.cat([z_a, z_b]), temperature)
    presence = torch.cat([elements, elements]).to(z_a.dtype)
    positive = (presence @ presence.T) > 0
    positive.fill_diagonal_(False)
    log_p = log_p.masked_fill(~positive, float("-inf"))
    return -(torch.logsumexp(log_p, dim=1) - positive.sum(1).to(z_a.dtype).log()).mean()


def element_prototype_loss(h: torch.Tensor, prototypes: torch.Tensor, elements: torch.Tensor,
                           temperature: float = 0.1) -> torch.Tensor:
    r"""Element identity by cosine similarity to one prototype per element, averaged over nodes:

    .. math:: \ell_i = -\log \frac{\exp(\cos(h_i, p_{Z_i}) / \tau)}{\sum_{Z} \exp(\cos(h_i, p_Z) / \tau)}

    On a masked site the element must come from the environment alone, so elements that occupy the
    same kinds of sites get nearby prototypes; on the others ``h_i`` is drawn towards its element's
    prototype, so per-element means of ``h`` take the prototypes' directions.
    Shapes: ``h [N, F]``, ``prototypes [Z, F]``, ``elements [N]`` (atomic numbers) -> scalar.
    """
    logits = torch.nn.functional.normalize(h, dim=1) @ torch.nn.functional.normalize(prototypes, dim=1).T
    return torch.nn.functional.cross_entropy(logits / temperature, elements)


def node_feature_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Node-feature reconstruction (CrysAtom): binary cross-entropy between decoded logits and the
    0/1 element features of CGCNN, averaged over nodes and features; rows of ``target`` holding NaN
    (elements the table lacks) are left out.

    .. math:: \mathcal{L}_F = -\frac{1}{N K} \sum_{i,k} x_{ik} \log \sigma(\hat x_{ik}) + (1 - x_{ik}) \log(1 - \sigma(\hat x_{ik}))

    Shapes: ``logits, target [N, K]`` -> scalar.
    """
    known = ~torch.isnan(target).any(dim=1)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[known], target[known])


def connectivity_loss(logits: torch.Tensor, multiplicity: torch.Tensor) -> torch.Tensor:
    r"""Connectivity reconstruction (CrysAtom): cross-entropy of the predicted number of edges between
    two nodes (class ``m`` = ``m`` edges, 0 = not connected).

    Shapes: ``logits [P, M + 1]`` (one row per node pair), ``multiplicity [P]`` (long) -> scalar.
    """
    return torch.nn.functional.cross_entropy(logits, multiplicity)
