import json

import numpy as np

import pytest
import torch
from pymatgen.core import Lattice, Structure

from matssl_featurizers.encoders import CGCNNEncoder, MEGNetEncoder, PretrainedEncoder
from matssl_featurizers.graphs import collate, structure_to_graph


@pytest.mark.parametrize("atom_input", ["embedding", "cgcnn92"])
def test_encoder_gives_one_finite_vector_per_structure(structures, atom_input):
    encoder = CGCNNEncoder(atom_input=atom_input, out_dim=32).eval()
    with torch.no_grad():
        out = encoder(collate([structure_to_graph(s) for s in structures[:5]]))
    assert out.shape == (5, 32) and torch.isfinite(out).all()


def test_isolated_site_gives_a_finite_vector(structures):
    lonely = Structure(Lattice.cubic(20.0), [structures[0][0].specie], [[0, 0, 0]])
    with torch.no_grad():
        out = CGCNNEncoder().eval()(collate([structure_to_graph(lonely)]))
    assert torch.isfinite(out).all()


def test_site_order_does_not_change_the_vector(structures):
    structure = structures[7]
    shuffled = Structure.from_sites([structure[i] for i in reversed(range(len(structure)))])
    encoder = CGCNNEncoder().eval()
    with torch.no_grad():
        a = encoder(collate([structure_to_graph(structure)]))
        b = encoder(collate([structure_to_graph(shuffled)]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_config_rebuilds_the_same_architecture():
    encoder = CGCNNEncoder(atom_input="cgcnn92", atom_fea_len=16, n_conv=2, out_dim=8)
    rebuilt = PretrainedEncoder.from_config(encoder.config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit"):
        PretrainedEncoder.from_config({**encoder.config, "n_layers": 3})
    with pytest.raises(ValueError, match="unknown architecture"):
        PretrainedEncoder.from_config({"architecture": "schnet"})


def test_element_without_input_vector_is_named():
    nobelium = Structure(Lattice.cubic(4.0), ["No"], [[0, 0, 0]])  # Z=102, beyond CGCNN's table
    with pytest.raises(ValueError, match="No"):
        CGCNNEncoder(atom_input="cgcnn92").eval()(collate([structure_to_graph(nobelium)]))


# -- MEGNet ----------------------------------------------------------------------------------------

def test_megnet_gives_set2set_nodes_edges_and_state(structures):
    encoder = MEGNetEncoder(width=8, hidden=16, n_blocks=2).eval()
    batch = collate([structure_to_graph(s) for s in structures[:5]])
    with torch.no_grad():
        out = encoder(batch)
        edges = encoder.edge_outputs(batch)
    assert out.shape == (5, 40) and encoder.out_features == 40 and torch.isfinite(out).all()
    assert edges.shape == (batch.edge_index.shape[1], 8)


def test_megnet_vector_ignores_site_order_and_supercells(structures):
    structure = structures[7]
    shuffled = Structure.from_sites([structure[i] for i in reversed(range(len(structure)))])
    encoder = MEGNetEncoder().eval()
    with torch.no_grad():
        a, b, c = (encoder(collate([structure_to_graph(s)])) for s in (structure, shuffled, structure * (2, 2, 2)))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)  # Set2Set attention and means: replication-invariant


def test_megnet_config_rebuilds_the_same_architecture():
    encoder = MEGNetEncoder(width=8, hidden=16, n_blocks=2, set2set_steps=2)
    rebuilt = PretrainedEncoder.from_config(json.loads(json.dumps(encoder.config)))
    assert isinstance(rebuilt, MEGNetEncoder)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}


def test_crysatom_vectors_are_fixed_encoder_inputs(structures):
    from matssl_featurizers.atom_vectors import load_atom_vectors

    table = load_atom_vectors("crysatom")
    encoder = CGCNNEncoder(atom_input="crysatom", atom_fea_len=16, n_conv=2, out_dim=8)
    assert encoder.embedding.in_features == table.shape[1]
    torch.testing.assert_close(encoder.element_table[26].double(), torch.tensor(table.loc["Fe"].to_numpy()), rtol=1e-6, atol=1e-6)
    assert "element_table" not in dict(encoder.named_parameters()), "the vectors are not trained"
    out = encoder(collate([structure_to_graph(s) for s in structures[:8]]))
    out.sum().backward()
    assert torch.isfinite(out).all() and encoder.embedding.weight.grad is not None
    oganesson = Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]])
    with pytest.raises(ValueError, match="no crysatom input vector for element.s. Og"):
        encoder.eval()(collate([structure_to_graph(oganesson)]))

