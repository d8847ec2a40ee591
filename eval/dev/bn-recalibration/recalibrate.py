"""Recompute the batch-norm running statistics of a CGCNN encoder from clean graphs of the pretraining corpus.

    python eval/dev/bn-recalibration/recalibrate.py --source crystal-twins --out runs/bn/crystal-twins
    python eval/dev/bn-recalibration/recalibrate.py --source masked-denoising --random-seed 0 --out runs/bn/random-0

A study script of eval/dev/bn-recalibration (see its README); weights are unchanged, only the
``running_mean``/``running_var`` buffers are replaced by exact averages over ``--n`` structures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from matssl_featurizers.encoders import PretrainedEncoder
from pretraining.data import GraphDataset, build_graphs, corpus_rows, graph_loader

CORPUS = [f"../shared/data/{name}.jsonl.gz" for name in ("mp_cgcnn", "mp_topology_extra", "castelli_perovskites", "carbon24")]
LAYERS = {"readout": "layers", "pool_edges": True}  # the readout every dev comparison evaluates


def recalibrate(encoder, loader) -> None:
    """Replace every BatchNorm's running statistics by their average over the batches of ``loader``."""
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    encoder.train()
    with torch.no_grad():
        for batch in loader:
            encoder(batch)
    for norm in norms:
        norm.momentum = 0.1
    encoder.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="a bundled model or weights directory")
    p.add_argument("--random-seed", type=int, default=None, help="random weights of the source's architecture instead")
    p.add_argument("--data", nargs="+", default=CORPUS)
    p.add_argument("--exclude", nargs="*", default=["eval/splits/evaluation_ids.txt"])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)

    trained = PretrainedEncoder.from_pretrained(args.source)
    if args.random_seed is None:
        encoder = trained.with_readout(**LAYERS)
    else:
        encoder = trained.random_like(args.random_seed, **LAYERS)
    store = build_graphs(args.data, progress=False)
    rows, _ = corpus_rows(store, args.exclude)
    chosen = np.random.default_rng(0).choice(rows, size=min(args.n, len(rows)), replace=False)
    recalibrate(encoder, graph_loader(GraphDataset(store, chosen), args.batch_size))
    encoder.save_pretrained(args.out)
    print(f"{args.out}: batch-norm statistics of {len(chosen)} clean structures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
