import json

import pytest
import torch

from matssl_featurizers import bundled
from matssl_featurizers.encoders import CGCNNEncoder, PretrainedEncoder, list_models
from pretraining import bundle


def test_bundled_model_loads_by_name_with_its_recorded_sha256(tmp_path, monkeypatch):
    root = tmp_path / "models"
    root.mkdir()
    (root / "index.json").write_text("{}")
    monkeypatch.setattr(bundled, "bundled_root", lambda: root)
    torch.manual_seed(0)
    encoder = CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8)
    encoder.card = "# card\n"
    source = tmp_path / "run"
    encoder.save_pretrained(source)

    bundle.main([str(source), "--name", "tiny", "--method", "crystal-twins", "--trained-on", "test fixture"])
    entry = json.loads((root / "index.json").read_text())["tiny"]
    assert sorted(entry["sha256"]) == ["config.json", "metadata.json", "model.safetensors"]
    assert all(entry["sha256"][name] == bundled.sha256(root / "tiny" / name) for name in entry["sha256"])
    assert entry["sha256"]["model.safetensors"] == bundled.sha256(source / "model.safetensors")
    loaded = PretrainedEncoder.from_pretrained("tiny")
    assert loaded.config == PretrainedEncoder.from_pretrained(source).config == json.loads((source / "config.json").read_text())
    assert loaded.name == "tiny"
    assert list_models().loc["tiny", "n_features"] == 8
    assert loaded.info.method == "crystal-twins", "bundle records the method in metadata.json"
    metadata = json.loads((root / "tiny" / "metadata.json").read_text())
    assert metadata["format_version"] == 3 and metadata["method"] == "crystal-twins"
    assert metadata["provenance"]["trained_on"] == "test fixture"
    assert (root / "tiny" / "README.md").read_text() == "# card\n"

    (root / "tiny" / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(OSError, match="sha256"):
        PretrainedEncoder.from_pretrained("tiny")


def test_bundled_atom_vectors_load_by_name_with_their_recorded_sha256(tmp_path, monkeypatch):
    import pandas as pd

    from matssl_featurizers.atom_vectors import load_atom_vectors, save_atom_vectors
    from matssl_featurizers.composition import CrysAtomFeaturizer

    root = tmp_path / "models"
    root.mkdir()
    (root / "atom_vectors.json").write_text("{}")
    monkeypatch.setattr(bundled, "bundled_root", lambda: root)
    table = pd.DataFrame([[1.0, 2.0], [3.0, -1.0]], index=["Na", "Cl"])
    save_atom_vectors(table, tmp_path / "run" / "atom_vectors.csv")
    (tmp_path / "run" / "README.md").write_text("# card\n")

    bundle.main([str(tmp_path / "run"), "--name", "tiny-vectors", "--atom-vectors", "--trained-on", "test fixture"])
    entry = json.loads((root / "atom_vectors.json").read_text())["tiny-vectors"]
    assert entry["file"] == "tiny-vectors/atom_vectors.csv" and entry["trained_on"] == "test fixture"
    assert load_atom_vectors("tiny-vectors").loc["Cl"].tolist() == [3.0, -1.0]
    from pymatgen.core import Composition

    assert CrysAtomFeaturizer(vectors="tiny-vectors").featurize(Composition("NaCl"))[:2] == [2.0, 0.5]

    (root / "tiny-vectors" / "atom_vectors.csv").write_text("element,0,1\nNa,1,2\nCl,3,-2\n")
    with pytest.raises(OSError, match="sha256"):
        load_atom_vectors("tiny-vectors")
