"""Reference values for reading pretext losses, on the validation split of ``pretraining.run``.

    python -m pretraining.evaluation.pretext_floors --data a.jsonl.gz b.jsonl.gz --batch-size 256 --noise-std 0.1

Give the run's ``--data``, ``--exclude`` and ``--seed`` to get its validation split (``pretraining.run``'s).

* CDSSL: the mean squared error of two trivial denoisers, copying the noisy graph's own edge features
  and predicting the mean clean edge, to compare with the validation loss in the model card.
* masked-denoising, ``--composition-weight``: the composition term of the best constant prediction (the sum
  over its 184 targets of their variance over the validation crystals).
* CrystalCLR: the lowest value the composition-similarity loss can take on these batches (the mean over
  views of log |P(i)|), and the share of structures containing each of the most common elements.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from matssl_featurizers.elements import element_table
from matssl_featurizers.graphs import GaussianDistance, edge_lengths

from .. import augmentations as aug
from ..arguments import at_least
from ..data import GraphDataset, build_graphs, corpus_rows, graph_loader, split_indices
from ..methods import element_presence, element_statistics


def denoising_baselines(loader, noise_std: float, distance: GaussianDistance) -> dict:
    """MSE of copying the noisy edge features, and of predicting the mean clean edge feature."""
    copy_sum, n_values, targets = 0.0, 0, []
    for batch in loader:
        clean = distance(edge_lengths(batch))
        noisy = distance(edge_lengths(aug.displace(batch, noise_std * torch.randn(batch.frac_coords.shape))))
        copy_sum += torch.nn.functional.mse_loss(noisy, clean, reduction="sum").item()
        n_values += clean.numel()
        targets.append(clean)
    target = torch.cat(targets)
    return {"copy_noisy_mse": copy_sum / n_values, "predict_mean_mse": ((target - target.mean(0)) ** 2).mean().item()}


def composition_baseline(loader) -> float:
    """Squared error summed over the targets of the masked-denoising composition term (mean and std over the
    sites of the 92 element features), averaged over crystals, of predicting every crystal the mean target."""
    table = element_table("cgcnn92")
    targets = torch.cat([element_statistics(table, batch) for batch in loader]).double()
    return ((targets - targets.mean(0)) ** 2).sum(1).mean().item()


def composition_similarity_floor(loader) -> float:
    """Mean over the 2N views of each batch of log |P(i)|, the minimum of the composition-similarity loss."""
    total, n_views = 0.0, 0
    for batch in loader:
        presence = element_presence(batch).repeat(2, 1)
        positive = (presence @ presence.T) > 0
        positive.fill_diagonal_(False)
        total += positive.sum(1).double().log().sum().item()
        n_views += positive.shape[0]
    return total / n_views


def element_shares(loader, top: int = 5) -> dict:
    """Share of structures that contain each of the ``top`` most common elements."""
    from pymatgen.core import Element

    counts, n = torch.zeros(119, dtype=torch.float64), 0
    for batch in loader:
        counts += element_presence(batch).sum(0).double()
        n += batch.num_graphs
    order = counts.argsort(descending=True)[:top]
    return {Element.from_Z(int(z)).symbol: counts[z].item() / n for z in order}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.pretext_floors", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--batch-size", type=at_least(2), default=256, help="as in the run (the CS floor depends on it)")
    p.add_argument("--noise-std", type=float, default=0.1)
    p.add_argument("--exclude", type=Path, nargs="*", default=[], help="as in the run: id files left out")
    p.add_argument("--seed", type=int, default=0, help="the run's seed: it picks the validation split")
    args = p.parse_args(argv)

    store = build_graphs(args.data, progress=False)
    rows, _ = corpus_rows(store, args.exclude)
    _, val_idx = split_indices(len(rows), args.seed)
    loader = graph_loader(GraphDataset(store, rows[val_idx]), args.batch_size)
    everything = graph_loader(GraphDataset(store, rows), 1024)
    torch.manual_seed(args.seed)
    report = {
        "n_validation": len(val_idx),
        "cdssl": denoising_baselines(loader, args.noise_std, GaussianDistance(0.0, 8.0, 0.2)),
        "masked_denoising_composition_constant": composition_baseline(loader),
        "crystalclr_cs_floor": composition_similarity_floor(loader),
        "element_shares": element_shares(everything),
    }
    print(json.dumps(report, indent=1))
    return 0 if math.isfinite(report["crystalclr_cs_floor"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