# -- the model object: PretrainedEncoder ----------------------------------------------------------

def _vectors(encoder, structures):
    with torch.no_grad():
        return encoder(collate([structure_to_graph(s) for s in structures]))


def test_save_pretrained_writes_the_constructor_arguments_and_the_metadata_apart(tmp_path, structures):
    from matssl_featurizers.encoders import ModelInfo

    torch.manual_seed(0)
    original = CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8).eval()
    original.info = ModelInfo(method="crystal-twins", max_neighbors=10, provenance={"data": ["x.jsonl.gz"]})
    original.card = "# a card\n"
    original.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config == original.config and config["architecture"] == "cgcnn" and "method" not in config
    import inspect

    assert set(config) == set(inspect.signature(CGCNNEncoder.__init__).parameters) - {"self"}, "exactly the arguments"
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata == {"format_version": 3, "method": "crystal-twins", "graph": {"cutoff": 8.0, "max_neighbors": 10},
                        "provenance": {"data": ["x.jsonl.gz"]}}
    loaded = PretrainedEncoder.from_pretrained(tmp_path / "model")
    assert isinstance(loaded, CGCNNEncoder) and not loaded.training and loaded.info == original.info
    assert loaded.card == "# a card\n" and loaded.graph_settings == {"cutoff": 8.0, "max_neighbors": 10}
    assert loaded.fingerprint() == original.fingerprint() and loaded.name is None
    torch.testing.assert_close(_vectors(loaded, structures[:4]), _vectors(original, structures[:4]))


def test_megnet_round_trip_keeps_the_set2set_weights(tmp_path, structures):
    torch.manual_seed(0)
    original = MEGNetEncoder(width=8, hidden=16, n_blocks=2).eval()
    original.save_pretrained(tmp_path / "megnet")
    loaded = PretrainedEncoder.from_pretrained(tmp_path / "megnet")
    assert isinstance(loaded, MEGNetEncoder) and any(k.startswith("readout.nodes.lstm") for k in loaded.state_dict())
    torch.testing.assert_close(_vectors(loaded, structures[:4]), _vectors(original, structures[:4]))
    assert loaded.out_features == 40 and len(loaded.feature_labels()) == 40
    with pytest.raises(ValueError, match="hold a MEGNetEncoder, not a CGCNNEncoder"):
        CGCNNEncoder.from_pretrained(tmp_path / "megnet")


def test_a_config_that_does_not_match_the_tensors_is_refused(tmp_path):
    CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8).save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    (tmp_path / "model" / "config.json").write_text(json.dumps({**config, "atom_fea_len": 32}))
    (tmp_path / "model" / "checksums.json").unlink()  # else the checksum refuses the edited config first
    with pytest.raises(ValueError, match="does not match model.safetensors"):
        PretrainedEncoder.from_pretrained(tmp_path / "model")


def test_bundled_model_to_folder_to_featurizer_gives_the_bundled_vectors(tmp_path, structures):
    from matssl_featurizers import SSLStructureFeaturizer

    encoder = PretrainedEncoder.from_pretrained("masked-denoising")
    assert encoder.name == "masked-denoising" and encoder.info.method == "masked-denoising" and encoder.card
    encoder.save_pretrained(tmp_path / "md")
    assert (tmp_path / "md" / "README.md").read_text() == encoder.card, "the card travels with the weights"
    bundled = np.array(SSLStructureFeaturizer().featurize_many(structures[:20], pbar=False))
    for weights in (str(tmp_path / "md"), encoder):
        featurizer = SSLStructureFeaturizer(weights=weights)
        np.testing.assert_allclose(featurizer.featurize_many(structures[:20], pbar=False), bundled, atol=1e-6, rtol=0)
    assert SSLStructureFeaturizer(weights=encoder).feature_labels() == SSLStructureFeaturizer().feature_labels()
    folder_labels = SSLStructureFeaturizer(weights=str(tmp_path / "md")).feature_labels()
    assert folder_labels[0] == f"masked-denoising-{encoder.fingerprint()[:8]} input mean 0", "distinguishable"


def test_labels_say_what_each_column_is():
    cgcnn = PretrainedEncoder.from_pretrained("masked-denoising")
    labels = cgcnn.feature_labels()
    assert len(labels) == cgcnn.out_features == 809 and len(set(labels)) == 809
    assert labels[:2] == ["input mean 0", "input mean 1"] and "conv 2 std 17" in labels
    assert labels[-41:][0] == "distance histogram mean 0.0 A" and labels[-1] == "distance histogram mean 8.0 A"
    assert cgcnn.component_labels()[:2] == ["PC 1", "PC 2"] and len(cgcnn.component_labels()) == 64
    megnet = PretrainedEncoder.from_pretrained("cdssl").feature_labels()
    assert {"input nodes mean 0", "block 3 edges std 31", "block 2 state 5"} <= set(megnet) and len(megnet) == 937
    assert PretrainedEncoder.from_config({"architecture": "megnet", "width": 4}).feature_labels()[:2] == [
        "nodes set2set query 0", "nodes set2set query 1"]


