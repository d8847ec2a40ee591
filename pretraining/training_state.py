"""The resumable state of a pretraining run as safetensors + JSON: nothing is pickled, nothing unpickled.

``state.json`` holds the epoch, optimizer step, history, best epoch and its validation loss, commands, the
optimizer's ``param_groups`` and any non-tensor per-parameter state, and names the tensor file
``state-<first 16 hex digits of its sha256>.safetensors``, which holds every tensor under a prefix:

* ``method.<key>``: the method's state dict (encoder and pretext heads);
* ``optimizer.<index>.<name>``: the optimizer's state of parameter ``index`` (Adam: ``step``, ``exp_avg``,
  ``exp_avg_sq``);
* ``best.<key>``: the encoder of the best epoch (absent before there is one).

:func:`save` writes the tensor file, then replaces ``state.json``, then deletes the tensor files it no longer
names, so a run killed at any moment leaves a consistent pair: the previous one or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

STATE_NAME = "state.json"
PICKLED_NAME = "checkpoint.pt"  # what earlier versions wrote: never read
FORMAT = 1
PREFIXES = {"method": "the method's state dict", "optimizer": "optimizer.<parameter index>.<name>: its state tensors",
            "best": "the best epoch's encoder state dict"}


def exists(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a state written by :func:`save`."""
    return (Path(directory) / STATE_NAME).exists()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save(directory: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (the dict :func:`load` returns) to ``directory``."""
    directory = Path(directory)
    tensors = {f"method.{k}": v for k, v in state["method"].items()}
    tensors.update({f"best.{k}": v for k, v in (state["best"]["encoder"] or {}).items()})
    other = {}
    for index, entries in state["optimizer"]["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                other.setdefault(str(index), {})[name] = value
    # copies: safetensors refuses tensors that share memory (a parameter tied into two modules)
    data = save_tensors({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(data).hexdigest()
    name = f"state-{digest[:16]}.safetensors"
    _write_atomic(directory / name, data)
    record = {"format": FORMAT, "epoch": state["epoch"], "step": state["step"], "best_epoch": state["best"]["epoch"],
              "best_val_loss": state["best"]["val_loss"], "commands": state["commands"], "history": state["history"],
              "optimizer": {"param_groups": state["optimizer"]["param_groups"], "state": other},
              "tensors": {"file": name, "sha256": digest, "prefixes": PREFIXES}}
    _write_atomic(directory / STATE_NAME, (json.dumps(record, indent=1) + "\n").encode())
    for stale in directory.glob("state-*.safetensors"):
        if stale.name != name:
            stale.unlink()


def load(directory: str | os.PathLike) -> dict:
    """The state in ``directory``: ``method`` and ``optimizer`` state dicts, ``epoch``, ``step``, ``history``,
    ``best`` (``epoch``, ``val_loss``, ``encoder``: a state dict or ``None``) and ``commands``; tensors on the CPU."""
    directory = Path(directory)
    record = json.loads((directory / STATE_NAME).read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{directory / STATE_NAME}: format {record.get('format')!r}, this version reads {FORMAT}")
    path = directory / record["tensors"]["file"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record["tensors"]["sha256"]:
        raise ValueError(f"{path} is not the tensor file {directory / STATE_NAME} was written with (sha256 differs)")
    parts = {prefix: {} for prefix in PREFIXES}
    for key, value in load_tensors(data).items():
        prefix, rest = key.split(".", 1)
        parts[prefix][rest] = value
    optimizer_state = {}
    for key, value in parts["optimizer"].items():
        index, name = key.split(".", 1)
        optimizer_state.setdefault(int(index), {})[name] = value
    for index, entries in record["optimizer"]["state"].items():
        optimizer_state.setdefault(int(index), {}).update(entries)
    # JSON has no tuples: every list in a parameter group but its parameter indices was one (Adam's betas)
    groups = [{k: v if k == "params" or not isinstance(v, list) else tuple(v) for k, v in group.items()}
              for group in record["optimizer"]["param_groups"]]
    best = {"epoch": record["best_epoch"], "val_loss": record["best_val_loss"], "encoder": parts["best"] or None}
    return {"method": parts["method"], "optimizer": {"state": dict(sorted(optimizer_state.items())), "param_groups": groups},
            "epoch": record["epoch"], "step": record["step"], "history": record["history"], "best": best,
            "commands": record["commands"]}
