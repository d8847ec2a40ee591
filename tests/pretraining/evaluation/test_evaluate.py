import json
import shutil

import numpy as np
import pytest
import torch

from matssl_featurizers import bundled
from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.sources import DEFAULT_MODEL, resolve
from pretraining.evaluation import evaluate, featurizer_names, features, forests
from pretraining.evaluation.featurizer_names import identity, parse
from tests.conftest import RELEASE_0_1, STRUCTURES_FILE


def make(name: str, readout: dict | None = None):
    return featurizer_names.make(parse(name), readout)


def test_pretrained_against_random_weights_on_identical_folds(tmp_path):
    model = shutil.copytree(resolve("crystal-twins").directory, tmp_path / "model")
    out = tmp_path / "eval"
    evaluate.main(["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom,band_gap",
                   "--featurizers", f"{model},random:{model},ElementProperty,{model}+ElementProperty", "--folds", "2", "--out", str(out),
                   "--random-seeds", "0,1", "--card", str(model), "--cache", str(tmp_path / "cache")])
    results = json.loads((out / "results.json").read_text())
    assert results["n_structures"] == 100  # the mp_cgcnn rows carry both targets
    assert results["data"] == [str(STRUCTURES_FILE)] and results["command"].startswith("python -m pretraining.evaluation.evaluate ")
    assert results["settings"]["folds"] == 2 and results["settings"]["random_seeds"] == "0,1"
    assert "data" not in results["settings"] and "out" not in results["settings"]
    rows = results["results"]
    randoms = {f"random:{model}@0", f"random:{model}@1"}
    assert {r["featurizer"] for r in rows} == {str(model), *randoms, "ElementProperty", f"{model}+ElementProperty"}
    assert len(rows) == 5 * 2 * 2 and all(np.isfinite(r["mae"]) and r["mae"] > 0 for r in rows)
    # identical folds: every featurizer trained on the same number of rows in each fold
    for fold in (0, 1):
        assert len({r["n_train"] for r in rows if r["fold"] == fold}) == 1
    maes = {r["featurizer"]: r["mae"] for r in rows if r["target"] == "band_gap" and r["fold"] == 0}
    assert len({maes[str(model)], *(maes[r] for r in randoms)}) == 3, "each seed gives other random weights"
    table = (out / "results.md").read_text()
    features = results["features"]
    assert features[f"{model}+ElementProperty"]["n_features"] == features[str(model)]["n_features"] + features["ElementProperty"]["n_features"]
    assert "| ElementProperty |" in table and "formation_energy_per_atom MAE" in table
    assert table.strip() in (model / "README.md").read_text()


def _same_tensors(a: dict, b: dict) -> bool:
    """The same names and bit-for-bit the same values (NaN rows of an element table included)."""
    return a.keys() == b.keys() and all(torch.equal(a[k].isnan(), b[k].isnan())
                                        and torch.equal(a[k].nan_to_num(), b[k].nan_to_num()) for k in a)


def test_random_weights_keep_the_architecture_and_follow_the_seed(tmp_path):
    trained = PretrainedEncoder.from_pretrained("crystal-twins")
    a, b, c = trained.random_like(0), trained.random_like(0), trained.random_like(1)
    assert a.config == {**trained.config, "readout_components": 0}
    assert _same_tensors(a.state_dict(), b.state_dict()) and a.fingerprint() == b.fingerprint()
    assert not _same_tensors(a.state_dict(), c.state_dict()) and a.fingerprint() != c.fingerprint()
    assert not _same_tensors(a.state_dict(), {k: v for k, v in trained.state_dict().items() if k in a.state_dict()})
    assert a.info.method is None and a.graph_settings == trained.graph_settings and not a.training
    # what a random:MODEL@SEED name runs
    named = featurizer_names.encoder_of(parse("random:crystal-twins@0"))
    assert _same_tensors(named.state_dict(), a.state_dict())


def test_random_names_expand_to_one_per_seed_also_inside_concatenations():
    assert featurizer_names.expand_seeds(["m", "random:m", "random:m+ElementProperty"], [0, 1]) == [
        "m", "random:m@0", "random:m@1", "random:m@0+ElementProperty", "random:m@1+ElementProperty"]

    def fields(name):
        return parse(name)[1:4]

    assert fields("random:dir/with:colon@2") == ("random", "dir/with:colon", 2)
    assert fields("inputs:cdssl") == ("inputs", "cdssl", None)
    assert fields("crystal-twins") == ("model", "crystal-twins", None)
    assert parse("crystal-twins#4").components == 4 and parse("crystal-twins#4").argument == "crystal-twins"
    assert [n.kind for n in featurizer_names.parts("crystal-twins+ElementProperty+CGCNN92")] == ["model", "matminer",
                                                                                                 "composition"]
    with pytest.raises(ValueError, match="random:MODEL@SEED"):
        parse("random:m")
    with pytest.raises(ValueError, match="MODEL#K"):
        parse("m#many")


