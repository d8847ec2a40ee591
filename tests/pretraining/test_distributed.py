import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from matssl_featurizers import SSLStructureFeaturizer
from pretraining import run
from tests.conftest import STRUCTURES_FILE


def test_torchrun_with_two_gloo_processes_trains_and_rank_zero_exports_a_loadable_model(tmp_path, structures):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "pretraining.run", "--method", "crystal-twins", "--data", str(STRUCTURES_FILE), "--epochs", "2",
               "--batch-size", "16", "--lr", "1e-3", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
               "--no-progress"]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # torchrun and both of its workers
        raise
    assert process.returncode == 0, stderr[-3000:]
    assert stderr.count("exported the encoder") == 1, "only rank 0 reports"

    metrics = [json.loads(line) for line in (out / "training" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2], "one line per epoch, written by rank 0 alone"
    assert all(np.isfinite(m["train_loss"]) and np.isfinite(m["val_loss"]) for m in metrics)
    card = (out / "README.md").read_text()
    assert "torchrun --nproc_per_node 2 -m pretraining.run --method crystal-twins" in card and '"processes": 2' in card

    # the same files as a single-process export, and the featurizer loads them
    assert {p.name for p in out.iterdir()} >= {"config.json", "metadata.json", "model.safetensors", "README.md",
                                               "checksums.json"}
    single = tmp_path / "single"
    assert run.main(["--method", "crystal-twins", "--data", str(STRUCTURES_FILE), "--epochs", "1", "--batch-size", "16",
                     "--lr", "1e-3", "--out", str(single), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert (out / "config.json").read_text() == (single / "config.json").read_text()
    ddp_weights, single_weights = load_file(out / "model.safetensors"), load_file(single / "model.safetensors")
    assert {k: (v.shape, v.dtype) for k, v in ddp_weights.items()} == {k: (v.shape, v.dtype) for k, v in single_weights.items()}
    featurizer = SSLStructureFeaturizer(weights=str(out))
    features = np.array(featurizer.featurize_many(structures[:8], pbar=False))
    assert features.shape == (8, 809) and np.isfinite(features).all()
    assert featurizer.feature_labels()[0].startswith("crystal-twins-"), "the method recorded by rank 0 names the labels"
    assert len(np.unique(features.round(6), axis=0)) == 8


@pytest.mark.parametrize("method", ["crystal-twins", "cdssl"])
def test_amp_trains_under_bf16_autocast_and_exports_float32_weights(tmp_path, structures, method):
    out = tmp_path / method
    assert run.main(["--method", method, "--data", str(STRUCTURES_FILE), "--epochs", "1", "--batch-size", "32",
                     "--lr", "1e-3", "--amp", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                     "--no-progress"]) == 0
    metrics = json.loads((out / "training" / "metrics.jsonl").read_text())
    assert np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["val_loss"])
    assert '"amp": "bf16"' in (out / "README.md").read_text()
    weights = load_file(out / "model.safetensors")
    assert {str(v.dtype) for k, v in weights.items() if v.is_floating_point()} == {"torch.float32"}
    features = np.array(SSLStructureFeaturizer(model=method, weights=str(out)).featurize_many(structures[:6], pbar=False))
    assert np.isfinite(features).all()
