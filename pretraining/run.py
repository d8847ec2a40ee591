"""Pretrain a crystal encoder without labels and export it for the featurizers.

    python -m pretraining.run --method crystal-twins --data structures.jsonl.gz --device cuda --out runs/ct

Methods: ``crystal-twins`` (Barlow Twins), ``crystalclr`` (NT-Xent + composition similarity),
``cdssl`` (denoising, MEGNet), ``crysatom`` (atom vectors), ``masked-denoising`` (masked elements +
position noise + strain); see :mod:`pretraining.methods`. ``--epochs``, ``--batch-size`` and ``--lr``
default to the settings of the bundled weights (:data:`TRAINING_DEFAULTS`); the learning rate warms up
linearly and decays as a cosine to 0 at ``--epochs``.

OUT receives ``config.json`` + ``model.safetensors`` + ``README.md`` (model card) of the
best epoch (lowest validation pretext loss; ``--export last``: the last epoch); ``OUT/training/`` holds ``metrics.jsonl`` (one line
per epoch) and the state for ``--resume`` (``state.json`` + a safetensors file, no pickle:
:mod:`pretraining.training_state`), which continues the same learning-rate curve; ``--time-limit`` stops a run
between epochs so that a later ``--resume`` goes on.

``torchrun --nproc_per_node K -m pretraining.run ...`` trains data-parallel over K processes
(:mod:`pretraining.distributed`); ``--amp`` trains under bf16 autocast.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

import matssl_featurizers
from matssl_featurizers.citations import METHOD_CITATIONS
from matssl_featurizers.encoders import ModelInfo, PretrainedEncoder
from matssl_featurizers.runtime import idle_cores
from matssl_featurizers.sources import CARD_NAME, CHECKSUMS_NAME, CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME

from . import card, distributed, training_state
from .arguments import at_least, positive_float
from .data import GraphDataset, build_graphs, corpus_rows, graph_loader, split_indices
from .methods import ELEMENT_PROTOTYPES, METHODS

TRAINING_DEFAULTS = {  # the settings that produced the bundled weights
    "crystal-twins": {"epochs": 9, "batch_size": 128, "lr": 5e-4},
    "crystalclr": {"epochs": 10, "batch_size": 256, "lr": 5e-4},
    "cdssl": {"epochs": 45, "batch_size": 128, "lr": 1e-3},
    "crysatom": {"epochs": 3, "batch_size": 128, "lr": 1e-3},  # the bundled vectors' run stopped after epoch 1 of 3
    "masked-denoising": {"epochs": 20, "batch_size": 128, "lr": 1e-3},
}


class NonFiniteLoss(RuntimeError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pretraining.run", description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True, choices=sorted(TRAINING_DEFAULTS))
    p.add_argument("--data", required=True, nargs="+", help="JSON Lines, a folder of CIF/POSCAR files, or a DataFrame file")
    p.add_argument("--structure-column", default=None, help="structure column of a DataFrame file (default: found)")
    p.add_argument("--exclude", type=Path, nargs="*", default=[],
                   help="text files of ids (one per line) to leave out, e.g. the evaluation rows written by "
                        "`python -m pretraining.evaluation.exclusions`")
    p.add_argument("--epochs", type=at_least(1), default=None, help="length of the learning-rate schedule (default: per method, "
                   + ", ".join(f"{m} {d['epochs']}" for m, d in TRAINING_DEFAULTS.items()) + ")")
    p.add_argument("--batch-size", type=at_least(1), default=None, help="default: per method, "
                   + ", ".join(f"{m} {d['batch_size']}" for m, d in TRAINING_DEFAULTS.items()))
    p.add_argument("--lr", type=positive_float, default=None, help="peak Adam learning rate (default: per method, "
                   + ", ".join(f"{m} {d['lr']:g}" for m, d in TRAINING_DEFAULTS.items()) + ")")
    p.add_argument("--warmup-epochs", type=float, default=0.5,
                   help="linear warm-up, then cosine decay to 0 at the end of --epochs (default: %(default)s)")
    p.add_argument("--constant-lr", action="store_true", help="no warm-up or decay")
    p.add_argument("--time-limit", type=positive_float, default=None,
                   help="hours of training, counted from the first epoch (reading data and building graphs come first): "
                        "do not start an epoch that would end after this; continue later with --resume")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--amp", action="store_true", help="mixed precision: bf16 autocast (meant for CUDA)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue from the state in OUT/training/ (state.json + safetensors)")
    p.add_argument("--export", choices=("best", "last"), default="best",
                   help="which epoch's encoder to write: the lowest validation pretext loss (default) or the last one, "
                        "for pretexts whose validation loss does not follow the quality of the features; "
                        "--resume on a finished run re-exports with this choice")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=at_least(1), default=1, help="processes building graphs")
    p.add_argument("--threads", type=at_least(1), default=None,
                   help="torch threads per process (default: the cores no other process is using when the run starts, "
                        "divided among the processes of this machine; see docs/pretraining.md)")
    p.add_argument("--cache-dir", type=Path, default=None, help="graph cache (default ~/.cache/matssl_featurizers/graphs)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable entry instead of skipping it")
    p.add_argument("--limit", type=at_least(1), default=None, help="read only the first N entries of --data (quick runs)")
    method_options = p.add_argument_group("method options (default: the paper's, or the model card's choice)")
    method_options.add_argument("--perturb-distance", type=float, default=None, help="crystal-twins: Å each site moves in a view")
    method_options.add_argument("--atom-mask-ratio", type=float, default=None, help="crystal-twins, crysatom")
    method_options.add_argument("--edge-mask-ratio", type=float, default=None, help="crystal-twins, crysatom")
    method_options.add_argument("--lambd", type=float, default=None, help="crystal-twins, crysatom: Barlow Twins off-diagonal weight")
    method_options.add_argument("--loss", default=None, help="crystalclr: nt-xent or nt-xent+cs")
    method_options.add_argument("--temperature", type=float, default=None, help="crystalclr: NT-Xent temperature")
    method_options.add_argument("--p-augment", type=float, default=None, help="crystalclr: probability of each augmentation")
    method_options.add_argument("--perturb-fraction", type=float, default=None,
                                help="crystalclr: largest site move, as a fraction of the shortest interatomic distance")
    method_options.add_argument("--max-strain", type=float, default=None,
                                help="crystalclr, masked-denoising: largest strain per lattice vector")
    method_options.add_argument("--supercell", type=int, default=None, help="crystalclr: make every view an NxNxN supercell")
    method_options.add_argument("--noise-std", type=float, default=None,
                                help="cdssl, masked-denoising: Å, Gaussian noise per Cartesian coordinate")
    method_options.add_argument("--graph-weight", type=float, default=None,
                                help="cdssl: weight of the structure-vector head (mean clean edge expansion)")
    method_options.add_argument("--readout", default=None,
                                help="the encoder's structure vector: layers or head (CGCNN methods), set2set or layers (cdssl)")
    method_options.add_argument("--mask-ratio", type=float, default=None, help="masked-denoising: share of masked elements")
    method_options.add_argument("--element-weight", type=float, default=None,
                                help="masked-denoising, crysatom: weight of element prediction (crysatom: 0, the paper's, by default)")
    method_options.add_argument("--element-temperature", type=float, default=None,
                                help="crysatom: temperature of the element-prototype term")
    method_options.add_argument("--element-prototypes", default=None, choices=ELEMENT_PROTOTYPES,
                                help="crysatom: learned (one free vector per element) or inputs (the encoder's input embeddings)")
    method_options.add_argument("--noise-weight", type=float, default=None, help="masked-denoising: weight of noise prediction")
    method_options.add_argument("--strain-weight", type=float, default=None,
                                help="masked-denoising: weight of strain prediction (0: no strain applied)")
    method_options.add_argument("--composition-weight", type=float, default=None,
                                help="masked-denoising: weight of predicting the element-feature statistics from the last layer (default 0)")
    method_options.add_argument("--atom-input", default=None,
                                help="crystal-twins, crystalclr, crysatom: fixed element inputs, cgcnn92 or crysatom")
    method_options.add_argument("--atom-fea-len", type=int, default=None,
                                help="crystal-twins, crystalclr, masked-denoising: width of the CGCNN node features (64)")
    method_options.add_argument("--atom-dim", type=int, default=None, help="crysatom: length of the node embeddings (atom vectors)")
    method_options.add_argument("--feature-weight", type=float, default=None, help="crysatom: weight of node-feature reconstruction")
    method_options.add_argument("--connectivity-weight", type=float, default=None, help="crysatom: weight of connectivity reconstruction")
    method_options.add_argument("--barlow-weight", type=float, default=None, help="crysatom: weight of Barlow Twins")
    method_options.add_argument("--decoder-hidden", type=int, default=None, help="crysatom: units of the bilinear connectivity decoder")
    p.add_argument("--name", default=None, help="model name in the card (default: the method)")
    p.add_argument("--push-to-hub", metavar="OWNER/REPO", default=None, help="upload OUT to the Hugging Face Hub")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


METHOD_OPTIONS = ("perturb_distance", "atom_mask_ratio", "edge_mask_ratio", "lambd", "loss", "temperature", "p_augment",
                  "perturb_fraction", "max_strain", "supercell", "noise_std", "graph_weight", "readout", "mask_ratio",
                  "element_weight", "noise_weight", "strain_weight", "composition_weight", "atom_input", "atom_dim", "feature_weight",
                  "connectivity_weight", "barlow_weight", "decoder_hidden", "element_temperature",
                  "element_prototypes", "atom_fea_len")


def method_kwargs(args) -> dict:
    """The method options given on the command line (the rest keep the method's defaults).

    Raises ``SystemExit`` for an option the chosen method does not have.
    """
    given = {k: getattr(args, k) for k in METHOD_OPTIONS if getattr(args, k, None) is not None}
    accepted = inspect.signature(METHODS[args.method]).parameters
    wrong = sorted(k for k in given if k not in accepted)
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        sys.exit(f"{flags}: not an option of --method {args.method}")
    return given


def method_settings(args) -> dict:
    """Every option of the method as used: its defaults, overridden by the command line."""
    parameters = inspect.signature(METHODS[args.method]).parameters
    settings = {k: p.default for k, p in parameters.items() if k != "encoder_config"}
    settings.update(method_kwargs(args))
    return settings


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up from ``peak / warmup_steps`` to ``peak`` over ``warmup_steps``, then cosine decay to 0
    at ``total_steps``: a function of the optimizer step alone, so a resumed run continues the same curve."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def training_settings(args) -> argparse.Namespace:
    """``args`` with the method's :data:`TRAINING_DEFAULTS` where ``--epochs``, ``--batch-size``, ``--lr`` are not given."""
    for key, value in TRAINING_DEFAULTS[args.method].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _loader(dataset, batch_size, shuffle, seed, sampler=None):
    generator = torch.Generator().manual_seed(seed)
    # drop_last keeps batch statistics well defined for the losses that normalise over the batch
    size = len(dataset) if sampler is None else len(sampler)
    return graph_loader(dataset, batch_size, shuffle=shuffle and sampler is None, generator=generator, sampler=sampler,
                        drop_last=shuffle and size > batch_size)


def run_epoch(model, loader, device, optimizer=None, progress=True, desc="", world=None, amp=False, schedule=None) -> dict:
    """Mean pretext loss (``"loss"``) and the method's other metrics over ``loader`` (over all ranks'
    loaders when distributed); trains when an ``optimizer`` is given. ``model(batch)`` returns
    ``(loss, metrics)`` (:func:`pretraining.distributed.wrap`); ``amp`` runs it under bf16 autocast.
    ``schedule()``, when given, returns the learning rate of the next optimizer step."""
    world = world or distributed.World(torch.device(device))
    model.train(optimizer is not None)
    totals, count = {}, 0
    with torch.set_grad_enabled(optimizer is not None):
        bar = tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch")
        for batch in bar:
            if batch.num_graphs < 2:
                continue
            batch = batch.to(device)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                loss, metrics = model(batch)
            if not distributed.all_finite(loss, world):
                raise NonFiniteLoss(f"{desc}: the loss became {loss.item()}")
            if optimizer is not None:
                if schedule is not None:
                    for group in optimizer.param_groups:
                        group["lr"] = schedule()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value * batch.num_graphs
            count += batch.num_graphs
            bar.set_postfix(loss=f"{totals['loss'] / count:.4f}")
    totals, count = distributed.sum_over_ranks(totals, count, world)
    return {key: value / max(count, 1) for key, value in totals.items()} or {"loss": math.nan}


def push_to_hub(out: Path, repo_id: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(out), repo_id=repo_id,
                      allow_patterns=[CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME, CARD_NAME, CHECKSUMS_NAME,
                                      "training/metrics.jsonl"])


def chosen_epoch(args, method, best: dict, history: list[dict]) -> dict:
    """The epoch ``--export`` asks for: ``best`` (lowest validation loss) or the last one, whose encoder is ``method``'s."""
    if args.export == "best":
        return best
    return {"epoch": history[-1]["epoch"], "val_loss": history[-1]["val_loss"], "encoder": method.encoder.state_dict()}


def export(args, method, chosen, history, data_info, options, commands) -> None:
    """Write the encoder of the ``chosen`` epoch, with its model card and provenance, to ``args.out``."""
    exported = PretrainedEncoder.from_config(method.encoder.config)
    exported.load_state_dict(chosen["encoder"])
    card_path = args.out / CARD_NAME
    evaluation = card.evaluation_of(card_path) if card_path.exists() else card.EVALUATION_PLACEHOLDER
    exported.card = card.render(name=args.name or args.method, method=args.method,
                                citation="; ".join(METHOD_CITATIONS.get(args.method, [])), commands=commands,
                                data=data_info, options=options, history=history, exported_epoch=chosen["epoch"],
                                encoder=exported, evaluation=evaluation, export=args.export)
    exported.info = ModelInfo(method=args.method, cutoff=exported.info.cutoff, provenance={
        "data": dict(data_info["files"]), "n_structures": data_info["n_structures"], "epoch": chosen["epoch"],
        "epochs": args.epochs, "commands": commands, "library": f"matssl-featurizers {matssl_featurizers.__version__}"})
    exported.save_pretrained(args.out)


def torch_thread_count(requested: int | None) -> int:
    """``--threads``, or the idle cores of this machine shared among its training processes (torchrun's
    ``LOCAL_WORLD_SIZE``): measured on 2 cores, 2 threads train 1.8x faster than 1 on a quiet machine and 50x slower
    than 1 beside another busy process (docs/pretraining.md)."""
    if requested is not None:
        return requested
    return max(1, idle_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def main(argv=None) -> int:
    args = training_settings(parse_args(argv))
    args.threads = torch_thread_count(args.threads)  # before any work of ours loads the machine
    torch.set_num_threads(args.threads)
    world = distributed.setup(args.device)
    try:
        return pretrain(args, world, sys.argv[1:] if argv is None else argv)
    finally:
        distributed.teardown(world)


def _launcher(world) -> str:
    if not world.distributed:
        return "python -m pretraining.run"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world.size))
    nodes = f"--nnodes {world.size // per_node} " if per_node != world.size else ""
    return f"torchrun {nodes}--nproc_per_node {per_node} -m pretraining.run"


