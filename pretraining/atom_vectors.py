"""Extract CrysAtom atom vectors: each element's node embedding averaged over all its occurrences.

    python -m pretraining.atom_vectors --weights runs/crysatom --data structures.jsonl.gz --out runs/crysatom-vectors

The encoder (exported by ``python -m pretraining.run --method crysatom``) runs in eval mode over every
structure of ``--data`` (less the ids of ``--exclude`` files, e.g. the evaluation rows); the vector of
element Z is the mean of the final node embeddings of all Z sites in the whole corpus (not of the last
batch holding Z). ``--weighting structures`` (this project's option) instead lets every structure count
once: Z's mean within each structure holding Z, averaged over those structures. ``--layers all`` (this
project's option) exports every layer's average instead of the last one alone: the input embedding and
each convolution, each scaled to unit length per element, concatenated. Elements that never occur
get no vector; the card lists them. The card also gives, for the same averages taken after each layer, how
many main-group elements have a same-group nearest neighbour (:mod:`pretraining.evaluation.periodic_groups`). OUT
receives ``atom_vectors.csv`` (see :mod:`matssl_featurizers.atom_vectors`) and ``README.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from matssl_featurizers.atom_vectors import ATOM_VECTORS_NAME, save_atom_vectors
from matssl_featurizers.citations import CRYSATOM_CITATION
from matssl_featurizers.elements import N_ELEMENTS
from matssl_featurizers.encoders import CGCNNEncoder, PretrainedEncoder
from matssl_featurizers.sources import CARD_NAME

from . import card
from .arguments import at_least
from .data import GraphDataset, build_graphs, corpus_rows, graph_loader
from .periodic_groups import same_group_share


WEIGHTINGS = {
    "sites": "every site counts once: the mean over all its sites in the corpus (the paper's average over all occurrences)",
    "structures": "every structure counts once: the element's mean within each structure holding it, averaged over "
                  "those structures (this project's option; an element's many sites in a few large cells do not "
                  "outweigh its other structures)",
}


def layer_sums(encoder, batches, device: str = "cpu", weighting: str = "sites") -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of node embeddings after every layer ``[L + 1, 119, F]`` (float64; the input embedding first,
    the final node embeddings last) and their counts ``[119]`` per atomic number, over every batch: with
    ``weighting="sites"`` the sum and number of an element's sites; with ``"structures"`` the sum of its
    per-structure means and the number of structures holding it."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, not {weighting!r}")
    width = encoder.config["atom_fea_len"]
    sums = torch.zeros(encoder.config["n_conv"] + 1, N_ELEMENTS + 1, width, dtype=torch.float64)
    counts = torch.zeros(N_ELEMENTS + 1, dtype=torch.long)
    encoder.eval()
    with torch.inference_mode():
        for batch in batches:
            layers, _ = encoder.node_layers(batch.to(device))
            z = batch.atomic_numbers.cpu()
            if weighting == "sites":
                for total, h in zip(sums, layers):
                    total.index_add_(0, z, h.double().cpu())
                counts.index_add_(0, z, torch.ones_like(z))
                continue
            pairs, pair = torch.unique(batch.batch.cpu() * (N_ELEMENTS + 1) + z, return_inverse=True)  # (structure, element)
            element = pairs % (N_ELEMENTS + 1)
            sizes = torch.zeros(len(pairs), dtype=torch.float64).index_add_(0, pair, torch.ones(len(z), dtype=torch.float64))
            for total, h in zip(sums, layers):
                means = torch.zeros(len(pairs), width, dtype=torch.float64).index_add_(0, pair, h.double().cpu())
                total.index_add_(0, element, means / sizes[:, None])
            counts.index_add_(0, element, torch.ones_like(element))
    return sums, counts


LAYERS = {
    "last": "the final node embeddings (the paper's)",
    "all": "the averages after every layer (input embedding, then each convolution), each scaled to unit length "
           "per element so that every layer weighs the same in a cosine, concatenated (this project's option)",
}


def vectors_table(sums: torch.Tensor, counts: torch.Tensor) -> pd.DataFrame:
    """The mean vector of every element seen at least once, indexed by symbol (atomic-number order),
    with a ``count`` attribute Series of the counts behind each (sites or structures, see :func:`layer_sums`)."""
    from pymatgen.core import Element

    seen = [z for z in range(1, N_ELEMENTS + 1) if counts[z] > 0]
    means = (sums[seen] / counts[seen].unsqueeze(1)).numpy()
    table = pd.DataFrame(means, index=pd.Index([Element.from_Z(z).symbol for z in seen], name="element"))
    table.attrs["count"] = pd.Series(counts[seen].numpy(), index=table.index)
    return table


def every_layer_table(blocks: list[pd.DataFrame]) -> pd.DataFrame:
    """``layers="all"``: each layer's mean vectors (:func:`vectors_table` of every layer, input embedding first)
    scaled to unit length per element, concatenated in layer order into one ``(L + 1) F``-dim vector per element."""
    arrays = [block.to_numpy() for block in blocks]
    unit = [a / np.linalg.norm(a, axis=1, keepdims=True).clip(min=1e-12) for a in arrays]
    table = pd.DataFrame(np.hstack(unit), index=blocks[0].index)
    table.attrs["count"] = blocks[0].attrs["count"]
    return table


def extract(weights, data, batch_size: int = 256, device: str = "cpu", cache_dir=None, workers: int = 1,
            progress: bool = True, exclude=(), weighting: str = "sites", layers: str = "last") -> pd.DataFrame:
    """Atom vectors of the encoder ``weights`` averaged over the structures of ``data`` without the ids
    listed in the ``exclude`` files, with ``weighting`` (:data:`WEIGHTINGS`; see :func:`vectors_table`), of the
    last layer or of every layer (``layers``, :data:`LAYERS`).
    ``attrs["layer_shares"]``: the same-group nearest-neighbour share of the averages after each layer,
    input embedding first."""
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {', '.join(LAYERS)}, not {layers!r}")
    encoder = PretrainedEncoder.from_pretrained(weights, device=device)
    if not isinstance(encoder, CGCNNEncoder):
        raise ValueError(f"{weights}: atom vectors come from a CGCNN encoder, not {encoder.architecture!r}")
    store = build_graphs(data, cache_dir=cache_dir, workers=workers, progress=progress)
    rows, _ = corpus_rows(store, exclude)
    loader = graph_loader(GraphDataset(store, rows), batch_size)
    batches = tqdm(loader, desc="atom vectors", disable=not progress, unit="batch")
    sums, counts = layer_sums(encoder, batches, device, weighting)
    blocks = [vectors_table(layer, counts) for layer in sums]
    table = blocks[-1] if layers == "last" else every_layer_table(blocks)
    table.attrs["n_structures"], table.attrs["weighting"], table.attrs["layers"] = len(rows), weighting, layers
    table.attrs["layer_shares"] = [same_group_share(block)[0] for block in blocks]
    return table


def coverage(table: pd.DataFrame, up_to: int = 100) -> str:
    """Markdown lines: how many elements have a vector, and which of Z = 1..``up_to`` do not."""
    from pymatgen.core import Element

    missing = [Element.from_Z(z).symbol for z in range(1, up_to + 1) if Element.from_Z(z).symbol not in table.index]
    counts, unit = table.attrs["count"], table.attrs.get("weighting", "sites")
    rare = ", ".join(f"{s} ({n})" for s, n in counts.sort_values().head(10).items())
    behind = (f"over {int(counts.sum())} sites" if unit == "sites" else
              f"per structure over {int(counts.sum())} (structure, element) pairs")
    return (f"- {len(table)} elements have a vector, averaged {behind} of {table.attrs['n_structures']} structures.\n"
            f"- no vector (never in the corpus), among Z = 1-{up_to}: {', '.join(missing) or 'none'}.\n"
            f"- fewest {unit} behind a vector: {rare}.")


def render_card(table: pd.DataFrame, command: str, weights: Path) -> str:
    """The card of an atom-vector table: training of its encoder (from that encoder's card), extraction, coverage."""
    encoder_card = (Path(weights) / CARD_NAME).read_text() if (Path(weights) / CARD_NAME).is_file() else ""
    _, _, training = encoder_card.partition("## Training data")
    training, _, _ = training.partition(card.EVALUATION_HEADING)
    share, count = same_group_share(table)
    options = card.card_options(encoder_card)
    losses = "node-feature and connectivity reconstruction + Barlow Twins" + (
        ", plus this project's element term: see below" if options.get("element_weight") else "")
    layers = table.attrs.get("layer_shares")
    element_note = "\n- " + card.element_term_note(options) if options.get("element_weight") else ""
    every = " after every layer (see Extraction)" if table.attrs.get("layers") == "all" else ""
    by_layer = ("\n- the same share for the averages taken after each layer alone (input embedding, then convolutions "
                f"1-{len(layers) - 1}): " + ", ".join(f"{s:.0%}" for s in layers) + "." if layers else "")
    return f"""---
license: {card.WEIGHTS_LICENSE}
library_name: matssl-featurizers
tags: [materials-science, atom-vectors, self-supervised, matminer, crysatom]
---
# CrysAtom atom vectors

One {table.shape[1]}-dim vector per element: the node embeddings{every} of a CGCNN autoencoder pretrained with
CrysAtom's losses ({losses}) by
`python -m pretraining.run --method crysatom`, averaged per element over every site of the corpus.
Use them with `CrysAtomFeaturizer` (composition statistics) or as fixed encoder inputs
(`atom_input="crysatom"`).

Method: {CRYSATOM_CITATION}

## Encoder data and training (from the encoder's card)
{("## Training data" + training).replace("## ", "### ").strip() if training else "(the encoder directory has no card)"}

## Extraction
- command: `{card.portable(command)}`
- the encoder runs in eval mode on the unmasked structures; each element's vector: {LAYERS[table.attrs.get("layers", "last")]}.
- averaging: {WEIGHTINGS[table.attrs.get("weighting", "sites")]} (the paper's released vectors were
  overwritten by the last batch holding each element).

## Where the method differs from the paper
- The paper's equations for the decoders are not legible in our copy; we reconstruct the 92 binary
  CGCNN element features with a linear layer and binary cross-entropy, and predict the number of
  edges (0-12) between a node pair with a rank-one factorised bilinear layer, a sigmoid, a linear layer
  and a softmax (cross-entropy), on every connected pair and as many random pairs of the same crystal.
- The graph is CGCNN's (12 nearest neighbours within 8 Å), so multiplicities are edges of that graph.
- Barlow Twins ties the two views' mean-pooled node embeddings directly (no projector).{element_note}

## Coverage
{coverage(table)}
- periodic table: for {share:.0%} of the {count} main-group elements the nearest vector (raw cosine) belongs to an
  element of the same group (`python -m pretraining.evaluation.periodic_groups`).{by_layer}

{card.EVALUATION_HEADING}
Not evaluated yet. Run `python -m pretraining.evaluation.evaluate_composition ... --card DIR` to put a random-forest
comparison against other element vectors here.
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.atom_vectors", description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True, type=Path, help="directory exported by pretraining.run --method crysatom")
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--exclude", type=Path, nargs="*", default=[], help="text files of ids (one per line) to leave out")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--weighting", choices=WEIGHTINGS, default="sites",
                   help="sites: every site counts once (the paper's); structures: every structure counts once")
    p.add_argument("--layers", choices=LAYERS, default="last",
                   help="last: the final node embeddings (the paper's); all: every layer's average, each scaled to "
                        "unit length, concatenated")
    p.add_argument("--batch-size", type=at_least(1), default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=at_least(1), default=1)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    command = card.command_line("pretraining.atom_vectors", argv)
    table = extract(args.weights, args.data, args.batch_size, args.device, args.cache_dir, args.workers,
                    not args.no_progress, args.exclude, args.weighting, args.layers)
    save_atom_vectors(table, args.out / ATOM_VECTORS_NAME)
    (args.out / CARD_NAME).write_text(render_card(table, command, args.weights))
    print(coverage(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