def test_a_readout_variant_keeps_every_trained_tensor_and_drops_the_old_head(tmp_path, structures):
    from matssl_featurizers.graphs import structure_to_graph

    changes = featurizer_names.readout_changes("layers", "mean")
    assert changes == {"readout": "layers", "pool_edges": True, "pool": ["mean"]}
    original = PretrainedEncoder.from_pretrained("crystal-twins")
    rebuilt = original.with_readout(**changes)
    assert rebuilt.config == original.readout_config(**changes)
    assert rebuilt.config["readout"] == "layers" and rebuilt.config["pool"] == ["mean"] and rebuilt.config["out_dim"] == 0
    assert not any(k.startswith(("readout.linear.", "principal_components.")) for k in rebuilt.state_dict()), \
        "the principal components belong to the readout they were fitted on"
    for key, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, original.state_dict()[key], rtol=0, atol=0, equal_nan=True, msg=key)
    graph = structure_to_graph(structures[0])
    with torch.no_grad():
        last_layer_mean = original.node_embeddings(graph).mean(0)
        torch.testing.assert_close(rebuilt(graph)[0, -64 - 41:-41], last_layer_mean)
    assert rebuilt.feature_labels()[-64 - 41] == "conv 3 mean 0"
    assert featurizer_names.encoder_of(parse("crystal-twins"), changes).fingerprint() == rebuilt.fingerprint()
    # release 0.1's head readout (a linear layer after the mean): the layers readout drops that layer
    old = PretrainedEncoder.from_pretrained(RELEASE_0_1)
    assert any(k.startswith("readout.linear.") for k in old.state_dict())
    layers = old.with_readout(readout="layers")
    assert not any(k.startswith("readout.linear.") for k in layers.state_dict()) and layers.config["out_dim"] == 0
    for key, value in layers.state_dict().items():
        torch.testing.assert_close(value, old.state_dict()[key], rtol=0, atol=0, equal_nan=True, msg=key)
    with torch.no_grad():
        torch.testing.assert_close(layers(graph)[0, -64 * 3 - 41:-64 * 2 - 41], old.node_embeddings(graph).mean(0))
    assert featurizer_names.readout_changes(None) == {}
    with pytest.raises(SystemExit, match="need --readout layers"):
        featurizer_names.readout_changes(None, "mean")


def test_input_statistics_read_the_encoders_own_table(structures, tmp_path):
    cgcnn = make("inputs:crystal-twins")
    assert cgcnn.vectors == "cgcnn92" and len(cgcnn.featurize(structures[0])) == 5 * 92
    megnet = make("inputs:cdssl")
    embedding = PretrainedEncoder.from_pretrained("cdssl").embedding.weight.detach().double().numpy()
    table = megnet._table()[0]
    np.testing.assert_allclose(table.loc["Fe"].to_numpy(), embedding[26], rtol=1e-9)


def test_effective_rank_counts_the_directions_used():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(500, 3))
    assert forests.effective_rank(basis @ rng.normal(size=(3, 40))) < 3.01
    assert forests.effective_rank(rng.normal(size=(500, 40))) > 30
    assert forests.effective_rank(np.ones((10, 4))) == 0.0


def _two_featurizers(out, cache, *extra):
    return evaluate.main(["--data", str(STRUCTURES_FILE), "--target", "band_gap", "--featurizers",
                          "crystal-twins,ElementProperty", "--folds", "2", "--out", str(out), "--cache", str(cache), *extra])


def test_features_come_from_the_cache_on_a_second_run(tmp_path, monkeypatch):
    calls = []
    original = features.featurize
    monkeypatch.setattr(features, "featurize", lambda name, *a, **k: calls.append(name) or original(name, *a, **k))
    _two_featurizers(tmp_path / "a", tmp_path / "cache")
    assert calls == ["crystal-twins", "ElementProperty"]
    _two_featurizers(tmp_path / "b", tmp_path / "cache", "--train-sizes", "20,all")
    assert calls == ["crystal-twins", "ElementProperty"], "the second run recomputed features"
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    again = [r for r in second["results"] if r["train_size"] == "all"]
    assert [(r["fold"], r["featurizer"]) for r in first["results"]] == [(r["fold"], r["featurizer"]) for r in again]
    # the forest's threads add up tree predictions in varying order, so MAEs may differ in the last bit
    assert [r["mae"] for r in first["results"]] == pytest.approx([r["mae"] for r in again], rel=1e-12, abs=0)
    _two_featurizers(tmp_path / "c", tmp_path / "cache", "--limit", "60")  # other structures: computed anew
    assert calls[2:] == ["crystal-twins", "ElementProperty"]


