"""Where torch runs: devices and intra-op thread counts.

Every part of the package that runs torch takes an ``n_threads`` and sets it for its own work only
(:func:`torch_threads`), so that one busy block cannot slow another, and a forked child runs on one thread.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

_IN_FORKED_CHILD = False


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (``None``: leave torch's setting; always 1 in a forked
    child, see :func:`_one_torch_thread_after_fork`), then restore the previous setting."""
    import torch

    if _IN_FORKED_CHILD:
        n = 1
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


def _one_torch_thread_after_fork() -> None:
    """In a forked child (matminer's ``Pool``, e.g. inside ``MultipleFeaturizer``), torch's inherited OpenMP
    thread pool does not exist and the first parallel operation would wait for it forever; one thread
    runs without it."""
    global _IN_FORKED_CHILD
    _IN_FORKED_CHILD = True
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread_after_fork)


def check_device(device: str) -> None:
    """Raise ``ValueError`` for a device string torch cannot use here (e.g. ``"cuda"`` without a GPU)."""
    import torch

    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device: {err}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this PyTorch build has no CUDA support or sees no GPU; use device='cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: Apple's MPS backend is not available here; use device='cpu'")


def idle_cores(interval: float = 0.5) -> int:
    """Cores this process may run on that no other process is using now (at least 1): on Linux, the share of CPU
    time spent idle over ``interval`` seconds (``/proc/stat``), elsewhere the cores minus the 1-minute load average.
    The training commands' default thread count: on a busy machine more torch threads than idle cores are many
    times slower (docs/pretraining.md)."""
    import time

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def ticks():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    try:
        total0, idle0 = ticks()
        time.sleep(interval)
        total1, idle1 = ticks()
        busy = (os.cpu_count() or cores) * (1 - (idle1 - idle0) / max(1, total1 - total0))
    except OSError:
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - busy)))
