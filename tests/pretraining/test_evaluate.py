import json
import shutil

import numpy as np

from matssl_featurizers import weights
from pretraining import evaluate
from tests.conftest import STRUCTURES_FILE


def test_pretrained_against_random_weights_on_identical_folds(tmp_path):
    model = shutil.copytree(weights.resolve("crystal-twins"), tmp_path / "model")
    out = tmp_path / "eval"
    evaluate.main(["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom,band_gap",
                   "--featurizers", f"{model},random:{model},ElementProperty,{model}+ElementProperty", "--folds", "2", "--out", str(out),
                   "--card", str(model)])
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
