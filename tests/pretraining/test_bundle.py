import json

import pytest
import torch

from matssl_featurizers import weights
from matssl_featurizers.encoders import CGCNNEncoder
from pretraining import bundle


def test_bundled_model_loads_by_name_with_its_recorded_sha256(tmp_path, monkeypatch):
    root = tmp_path / "models"
    root.mkdir()
    (root / "index.json").write_text("{}")
    monkeypatch.setattr(weights, "bundled_root", lambda: root)
    torch.manual_seed(0)
    source = weights.save_encoder(CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8), tmp_path / "run", card="# card\n")

    bundle.main([str(source), "--name", "tiny", "--method", "crystal-twins", "--trained-on", "test fixture"])
    entry = json.loads((root / "index.json").read_text())["tiny"]
    assert entry["sha256"]["model.safetensors"] == weights.sha256(source / "model.safetensors")
    assert weights.load_encoder("tiny").config == weights.read_config(source)
    assert weights.list_models().loc["tiny", "n_features"] == 8

    (root / "tiny" / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(OSError, match="sha256"):
        weights.load_encoder("tiny")
