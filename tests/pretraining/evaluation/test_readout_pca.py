import json
import shutil

import numpy as np
import pytest
import torch

from matssl_featurizers import SSLStructureFeaturizer
from matssl_featurizers.bundled import sha256
from matssl_featurizers.encoders import FORMAT_VERSION, ModelInfo, PretrainedEncoder
from matssl_featurizers.graphs import structure_to_graph
from matssl_featurizers.sources import CHECKSUMMED, resolve
from pretraining import card
from pretraining.evaluation import readout_pca
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
    model = shutil.copytree(resolve("crystal-twins").directory, tmp_path_factory.mktemp("pca") / "ct")
    (model / "checksums.json").write_text(json.dumps({n: sha256(model / n) for n in CHECKSUMMED}))
    assert readout_pca.main([str(model), "--data", str(STRUCTURES_FILE), "--sample", "120", "--components", "8",
                             "--cache-dir", str(model.parent / "cache"), "--no-progress"]) == 0
    return model


def test_the_components_travel_with_the_weights(model_with_components, structures):
    encoder = PretrainedEncoder.from_pretrained(model_with_components)  # checksums.json was rewritten
    original = PretrainedEncoder.from_pretrained("crystal-twins")
    assert encoder.config == {**original.config, "readout_components": 8} and encoder.n_components == 8
    assert json.loads((model_with_components / "metadata.json").read_text())["format_version"] == FORMAT_VERSION
    assert encoder.info.method == "crystal-twins", "the metadata travels too"
    assert encoder.info.provenance["trained_on"] == original.info.provenance["trained_on"]
    # other components, other weights: none of the fingerprints the bundled weights had in any file format, which a
    # pickled featurizer pinned to the bundled model would otherwise accept for these
    assert original.info.provenance["earlier_fingerprints"] and not encoder.fingerprints() & original.fingerprints()
    assert json.loads((model_with_components / "checksums.json").read_text()) == {
        n: sha256(model_with_components / n) for n in CHECKSUMMED}
    graph = structure_to_graph(structures[0])
    with torch.no_grad():
        full = original(graph)
        torch.testing.assert_close(encoder(graph), full)
        pc = encoder.principal_components
        expected = ((full - pc.center) / pc.scale) @ pc.basis
    featurizer = SSLStructureFeaturizer(weights=str(model_with_components), n_components=5)
    prefix = f"crystal-twins-{encoder.fingerprint()[:8]}"
    assert featurizer.feature_labels() == [f"{prefix} PC {k}" for k in range(1, 6)]
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
    assert PretrainedEncoder.from_pretrained(model_with_components).config["readout_components"] == 6


def test_a_set2set_model_is_rebuilt_with_the_layers_readout_of_its_weights(tmp_path, structures):
    torch.manual_seed(0)
    trained = PretrainedEncoder.from_config({**CDSSL_ENCODER, "readout": "set2set"}).eval()
    trained.info = ModelInfo(method="cdssl")
    trained.card = f"# cdssl\n\n{card.vector_sentence(trained)}\n\n{card.architecture_line(trained.config)}\n"
    model = tmp_path / "cdssl"
    trained.save_pretrained(model)
    assert readout_pca.main([str(model), "--readout", "layers", "--data", str(STRUCTURES_FILE), "--sample", "100",
                             "--components", "8", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    rebuilt = PretrainedEncoder.from_pretrained(model)
    assert (rebuilt.config["readout"], rebuilt.config["readout_components"], rebuilt.info.method) == ("layers", 8, "cdssl")
    assert not any(k.startswith("readout.") for k in rebuilt.state_dict()), "the layers readout has no tensors"
    assert any(k.startswith(("readout.nodes.", "readout.edges.")) for k in trained.state_dict())
    graph = structure_to_graph(structures[0])
    with torch.no_grad():
        for before, after in zip(trained.stages(graph), rebuilt.stages(graph)):  # the same trained weights
            for a, b in zip(before, after):
                torch.testing.assert_close(a, b)
    assert rebuilt(graph).shape == (1, rebuilt.out_features) and rebuilt.out_features == 4 * 7 * 32 + 41
    assert rebuilt.feature_labels()[:2] == ["input nodes mean 0", "input nodes mean 1"]
    text = (model / "README.md").read_text()
    assert f"a {rebuilt.out_features}-dim vector" in text and "readout `layers`" in text and "160-dim" not in text
    assert '"readout_components": 8' in text and "Readout rebuilt as `layers`" in text
