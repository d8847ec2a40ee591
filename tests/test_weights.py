import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from matssl_featurizers import weights
from matssl_featurizers.encoders import CGCNNEncoder, MEGNetEncoder
from matssl_featurizers.graphs import collate, structure_to_graph


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    return weights.save_encoder(CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8), tmp_path / "model", card="# card\n")


def test_local_directory_round_trip(model_dir, structures):
    torch.manual_seed(0)
    original = CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8).eval()
    loaded = weights.load_encoder(model_dir)
    batch = collate([structure_to_graph(s) for s in structures[:4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), original(batch))
    assert json.loads((model_dir / "config.json").read_text()) == original.config


def test_megnet_round_trip_keeps_the_set2set_weights(tmp_path, structures):
    torch.manual_seed(0)
    original = MEGNetEncoder(width=8, hidden=16, n_blocks=2).eval()
    loaded = weights.load_encoder(weights.save_encoder(original, tmp_path / "megnet"))
    assert any("readout" in key for key in loaded.state_dict())
    batch = collate([structure_to_graph(s) for s in structures[:4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), original(batch))
    assert weights.feature_length(original.config) == 40


def test_config_that_does_not_match_the_tensors_is_refused(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "atom_fea_len": 32}))
    with pytest.raises(ValueError, match="does not match model.safetensors"):
        weights.load_encoder(model_dir)


def test_missing_sources_name_themselves(tmp_path, model_dir):
    with pytest.raises(OSError, match="no-such-model"):
        weights.load_encoder("no-such-model")
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors not found"):
        weights.load_encoder(model_dir)


def test_a_pickle_is_never_a_fallback_for_safetensors(model_dir):
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors not found"):
        weights.load_encoder(model_dir)


def test_corrupt_safetensors_file_is_refused(model_dir):
    (model_dir / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Exception, match="(?i)header|invalid|deserializ"):
        weights.load_encoder(model_dir)


def test_bundled_default_model_is_checked_against_its_sha256(monkeypatch):
    encoder = weights.load_encoder()
    assert encoder.config["architecture"] == "cgcnn"
    index = weights.bundled_index()
    tampered = {name: {**entry, "sha256": {**entry["sha256"], "model.safetensors": "0" * 64}} for name, entry in index.items()}
    monkeypatch.setattr(weights, "bundled_index", lambda: tampered)
    with pytest.raises(OSError, match="sha256"):
        weights.load_encoder(weights.DEFAULT_MODEL)


def test_list_models_describes_the_bundled_models():
    table = weights.list_models()
    assert weights.DEFAULT_MODEL in table.index
    row = table.loc[weights.DEFAULT_MODEL]
    assert row["n_features"] == 128 and row["default"] and row["trained_on"]
    assert table.loc[["crystal-twins", "crystalclr", "cdssl"], "n_features"].tolist() == [128, 128, 160]
    assert table.loc["cdssl", "architecture"] == "megnet" and table["default"].sum() == 1
    for name, entry in table.iterrows():
        assert entry["weights"].startswith("bundled") and "structures" in entry["trained_on"], name


def _lay_out_hub_cache(cache, repo, files_dir, commit):
    """The on-disk layout huggingface_hub serves offline: refs/<branch> -> snapshots/<commit>/<files>."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(files_dir, root / "snapshots" / commit)


HUB_SCRIPT = """
import sys, torch
from matssl_featurizers import weights
try:
    encoder = weights.load_encoder(sys.argv[1])
    print("OK", sum(float(p.detach().sum()) for p in encoder.parameters()))
except OSError as err:
    print("OSError", err)
"""


def _load_offline(source, cache):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent)}
    return subprocess.run([sys.executable, "-c", HUB_SCRIPT, source], env=env, capture_output=True, text=True,
                          timeout=120).stdout.strip()


def test_hub_loading_from_an_offline_cache_honours_revisions(tmp_path, model_dir):
    cache = tmp_path / "hf" / "hub"
    other = weights.save_encoder(CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8), tmp_path / "other")
    _lay_out_hub_cache(cache, "matssl/ct-test", model_dir, "a" * 40)
    _lay_out_hub_cache(cache, "matssl/ct-test", other, "b" * 40)  # refs/main now points at "b..."

    expected_a = sum(float(p.detach().sum()) for p in weights.load_encoder(model_dir).parameters())
    expected_b = sum(float(p.detach().sum()) for p in weights.load_encoder(other).parameters())
    assert _load_offline("hf://matssl/ct-test", cache) == f"OK {expected_b}"
    assert _load_offline(f"hf://matssl/ct-test@{'a' * 40}", cache) == f"OK {expected_a}"

    missing = _load_offline("hf://matssl/not-cached", cache)
    assert missing.startswith("OSError") and "hf://matssl/not-cached" in missing and "HF_HUB_OFFLINE" in missing


def test_malformed_hub_address_is_refused():
    with pytest.raises(ValueError, match="hf://OWNER/REPO"):
        weights.resolve("hf://just-a-name")
