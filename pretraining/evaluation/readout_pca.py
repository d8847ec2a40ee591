"""Fit the principal components of an encoder's structure vectors on its pretraining corpus and store them
with its weights, so that featurizers can return a short structure block (``n_components``).

    python -m pretraining.evaluation.readout_pca runs/md --data ../shared/data/mp_cgcnn.jsonl.gz ... \\
        --exclude eval/splits/evaluation_ids.txt --sample 20000 --components 64

The vectors of ``--sample`` structures drawn with ``--seed`` (after ``--exclude``) are standardised (each
feature by its mean and standard deviation over the sample) and the top ``--components`` eigenvectors of
their correlation matrix kept: the encoder's ``readout_components`` buffers
(:class:`matssl_featurizers.readouts.PrincipalComponents`). MODEL is rewritten in place (config, tensors, checksums)
and its card gets a "Principal components" section with the explained variance.

``--readout layers`` first rebuilds MODEL with that parameter-free readout of the same trained weights
(the tensors only the old readout had are dropped), e.g. for a cdssl run trained through Set2Set whose
``layers`` vector was chosen on the dev split; the card's section says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.sources import CARD_NAME

from ..arguments import at_least
from ..card import command_line, describe_encoder, portable, set_section
from ..data import GraphDataset, build_graphs, corpus_rows, graph_loader
from .featurizer_names import readout_changes

SECTION = "## Principal components"


def principal_components(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(center [D], scale [D], basis [D, k], explained [k])`` of ``vectors [n, D]``: the top-``k`` eigenvectors
    of the correlation matrix (features with no variance get scale 1 and contribute nothing), each signed so
    that its largest entry is positive, and the share of the total variance each explains."""
    center = vectors.mean(axis=0)
    scale = vectors.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    z = (vectors - center) / scale
    values, vectors_ = np.linalg.eigh(z.T @ z / len(z))
    order = np.argsort(values)[::-1][:k]
    basis = vectors_[:, order]
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])
    return center, scale, basis, values[order] / values.sum()


def readout_vectors(encoder, store, rows: np.ndarray, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """The structure vectors ``[len(rows), D]`` (float64) of the graphs ``rows`` of ``store``."""
    out = []
    with torch.inference_mode():
        for batch in tqdm(graph_loader(GraphDataset(store, rows), batch_size), desc="structure vectors", disable=not progress):
            out.append(encoder(batch).double().numpy())
    return np.concatenate(out)


def with_components(trained: PretrainedEncoder, center, scale, basis) -> PretrainedEncoder:
    """``trained`` rebuilt with ``readout_components = basis.shape[1]`` and these buffers (same metadata and card,
    but not the fingerprints of earlier file formats: those were other weights' once the components change)."""
    encoder = PretrainedEncoder.from_config({**trained.config, "readout_components": basis.shape[1]})
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith("principal_components.")}
    state.update({"principal_components.center": torch.tensor(center, dtype=torch.float32),
                  "principal_components.scale": torch.tensor(scale, dtype=torch.float32),
                  "principal_components.basis": torch.tensor(basis, dtype=torch.float32)})
    encoder.load_state_dict(state)
    provenance = {k: v for k, v in trained.info.provenance.items() if k != "earlier_fingerprints"}
    encoder.info, encoder.card = dataclasses.replace(trained.info, provenance=provenance), trained.card
    return encoder.eval()


def card_section(command: str, n: int, explained: np.ndarray, rebuilt: str = "") -> str:
    cumulative = np.cumsum(explained)
    marks = ", ".join(f"{k}: {cumulative[k - 1]:.0%}" for k in (8, 16, 32, 64, 128) if k <= len(explained))
    return (f"`{portable(command)}`\n\n{rebuilt}{len(explained)} principal components of the standardised structure "
            f"vector, fitted on {n} pretraining structures; share of the variance explained by the first k: {marks}.\n")


def rebuild_readout(model: Path, readout: str) -> str:
    """Rewrite MODEL with the parameter-free ``readout`` of its weights; the sentence the card gets."""
    trained = PretrainedEncoder.from_pretrained(model)
    if trained.config["readout"] == readout:
        return ""
    try:
        encoder = trained.with_readout(**readout_changes(readout))
    except ValueError as err:
        raise SystemExit(f"{model}: {err}") from None
    encoder.card = trained.card
    encoder.save_pretrained(model)
    return (f"Readout rebuilt as `{readout}` from the trained weights (the run trained and exported "
            f"`{trained.config['readout']}`, whose own tensors are dropped). ")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.readout_pca", description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="an exported model directory (rewritten in place)")
    p.add_argument("--data", nargs="+", required=True, help="the pretraining corpus")
    p.add_argument("--exclude", type=Path, nargs="*", default=[], help="id files to leave out (as in pretraining.run)")
    p.add_argument("--sample", type=at_least(2), default=20000, help="structures to fit on (default: %(default)s)")
    p.add_argument("--components", type=at_least(1), default=64, help="components to keep (default: %(default)s)")
    p.add_argument("--readout", default=None, help="first rebuild MODEL with this parameter-free readout (layers)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    command = command_line("pretraining.evaluation.readout_pca", argv)
    store = build_graphs(args.data, cache_dir=args.cache_dir, progress=not args.no_progress)
    rows, _ = corpus_rows(store, args.exclude)
    rows = np.sort(np.random.default_rng(args.seed).permutation(rows)[: args.sample])
    rebuilt = rebuild_readout(args.model, args.readout) if args.readout else ""
    encoder = PretrainedEncoder.from_pretrained(args.model)
    vectors = readout_vectors(encoder, store, rows, progress=not args.no_progress)
    if args.components > vectors.shape[1]:
        sys.exit(f"--components {args.components} exceeds the vector length {vectors.shape[1]}")
    center, scale, basis, explained = principal_components(vectors, args.components)
    final = with_components(encoder, center, scale, basis)
    final.save_pretrained(args.model)
    card_path = args.model / CARD_NAME
    if final.card is None:
        card_path.write_text(f"# {args.model.name}\n")
    describe_encoder(card_path, final)
    set_section(card_path, SECTION, card_section(command, len(rows), explained, rebuilt))
    print(f"{args.model}: {args.components} components of {vectors.shape[1]} from {len(rows)} structures; "
          f"first 8 explain {explained[:8].sum():.0%}, all {explained.sum():.0%} of the variance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
