import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from matssl_featurizers import weights
from pretraining import evaluate
from tests.conftest import RELEASE_0_1, STRUCTURES_FILE


def test_pretrained_against_random_weights_on_identical_folds(tmp_path):
    model = shutil.copytree(weights.resolve("crystal-twins"), tmp_path / "model")
    out = tmp_path / "eval"
    evaluate.main(["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom,band_gap",
                   "--featurizers", f"{model},random:{model},ElementProperty,{model}+ElementProperty", "--folds", "2", "--out", str(out),
                   "--random-seeds", "0,1", "--card", str(model), "--cache", str(tmp_path / "cache")])
    results = json.loads((out / "results.json").read_text())
    assert results["n_structures"] == 100  # the mp_cgcnn rows carry both targets
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


def test_random_weights_keep_the_architecture_and_follow_the_seed(tmp_path):
    a, b, c = (Path(evaluate.encoder_weights("crystal-twins", {}, tmp_path / d, seed)) for d, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert weights.load_encoder(a).config == {**weights.load_encoder("crystal-twins").config, "readout_components": 0}
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_random_names_expand_to_one_per_seed_also_inside_concatenations():
    assert evaluate.expand_names(["m", "random:m", "random:m+ElementProperty"], [0, 1]) == [
        "m", "random:m@0", "random:m@1", "random:m@0+ElementProperty", "random:m@1+ElementProperty"]
    assert evaluate.parse_name("random:dir/with:colon@2") == ("random", "dir/with:colon", 2)
    assert evaluate.parse_name("inputs:cdssl") == ("inputs", "cdssl", None)
    assert evaluate.parse_name("crystal-twins") == ("model", "crystal-twins", None)


def test_a_readout_variant_keeps_every_trained_tensor_and_drops_the_old_head(tmp_path, structures):
    variant = Path(evaluate.encoder_weights("crystal-twins", evaluate.readout_overrides("layers", "mean"), tmp_path))
    config = weights.read_config(variant)
    assert config["readout"] == "layers" and config["pool"] == ["mean"] and config["out_dim"] == 0
    original, rebuilt = weights.load_encoder("crystal-twins"), weights.load_encoder(variant)
    assert not any(k.startswith("head.") for k in rebuilt.state_dict())
    for key, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, original.state_dict()[key], rtol=0, atol=0, equal_nan=True, msg=key)
    from matssl_featurizers.graphs import structure_to_graph

    graph = structure_to_graph(structures[0])
    with torch.no_grad():
        last_layer_mean = original.node_embeddings(graph).mean(0)
        torch.testing.assert_close(rebuilt(graph)[0, -64 - 41:-41], last_layer_mean)


def test_input_statistics_read_the_encoders_own_table(structures, tmp_path):
    cgcnn = evaluate.make_featurizer("inputs:crystal-twins", tmp_path)
    assert cgcnn.vectors == "cgcnn92" and len(cgcnn.featurize(structures[0])) == 5 * 92
    megnet = evaluate.make_featurizer("inputs:cdssl", tmp_path)
    embedding = weights.load_encoder("cdssl").embedding.weight.detach().double().numpy()
    table = megnet._table()[0]
    np.testing.assert_allclose(table.loc["Fe"].to_numpy(), embedding[26], rtol=1e-9)


def test_effective_rank_counts_the_directions_used():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(500, 3))
    assert evaluate.effective_rank(basis @ rng.normal(size=(3, 40))) < 3.01
    assert evaluate.effective_rank(rng.normal(size=(500, 40))) > 30
    assert evaluate.effective_rank(np.ones((10, 4))) == 0.0


def _two_featurizers(out, cache, *extra):
    return evaluate.main(["--data", str(STRUCTURES_FILE), "--target", "band_gap", "--featurizers",
                          "crystal-twins,ElementProperty", "--folds", "2", "--out", str(out), "--cache", str(cache), *extra])


def test_features_come_from_the_cache_on_a_second_run(tmp_path, monkeypatch):
    calls = []
    original = evaluate.featurize
    monkeypatch.setattr(evaluate, "featurize", lambda name, *a, **k: calls.append(name) or original(name, *a, **k))
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
    names = evaluate.default_featurizers()
    assert names[0] == weights.DEFAULT_MODEL
    assert set(weights.bundled_index()) <= set(names)
    assert {"random:masked-denoising", "random:cdssl", "inputs:masked-denoising", "inputs:cdssl", "CrysAtom", "CGCNN92",
            "ElementProperty", "SineCoulombMatrix", "crystal-twins+ElementProperty"} <= set(names)
    assert "SiteStatsFingerprint" not in names  # minutes per thousand structures: only when asked for
    assert "random:crystal-twins" not in names  # the same random CGCNN as random:masked-denoising
    assert "random:crystalclr" not in names  # CGCNN with the layers readout again


def test_a_model_with_the_old_head_readout_is_another_architecture():
    assert evaluate.distinct_architectures(["masked-denoising", str(RELEASE_0_1), "crystalclr"]) == [
        "masked-denoising", str(RELEASE_0_1)], "the head readout's output layer makes it another encoder"


def test_a_model_name_with_a_component_count_gives_its_principal_components(tmp_path, structures):
    from pretraining import readout_pca
    from tests.conftest import STRUCTURES_FILE as fixtures

    model = shutil.copytree(weights.resolve("crystal-twins"), tmp_path / "ct")
    readout_pca.main([str(model), "--data", str(fixtures), "--sample", "100", "--components", "6",
                      "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    featurizer = evaluate.make_featurizer(f"{model}#4", tmp_path)
    assert featurizer.n_components == 4 and len(featurizer.featurize(structures[0])) == 4
    assert evaluate.featurizer_identity(f"{model}#4") == evaluate.featurizer_identity(str(model))


def test_a_preset_name_gives_the_hybrid_featurizer_of_that_preset(tmp_path, structures):
    from matssl_featurizers.hybrid import HybridStructureFeaturizer

    featurizer = evaluate.make_featurizer("preset:hybrid", tmp_path)
    assert isinstance(featurizer, HybridStructureFeaturizer)
    assert featurizer.get_params() == HybridStructureFeaturizer.from_preset("hybrid").get_params()
    assert len(featurizer.featurize(structures[0])) == featurizer.n_features


def test_density_features_by_name_are_matminers_density_volume_per_atom_and_packing_fraction(structures):
    features = evaluate.featurize("DensityFeatures", structures[:5], progress=False)
    assert features.shape == (5, 3)
    np.testing.assert_allclose(features[:, 0], [s.density for s in structures[:5]])
    np.testing.assert_allclose(features[:, 1], [s.volume / len(s) for s in structures[:5]])
    assert (features[:, 2] > 0).all()  # packing fraction (atomic radii overlap: it can pass 1)
    assert evaluate.featurizer_identity("DensityFeatures").startswith("DensityFeatures matminer ")


def test_cached_features_are_keyed_by_this_package_source(monkeypatch):
    names = ["masked-denoising", "random:masked-denoising@0", "inputs:cdssl", "CGCNN92", "preset:hybrid"]
    before = {n: evaluate.featurizer_identity(n) for n in names}
    assert evaluate.package_source() in before["masked-denoising"]
    monkeypatch.setattr(evaluate, "package_source", lambda: "edited")  # e.g. another neighbour-list rule
    assert all(evaluate.featurizer_identity(n) != before[n] for n in names)
    assert evaluate.featurizer_identity("ElementProperty") == "ElementProperty matminer " + __import__("matminer").__version__
