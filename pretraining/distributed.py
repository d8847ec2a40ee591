"""Data-parallel pretraining over the processes ``torchrun`` starts (one per GPU; or CPU processes on gloo).

``torchrun --nproc_per_node K -m pretraining.run ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
each process trains on its share of every epoch (``DistributedSampler``), ``DistributedDataParallel``
averages the gradients, and rank 0 alone logs, checkpoints and exports. ``--batch-size`` is per process.

The pretext losses and BatchNorm see each process's own batch (BatchNorm is not synchronised:
PyTorch's ``SyncBatchNorm`` runs on GPUs only, and with batches of 64 crystals a process has
thousands of edges per BatchNorm). DDP copies rank 0's BatchNorm running statistics to all ranks at
every forward pass, and :func:`broadcast_buffers` does so again before validation, so that every rank
validates, and rank 0 exports, the same model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import distributed as dist
from torch import nn

# rank 0 builds the graph cache before the other ranks read it: allow for a long first build
TIMEOUT = timedelta(hours=4)


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` processes, ``local_rank`` on its machine, its ``device``."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, checkpoints and exports."""
        return self.rank == 0


def setup(device: str) -> World:
    """Join the process group ``torchrun`` describes in the environment (nccl on CUDA, with
    ``cuda:LOCAL_RANK``, else gloo), or stay a single process when there is none."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(torch.device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=torch.device("cuda", local_rank))
        return World(torch.device("cuda", local_rank), rank, local_rank, size)
    dist.init_process_group("gloo", timeout=TIMEOUT)
    return World(torch.device(device), rank, local_rank, size)


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


class LossModule(nn.Module):
    """``forward(batch)`` is ``method.loss(batch)``: DistributedDataParallel only sees what goes through forward."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch):
        return self.method.loss(batch)


def wrap(method: nn.Module, world: World) -> nn.Module:
    """The module a training step calls: :class:`LossModule`, inside ``DistributedDataParallel`` when distributed.

    The graph is declared static (the same parameters take part in every step), which also allows
    parameters outside the loss, such as CDSSL's Set2Set readouts.
    """
    module = LossModule(method)
    if not world.distributed:
        return module
    device_ids = [world.device.index] if world.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, static_graph=True)


def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics)."""
    if world.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def all_finite(loss: torch.Tensor, world: World) -> bool:
    """Whether the loss is finite on every rank (all ranks then stop together)."""
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if world.distributed:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def sum_over_ranks(totals: dict, count: int, world: World) -> tuple[dict, int]:
    """``totals`` (metric -> sum) and ``count`` summed over all ranks; a metric a rank lacks counts 0 there."""
    if not world.distributed:
        return totals, count
    keys: list = [None] * world.size
    dist.all_gather_object(keys, sorted(totals))
    keys = sorted(set().union(*keys))
    packed = torch.tensor([float(count)] + [totals.get(k, 0.0) for k in keys], dtype=torch.float64, device=world.device)
    dist.all_reduce(packed)
    return dict(zip(keys, packed[1:].tolist())), int(packed[0].item())
