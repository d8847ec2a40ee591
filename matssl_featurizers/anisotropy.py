"""Shell anisotropy: how far the neighbours of each site are from cubic symmetry, without any weights."""

from __future__ import annotations

import numpy as np
import torch

from .base import GraphFeaturizer
from .citations import CGCNN_CITATION
from .graphs import GaussianDistance, collate_arrays, edge_vectors
from .params import integer, number
from .readouts import POOLS, pool_rows
from .runtime import torch_threads


def shell_anisotropy(batch, expansion: GaussianDistance) -> torch.Tensor:
    r"""Per site :math:`i` and distance shell :math:`k`, the size of the traceless second moment of the
    directions to its neighbours:

    .. math:: a_{ik} = \Big\lVert \sum_{j \in N(i)} e_k(d_{ij})
              \big(\hat r_{ij} \hat r_{ij}^{\top} - \tfrac{1}{3} I\big) \Big\rVert_F

    where :math:`e_k` is the Gaussian expansion of the encoders' edge lengths. It is zero where the
    neighbours of a shell sit with cubic symmetry about the site, and up to a radial factor it is the
    point-charge electric-field gradient of that shell; distances alone cannot tell such arrangements apart.
    Shapes: a batch with ``N`` sites and ``E`` edges -> ``[N, K]``.
    """
    vectors = edge_vectors(batch)
    lengths = vectors.norm(dim=-1)
    unit = vectors / lengths.clamp(min=1e-9).unsqueeze(-1)
    traceless = unit.unsqueeze(2) * unit.unsqueeze(1) - torch.eye(3, dtype=unit.dtype) / 3  # [E, 3, 3]
    weights = expansion(lengths)  # [E, K]
    moments = torch.zeros(batch.atomic_numbers.shape[0], weights.shape[1], 9, dtype=unit.dtype)
    moments.index_add_(0, batch.edge_index[1], weights.unsqueeze(2) * traceless.reshape(-1, 1, 9))
    return moments.norm(dim=2)


class ShellAnisotropy(GraphFeaturizer):
    """Mean, maximum and standard deviation over the sites of :func:`shell_anisotropy`, over every neighbour
    within ``cutoff`` Å, in Gaussian shells ``gaussian_step`` Å apart (the encoders' edge expansion):
    3 x 31 values for the defaults. Parameter-free: a geometric companion (and control) for the pretrained
    features, not a learned one. It reads every neighbour, not the encoders' 12 nearest: cutting a shell of
    equidistant neighbours in two would make a cubic site look anisotropic.

    Args:
        cutoff: neighbour search radius in Å.
        max_neighbors: keep only this many nearest neighbours per site (``None``: all within ``cutoff``).
        gaussian_step: spacing and width of the Gaussian shells in Å.
        batch_size: structures per batch of ``featurize_many``.
        n_threads: torch threads while featurizing (default 1, as the encoders'; ``None``: torch's setting).
    """

    _parameter_checks = {"cutoff": number(0), "max_neighbors": integer(1, allow_none=True),
                         "gaussian_step": number(0), "batch_size": integer(1), "n_threads": integer(1, allow_none=True)}

    def __init__(self, cutoff: float = 6.0, max_neighbors: int | None = None, gaussian_step: float = 0.2,
                 batch_size: int = 64, n_threads: int | None = 1):
        self.cutoff = cutoff
        self.max_neighbors = max_neighbors
        self.gaussian_step = gaussian_step
        self.batch_size = batch_size
        self.n_threads = n_threads

    def _expansion(self) -> GaussianDistance:
        return self._cached("expansion", (self.cutoff, self.gaussian_step),
                            lambda: GaussianDistance(0.0, self.cutoff, self.gaussian_step))

    def _prepare(self) -> None:
        self._cached("checked", tuple(sorted(self.get_params().items())), self._check_params)

    def _graph_settings(self) -> dict:
        return {"cutoff": self.cutoff, "max_neighbors": self.max_neighbors}

    def _forward(self, graphs: list[dict]) -> np.ndarray:
        batch = collate_arrays(graphs)
        with torch.inference_mode(), torch_threads(self.n_threads):
            sites = shell_anisotropy(batch, self._expansion())
            return pool_rows(sites, batch.batch, batch.num_graphs, POOLS).double().numpy()

    def feature_labels(self):
        self._prepare()
        centers = self._expansion().centers.tolist()
        return [f"shell anisotropy {pool} {center:.1f} A" for pool in POOLS for center in centers]

    def citations(self):
        return [CGCNN_CITATION]