def test_every_featurizer_and_training_size_uses_the_same_test_rows(tmp_path):
    _two_featurizers(tmp_path / "out", tmp_path / "cache", "--train-sizes", "20,all")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    folds = results["test_ids"]
    assert len(folds) == 2 and not set(folds[0]) & set(folds[1]) and len(folds[0]) + len(folds[1]) == 100
    for fold in (0, 1):
        rows = [r for r in results["results"] if r["fold"] == fold]
        assert {r["n_test"] for r in rows} == {len(folds[fold])}
        assert {r["n_train"] for r in rows if r["train_size"] == 20} == {20}
        assert {r["n_train"] for r in rows if r["train_size"] == "all"} == {100 - len(folds[fold])}


def test_default_set_has_every_bundled_model_its_control_and_the_baselines():
    names = forests.default_featurizers()
    assert names[0] == DEFAULT_MODEL
    assert set(bundled.bundled_models()) <= set(names)
    assert {"random:masked-denoising", "random:cdssl", "inputs:masked-denoising", "inputs:cdssl", "CrysAtom", "CGCNN92",
            "ElementProperty", "SineCoulombMatrix", "crystal-twins+ElementProperty"} <= set(names)
    assert "SiteStatsFingerprint" not in names  # minutes per thousand structures: only when asked for
    assert "random:crystal-twins" not in names  # the same random CGCNN as random:masked-denoising
    assert "random:crystalclr" not in names  # CGCNN with the layers readout again


def test_a_model_with_the_old_head_readout_is_another_architecture():
    assert featurizer_names.distinct_architectures(["masked-denoising", str(RELEASE_0_1), "crystalclr"]) == [
        "masked-denoising", str(RELEASE_0_1)], "the head readout's output layer makes it another encoder"


def test_a_model_name_with_a_component_count_gives_its_principal_components(tmp_path, structures):
    from pretraining.evaluation import readout_pca
    from tests.conftest import STRUCTURES_FILE as fixtures

    model = shutil.copytree(resolve("crystal-twins").directory, tmp_path / "ct")
    readout_pca.main([str(model), "--data", str(fixtures), "--sample", "100", "--components", "6",
                      "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    featurizer = make(f"{model}#4")
    assert featurizer.n_components == 4 and len(featurizer.featurize(structures[0])) == 4
    assert featurizer.encoder().n_components == 6
    # the same weights (one fingerprint) read out as 4 components: the identity differs in the count alone
    whole = identity(parse(str(model)))
    assert PretrainedEncoder.from_pretrained(model).fingerprint() in whole
    assert identity(parse(f"{model}#4")) == whole.replace(" components None ", " components 4 ")


def test_a_preset_name_gives_the_hybrid_featurizer_of_that_preset(tmp_path, structures):
    from matssl_featurizers.hybrid import HybridStructureFeaturizer

    featurizer = make("preset:hybrid")
    assert isinstance(featurizer, HybridStructureFeaturizer)
    assert featurizer.get_params() == HybridStructureFeaturizer.from_preset("hybrid").get_params()
    assert len(featurizer.featurize(structures[0])) == featurizer.n_features


def test_density_features_by_name_are_matminers_density_volume_per_atom_and_packing_fraction(structures):
    values = features.featurize("DensityFeatures", structures[:5], progress=False)
    assert values.shape == (5, 3)
    np.testing.assert_allclose(values[:, 0], [s.density for s in structures[:5]])
    np.testing.assert_allclose(values[:, 1], [s.volume / len(s) for s in structures[:5]])
    assert (values[:, 2] > 0).all()  # packing fraction (atomic radii overlap: it can pass 1)
    assert identity(parse("DensityFeatures")).startswith("DensityFeatures matminer ")


def test_cached_features_are_keyed_by_this_package_source(monkeypatch):
    names = ["masked-denoising", "random:masked-denoising@0", "inputs:cdssl", "CGCNN92", "preset:hybrid"]
    before = {n: identity(parse(n)) for n in names}
    assert featurizer_names.package_source() in before["masked-denoising"]
    monkeypatch.setattr(featurizer_names, "package_source", lambda: "edited")  # e.g. another neighbour-list rule
    assert all(identity(parse(n)) != before[n] for n in names)
    assert identity(parse("ElementProperty")) == "ElementProperty matminer " + __import__("matminer").__version__


def test_a_weights_folder_rewritten_in_the_same_process_is_read_again(tmp_path, structures):
    """The features, and the cache key, follow the files of a folder, not the first copy read of it."""
    from pretraining.evaluation import readout_pca

    model = shutil.copytree(resolve("crystal-twins").directory, tmp_path / "ct")
    before = identity(parse(str(model)))
    readout_pca.main([str(model), "--data", str(STRUCTURES_FILE), "--sample", "60", "--components", "3",
                      "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    after = identity(parse(str(model)))
    rewritten = PretrainedEncoder.from_pretrained(model)
    assert rewritten.fingerprint() in after and after != before
    from matssl_featurizers.graphs import structure_to_graph

    with torch.no_grad():
        expected = rewritten.principal_components(rewritten(structure_to_graph(structures[0])))[0].double().numpy()
    np.testing.assert_allclose(make(f"{model}#3").featurize(structures[0]), expected, rtol=1e-6)
