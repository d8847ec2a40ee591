import json
import shutil

import numpy as np
import pytest
import torch

from matssl_featurizers import SSLStructureFeaturizer, weights
from matssl_featurizers.encoders import build_encoder
from matssl_featurizers.graphs import structure_to_graph
from pretraining import card, readout_pca
from pretraining.methods import CDSSL_ENCODER
from tests.conftest import RELEASE_0_1, STRUCTURES_FILE


def test_components_are_orthonormal_and_find_the_planted_direction():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=20)
    vectors = np.outer(rng.normal(size=500) * 10, direction) + rng.normal(size=(500, 20)) + 3.0
    center, scale, basis, explained = readout_pca.principal_components(vectors, 20)
    np.testing.assert_allclose(basis.T @ basis, np.eye(20), atol=1e-10)
    assert explained.sum() == pytest.approx(1.0) and all(np.diff(explained) <= 1e-12)
    z = direction / scale
    assert abs(basis[:, 0] @ z) / np.linalg.norm(z) > 0.99
    np.testing.assert_allclose(center, vectors.mean(0))


@pytest.fixture(scope="module")
def model_with_components(tmp_path_factory):
    model = shutil.copytree(weights.resolve("crystal-twins"), tmp_path_factory.mktemp("pca") / "ct")
    (model / "checksums.json").write_text(json.dumps({n: weights.sha256(model / n) for n in weights.CHECKSUMMED}))
    assert readout_pca.main([str(model), "--data", str(STRUCTURES_FILE), "--sample", "120", "--components", "8",
                             "--cache-dir", str(model.parent / "cache"), "--no-progress"]) == 0
    return model


def test_the_components_travel_with_the_weights(model_with_components, structures):
    config = weights.read_config(model_with_components)
    assert config["readout_components"] == 8 and config["format_version"] == weights.FORMAT_VERSION
    encoder = weights.load_encoder(model_with_components)  # checksums.json was rewritten
    original = weights.load_encoder("crystal-twins")
    graph = structure_to_graph(structures[0])
    with torch.no_grad():
        full = original(graph)
        torch.testing.assert_close(encoder(graph), full)
        pc = encoder.principal_components
        expected = ((full - pc.center) / pc.scale) @ pc.basis
    featurizer = SSLStructureFeaturizer(weights=str(model_with_components), n_components=5)
    assert featurizer.feature_labels()[0].endswith("_pc0") and len(featurizer.feature_labels()) == 5
    np.testing.assert_allclose(featurizer.featurize(structures[0]), expected[0, :5].double().numpy(), rtol=1e-5, atol=1e-6)
    card = (model_with_components / "README.md").read_text()
    assert card.index("## Principal components") < card.index("## Evaluation")
    assert "8 principal components" in card and "fitted on 120 pretraining structures" in card


def test_asking_for_more_components_than_stored_is_refused(model_with_components, structures):
    with pytest.raises(ValueError, match="keep 8 principal components"):
        SSLStructureFeaturizer(weights=str(model_with_components), n_components=9).featurize(structures[0])
    with pytest.raises(ValueError, match="keep 0 principal components"):
        SSLStructureFeaturizer(weights=str(RELEASE_0_1), n_components=4).featurize(structures[0])


def test_refitting_replaces_the_section(model_with_components):
    readout_pca.main([str(model_with_components), "--data", str(STRUCTURES_FILE), "--sample", "100", "--components", "6",
                      "--cache-dir", str(model_with_components.parent / "cache"), "--no-progress"])
    card = (model_with_components / "README.md").read_text()
    assert card.count("## Principal components") == 1 and "fitted on 100 pretraining structures" in card
    assert weights.read_config(model_with_components)["readout_components"] == 6


def test_a_set2set_model_is_rebuilt_with_the_layers_readout_of_its_weights(tmp_path, structures):
    torch.manual_seed(0)
    trained = build_encoder({**CDSSL_ENCODER, "readout": "set2set"})
    model = weights.save_encoder(trained, tmp_path / "cdssl", method="cdssl")
    (model / "README.md").write_text(f"# cdssl\n\n{card.vector_sentence(trained.config)}\n\n{card.architecture_line(trained.config)}\n")
    assert readout_pca.main([str(model), "--readout", "layers", "--data", str(STRUCTURES_FILE), "--sample", "100",
                             "--components", "8", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    config = weights.read_config(model)
    assert (config["readout"], config["readout_components"], config["method"]) == ("layers", 8, "cdssl")
    rebuilt = weights.load_encoder(model)
    assert not any(k.startswith(("node_readout", "edge_readout")) for k in rebuilt.state_dict())
    graph = structure_to_graph(structures[0])
    with torch.no_grad():
        for before, after in zip(trained.stages(graph), rebuilt.stages(graph)):  # the same trained weights
            for a, b in zip(before, after):
                torch.testing.assert_close(a, b)
    assert rebuilt(graph).shape == (1, rebuilt.out_dim) and rebuilt.out_dim == 4 * 7 * 32 + 41
    text = (model / "README.md").read_text()
    assert f"a {rebuilt.out_dim}-dim vector" in text and "readout `layers`" in text and "160-dim" not in text
    assert '"readout_components": 8' in text and "Readout rebuilt as `layers`" in text