def test_random_and_readout_variants_are_in_memory_objects(structures):
    trained = PretrainedEncoder.from_pretrained("masked-denoising")
    a, b, again = trained.random_like(0), trained.random_like(1), trained.random_like(0)
    assert a.info.method is None and a.n_components == 0 and a.config == trained.readout_config()
    assert a.fingerprint() == again.fingerprint() != b.fingerprint() != trained.fingerprint()
    variant = trained.with_readout(readout="layers", pool=["mean", "max"], pool_edges=False)
    assert variant.out_features == 4 * 2 * 64 and variant.info.method == "masked-denoising"
    layers, _ = trained.node_layers(collate([structure_to_graph(s) for s in structures[:2]]))
    torch.testing.assert_close(_vectors(variant, structures[:1])[0, :64], layers[0][:len(structures[0])].mean(0).detach())
    with pytest.raises(ValueError, match="needs tensors these weights lack"):
        trained.with_readout(readout="head")


def test_weights_of_release_0_1_still_load_with_their_head_readout(structures):
    from matssl_featurizers import SSLStructureFeaturizer
    from tests.conftest import RELEASE_0_1

    config = json.loads((RELEASE_0_1 / "config.json").read_text())
    assert "readout" not in config and "format_version" not in config, "a config written before the layers readout"
    encoder = PretrainedEncoder.from_pretrained(RELEASE_0_1)
    assert encoder.config["readout"] == "head" and encoder.out_features == 128 and encoder.info.method is None
    featurizer = SSLStructureFeaturizer(weights=str(RELEASE_0_1))
    vectors = torch.tensor(featurizer.featurize_many(structures[:6], pbar=False))
    assert vectors.shape == (6, 128) and featurizer.feature_labels()[0].endswith(" head 0") and torch.isfinite(vectors).all()
    assert torch.linalg.matrix_rank(vectors - vectors.mean(0)) >= 4, "structures are told apart"


def test_a_folder_of_release_0_2_1_reads_its_metadata_from_config_json():
    from tests.conftest import RELEASE_0_2_1

    assert not (RELEASE_0_2_1 / "metadata.json").exists()
    encoder = PretrainedEncoder.from_pretrained(RELEASE_0_2_1)
    assert encoder.info.method == "masked-denoising" and encoder.info.max_neighbors == 12
    assert "method" not in encoder.config and encoder.fingerprint() == PretrainedEncoder.from_pretrained(
        "masked-denoising").fingerprint(), "the same weights as the bundled model, in the old format"


def test_push_to_hub_uploads_the_saved_folder(monkeypatch):
    import huggingface_hub.hub_mixin as mixin

    uploaded = {}

    class RecordingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploaded.update(repo=repo_id, files=sorted(p.name for p in folder_path.iterdir()),
                            config=json.loads((folder_path / "config.json").read_text()))
            return "https://huggingface.co/commit"

    monkeypatch.setattr(mixin, "HfApi", RecordingApi)
    encoder = PretrainedEncoder.from_pretrained("cdssl")
    encoder.push_to_hub("someone/cdssl")
    assert uploaded["repo"] == "someone/cdssl" and uploaded["config"] == encoder.config
    assert uploaded["files"] == ["README.md", "checksums.json", "config.json", "metadata.json", "model.safetensors"]


def test_list_models_describes_the_bundled_models():
    from matssl_featurizers import list_models
    from matssl_featurizers.sources import DEFAULT_MODEL

    table = list_models()
    row = table.loc[DEFAULT_MODEL]
    assert row["n_features"] == 809 and row["n_components"] >= 32 and row["default"] and row["trained_on"]
    assert table.loc[["masked-denoising", "crystal-twins", "crystalclr", "cdssl"], "n_features"].tolist() == [809, 809, 809, 937]
    assert (table["readout"] == "layers").all() and (table["n_components"] == 64).all()
    assert table.loc["cdssl", "architecture"] == "megnet" and table["default"].sum() == 1
    for name, entry in table.iterrows():
        assert entry["weights"].startswith("bundled") and "structures" in entry["trained_on"], name