def pretrain(args, world, argv) -> int:
    """The run of :func:`main` in one process of ``world`` (rank 0 alone writes and prints)."""
    commands = [_launcher(world) + " " + " ".join(card.shell_word(a) for a in argv)]
    progress = not args.no_progress and world.main
    log = partial(print, file=sys.stderr) if world.main else (lambda *_: None)
    log(f"torch threads per process: {args.threads}" + ("" if "--threads" in argv else " (the idle cores; --threads to choose)"))
    device = world.device
    out, training = args.out, args.out / "training"
    training.mkdir(parents=True, exist_ok=True)
    metrics_path, pickled = training / "metrics.jsonl", training / training_state.PICKLED_NAME
    if training_state.exists(training):
        if not args.resume:
            sys.exit(f"{training / training_state.STATE_NAME} exists: pass --resume to continue that run, or choose another --out")
    elif pickled.exists():
        sys.exit(f"{pickled} is a pickled checkpoint of an earlier version, and pickled checkpoints are no longer read: "
                 "start the run again with another --out")

    if world.local_rank != 0:  # the first process of each machine builds the graph cache, the others read it
        distributed.barrier(world)
    store = build_graphs(args.data, cache_dir=args.cache_dir, workers=args.workers, strict=args.strict,
                         structure_column=args.structure_column, progress=progress, limit=args.limit)
    if world.local_rank == 0:
        distributed.barrier(world)
    rows, left_out = corpus_rows(store, args.exclude)
    n = len(rows)
    if n < 4:
        sys.exit(f"only {n} readable structures in {args.data}: need at least 4")
    train_idx, val_idx = (rows[part] for part in split_indices(n, args.seed))
    log(f"{len(store)} structures ({store.skipped} unreadable skipped, {left_out['n_duplicate_ids']} repeated ids and "
        f"{left_out['n_excluded']} excluded ids left out); using {n}: {len(train_idx)} train, {len(val_idx)} validation"
        + (f"; {world.size} processes" if world.distributed else ""))

    torch.manual_seed(args.seed)
    method = METHODS[args.method](**method_kwargs(args)).to(device)
    model, evaluator = distributed.wrap(method, world), distributed.LossModule(method)
    optimizer = torch.optim.Adam(method.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    history, start_epoch, best, step = [], 1, {"val_loss": math.inf, "epoch": 0, "encoder": None}, 0
    if args.resume and training_state.exists(training):
        state = training_state.load(training)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, step = state["history"], state["best"], state["step"]
        commands = state["commands"] + commands
        start_epoch = state["epoch"] + 1
        log(f"resuming after epoch {state['epoch']} (optimizer step {step})")

    used = np.bincount(store.source[rows], minlength=len(args.data))  # structures used, per --data file
    data_info = {"files": [[Path(p).name, int(k)] for p, k in zip(args.data, used) if k],
                 "n_structures": n, "n_skipped": store.skipped,
                 "n_train": len(train_idx), "n_val": len(val_idx), **left_out,
                 "exclude": [Path(p).name for p in args.exclude]}
    options = {k: v for k, v in vars(args).items()
               if k in ("epochs", "batch_size", "lr", "warmup_epochs", "constant_lr", "weight_decay", "seed", "limit")}
    options.update(method_settings(args))
    if world.distributed:
        options["processes"] = world.size
    if args.amp:
        options["amp"] = "bf16"
    train_set = GraphDataset(store, train_idx)
    val_set = GraphDataset(store, val_idx[world.rank::world.size])  # each rank validates its share
    sampler = DistributedSampler(train_set, world.size, world.rank, seed=args.seed) if world.distributed else None
    per_rank = len(train_set) if sampler is None else len(sampler)
    steps_per_epoch = per_rank // args.batch_size if per_rank > args.batch_size else 1
    total_steps, warmup_steps = args.epochs * steps_per_epoch, int(round(args.warmup_epochs * steps_per_epoch))

    def schedule() -> float:
        nonlocal step
        step += 1
        return args.lr if args.constant_lr else learning_rate(step - 1, total_steps, warmup_steps, args.lr)

    started_run = time.perf_counter()
    for epoch in range(start_epoch, args.epochs + 1):
        if args.time_limit is not None and history:
            if time.perf_counter() - started_run + history[-1]["seconds"] > args.time_limit * 3600:
                log(f"stopping before epoch {epoch}: it would end after --time-limit {args.time_limit} h; "
                    "continue with the same command and --resume")
                break
        # augmentations: a resumed epoch replays exactly; each rank draws its own
        torch.manual_seed(args.seed * 100_003 + epoch + 1_000_003 * world.rank)
        if sampler is not None:
            sampler.set_epoch(epoch)
        started = time.perf_counter()
        try:
            train = run_epoch(model, _loader(train_set, args.batch_size, True, args.seed + epoch, sampler), device,
                              optimizer, progress, f"epoch {epoch}/{args.epochs} train", world, args.amp, schedule)
            distributed.broadcast_buffers(method, world)
            torch.manual_seed(args.seed)  # the same validation views every epoch
            val = run_epoch(evaluator, _loader(val_set, args.batch_size, False, 0), device, None, progress,
                            f"epoch {epoch}/{args.epochs} validation", world, args.amp)
        except NonFiniteLoss as err:
            sys.exit(f"stopping: {err}. The state after epoch {epoch - 1}, the last good one, is kept in {training}; "
                     "try a lower --lr." if world.main else 1)
        seconds = time.perf_counter() - started
        val_loss = val["loss"]
        record = {"epoch": epoch, "train_loss": train["loss"], "val_loss": val_loss, "seconds": seconds,
                  "structures_per_second": (len(train_idx) + len(val_idx)) / seconds,
                  "lr": optimizer.param_groups[0]["lr"]}
        record.update({f"train_{k}": v for k, v in train.items() if k != "loss"})
        record.update({f"val_{k}": v for k, v in val.items() if k != "loss"})
        history.append(record)
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "epoch": epoch,
                    "encoder": {k: v.detach().cpu().clone() for k, v in method.encoder.state_dict().items()}}
        if not world.main:
            continue
        with open(metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(json.dumps(record))
        training_state.save(training, {"method": method.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                                       "step": step, "history": history, "best": best, "commands": commands})
        # export after every epoch, so that a run stopped early still leaves its weights
        export(args, method, chosen_epoch(args, method, best, history), history, data_info, options, commands)
    if world.main and history:
        chosen = chosen_epoch(args, method, best, history)
        if start_epoch > args.epochs:  # resumed a finished run: export again
            export(args, method, chosen, history, data_info, options, commands)
        log(f"exported the encoder of epoch {chosen['epoch']} to {out}")
        if args.push_to_hub:
            push_to_hub(out, args.push_to_hub)
            log(f"uploaded {out} to hf://{args.push_to_hub}")
    # every rank leaves together: a rank that tore down its gloo process group while rank 0 was still exporting
    # was once killed by SIGABRT ("terminate called without an active exception"), and torchrun then stops rank 0
    distributed.barrier(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
