"""Why Crystal Twins' validation loss sits above its training loss: the pretext loss of the bundled run's last
checkpoint (checkpoints/crystal-twins, epoch 9) on its validation rows and on as many training rows, with the batch
norms on their running statistics (eval mode, as ``pretraining.run`` validates), with the projector's batch norm on
batch statistics, and with every batch norm on batch statistics (as in a training step). No running statistics change.

    python eval/dev/crystal-twins-epochs/validation_batch_norm.py > eval/dev/crystal-twins-epochs/validation_batch_norm.json
"""

import json

import numpy as np
import torch

from pretraining import training_state
from pretraining.data import GraphDataset, build_graphs, corpus_rows, graph_loader, split_indices
from pretraining.methods import METHODS

# the bundled run's corpus, exclusions and seed (its card: --seed 0 and no method option, so the paper's defaults)
FILES = [f"../shared/data/{name}.jsonl.gz" for name in ("mp_cgcnn", "mp_topology_extra", "castelli_perovskites", "carbon24")]
EXCLUDE, SEED = "eval/splits/evaluation_ids.txt", 0


def batch_norms(module, projector_only=False):
    return [m for name, m in module.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            and not (projector_only and name.startswith("encoder"))]


def mean_loss(method, store, indices, mode):
    """Mean pretext loss over full batches of 128; ``mode``: eval, projector-batch or all-batch."""
    method.eval()
    norms = batch_norms(method)
    if mode != "eval":
        for norm in batch_norms(method, projector_only=mode == "projector-batch"):
            norm.train()
    for norm in norms:
        norm.momentum = 0.0  # batch statistics in train mode, running statistics left as they are
    torch.manual_seed(0)  # the same augmented views for every mode
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in graph_loader(GraphDataset(store, indices), 128, drop_last=True):
            loss, _ = method.loss(batch)
            total, count = total + loss.item() * batch.num_graphs, count + batch.num_graphs
    for norm in norms:
        norm.momentum = 0.1
    return total / count


def main():
    method = METHODS["crystal-twins"]()
    state = training_state.load("checkpoints/crystal-twins/training")
    method.load_state_dict(state["method"])
    store = build_graphs(FILES, progress=False)
    rows, _ = corpus_rows(store, [EXCLUDE])
    train_idx, val_idx = (rows[part] for part in split_indices(len(rows), SEED))
    training_sample = np.random.default_rng(1).choice(train_idx, size=len(val_idx), replace=False)
    out = {"checkpoint_epoch": state["epoch"], "logged": {k: state["history"][-1][k] for k in ("train_loss", "val_loss")}}
    for split, indices in (("validation", val_idx), ("training sample", training_sample)):
        for mode in ("eval", "projector-batch", "all-batch"):
            out[f"{split}, {mode}"] = round(mean_loss(method, store, indices, mode), 4)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
