import json
import shutil

import numpy as np
import pytest

from matssl_featurizers import weights
from pretraining import evaluate
from tests.conftest import STRUCTURES_FILE


def test_pretrained_against_random_weights_on_identical_folds(tmp_path):
    model = shutil.copytree(weights.resolve("crystal-twins"), tmp_path / "model")
    out = tmp_path / "eval"
    evaluate.main(["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom,band_gap",
                   "--featurizers", f"{model},random:{model},ElementProperty,{model}+ElementProperty", "--folds", "2", "--out", str(out),
                   "--card", str(model), "--cache", str(tmp_path / "cache")])
    results = json.loads((out / "results.json").read_text())
    assert results["n_structures"] == 100  # the mp_cgcnn rows carry both targets
    rows = results["results"]
    assert {r["featurizer"] for r in rows} == {str(model), f"random:{model}", "ElementProperty", f"{model}+ElementProperty"}
    assert len(rows) == 4 * 2 * 2 and all(np.isfinite(r["mae"]) and r["mae"] > 0 for r in rows)
    # identical folds: every featurizer trained on the same number of rows in each fold
    for fold in (0, 1):
        assert len({r["n_train"] for r in rows if r["fold"] == fold}) == 1
    maes = {r["featurizer"]: r["mae"] for r in rows if r["target"] == "band_gap" and r["fold"] == 0}
    assert maes[str(model)] != maes[f"random:{model}"], "random weights are a different encoder"
    table = (out / "results.md").read_text()
    assert results["features"][f"{model}+ElementProperty"]["n_features"] == 128 + results["features"]["ElementProperty"]["n_features"]
    assert "| ElementProperty |" in table and "formation_energy_per_atom MAE" in table
    assert table.strip() in (model / "README.md").read_text()


def test_random_weights_keep_the_architecture_and_follow_the_seed(tmp_path):
    a = evaluate.random_weights_dir("crystal-twins", 0, tmp_path / "a")
    b = evaluate.random_weights_dir("crystal-twins", 0, tmp_path / "b")
    c = evaluate.random_weights_dir("crystal-twins", 1, tmp_path / "c")
    assert weights.read_config(a) == weights.read_config("crystal-twins")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


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
    assert {"random:crystal-twins", "random:cdssl", "CrysAtom", "ElementProperty", "SineCoulombMatrix",
            "SiteStatsFingerprint", "crystal-twins+ElementProperty"} <= set(names)
    assert "random:crystalclr" not in names  # the same random CGCNN as random:crystal-twins
