import json

import numpy as np
import pytest
import torch

from matssl_featurizers.atom_vectors import load_atom_vectors
from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.sources import resolve
from pretraining.evaluation import evaluate, finetune, tasks
from tests.conftest import STRUCTURES_FILE


def test_one_epoch_for_both_initialisations_on_the_folds_of_evaluate(tmp_path):
    args = ["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom,band_gap", "--folds", "2", "--seed", "1"]
    model = resolve("crystal-twins").directory
    card_dir = tmp_path / "card"
    card_dir.mkdir()
    (card_dir / "README.md").write_text((model / "README.md").read_text())
    assert finetune.main([*args, "--model", "crystal-twins", "--epochs", "1", "--out", str(tmp_path / "ft"),
                          "--card", str(card_dir), "--card-section", "Fine-tuning test"]) == 0
    results = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert results["data"] == [str(STRUCTURES_FILE)] and results["settings"]["epochs"] == 1
    assert results["settings"]["model"] == "crystal-twins" and results["settings"]["folds"] == 2
    rows = results["results"]
    assert {(r["model"], r["init"]) for r in rows} == {("crystal-twins", "pretrained"), ("random:crystal-twins", "random")}
    assert len(rows) == 2 * 2 * 2 and all(np.isfinite(r["mae"]) and r["epochs"] == r["best_epoch"] == 1 for r in rows)
    for r in rows:
        assert r["n_fit"] + r["n_val"] == r["n_train"] and r["n_train"] + r["n_test"] == 100
    table = (tmp_path / "ft" / "results.md").read_text()
    assert "| random:crystal-twins |" in table and "band_gap MAE" in table
    assert "### Fine-tuning test\n" in (card_dir / "README.md").read_text()

    evaluate.main([*args, "--featurizers", "ElementProperty", "--out", str(tmp_path / "rf"), "--cache", str(tmp_path / "cache")])
    assert json.loads((tmp_path / "rf" / "results.json").read_text())["test_ids"] == results["test_ids"]


def test_split_restricts_the_rows_to_that_split(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "SPLIT_SIZE", 30)
    args = ["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom", "--folds", "2"]
    assert finetune.main([*args, "--split", "dev", "--model", "crystal-twins", "--init", "random", "--epochs", "1",
                          "--out", str(tmp_path / "ft")]) == 0
    results = json.loads((tmp_path / "ft" / "results.json").read_text())
    records = tasks.labelled_records([STRUCTURES_FILE], ["formation_energy_per_atom"])
    ids = [r["id"] for r in records]
    dev = {ids[i] for i in tasks.split_positions(ids, "dev")}
    tested = [i for fold in results["test_ids"] for i in fold]
    assert results["split"] == "dev" and len(tested) == 30 and set(tested) == dev
    assert "(dev split)" in (tmp_path / "ft" / "results.md").read_text()


def test_random_seeds_draw_one_start_per_seed_and_seed_0_is_the_single_seed_run(tmp_path):
    args = ["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom", "--folds", "2", "--model",
            "crystal-twins", "--init", "random", "--epochs", "1"]
    assert finetune.main([*args, "--out", str(tmp_path / "one")]) == 0
    assert finetune.main([*args, "--random-seeds", "0,2", "--out", str(tmp_path / "two")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())["results"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["results"]
    assert {r["model"] for r in one} == {"random:crystal-twins"}
    assert [r["model"] for r in two] == ["random:crystal-twins@0", "random:crystal-twins@2"] * 2
    by_seed = {seed: [r["mae"] for r in two if r["random_seed"] == seed] for seed in (0, 2)}
    assert by_seed[0] == pytest.approx([r["mae"] for r in one], rel=1e-6)
    assert all(abs(a - b) > 1e-6 for a, b in zip(by_seed[0], by_seed[2]))
    assert "| random:crystal-twins@2 |" in (tmp_path / "two" / "results.md").read_text()


def test_pretrained_loads_the_weights_and_random_draws_new_ones():
    pretrained = finetune.build_model("crystal-twins", "pretrained", seed=0)
    random = finetune.build_model("crystal-twins", "random", seed=0)
    bundled = PretrainedEncoder.from_pretrained("crystal-twins").state_dict()
    for key, value in bundled.items():  # element_table has NaN rows for elements without inputs
        torch.testing.assert_close(pretrained.encoder.state_dict()[key], value, rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(random.encoder.convs[0].gate.weight, bundled["convs.0.gate.weight"])
    assert torch.equal(random.encoder.convs[0].gate.weight, finetune.build_model("crystal-twins", "random", seed=0).encoder.convs[0].gate.weight)
    assert torch.equal(pretrained.head[0].weight, random.head[0].weight), "both heads start from the same draw"
    assert pretrained.encoder.training, "the encoder is trained, not frozen"
    crysatom = finetune.build_model("crystal-twins", "crysatom", seed=0)
    assert crysatom.encoder.config["atom_input"] == "crysatom" and crysatom.encoder.element_table.shape[1] == load_atom_vectors().shape[1]


def test_runs_skip_duplicate_random_architectures_and_crysatom_on_megnet():
    runs = finetune.runs_of(["crystal-twins", "masked-denoising", "cdssl"], ["pretrained", "random", "crysatom"])
    assert runs == [("crystal-twins", "pretrained"), ("crystal-twins", "random"), ("crystal-twins", "crysatom"),
                    ("masked-denoising", "pretrained"), ("cdssl", "pretrained"), ("cdssl", "random")]
    with pytest.raises(SystemExit, match="CGCNN"):
        finetune.runs_of(["cdssl"], ["crysatom"])


def test_early_stopping_keeps_the_best_epoch(structures):
    df_y = np.array([s.volume / s.num_sites for s in structures[:60]])
    arrays = finetune.graph_arrays(structures[:60])
    train, val = np.arange(40), np.arange(40, 60)
    model = finetune.build_model("cdssl", "random", seed=0)
    info = finetune.fit(model, arrays, df_y, train, val, epochs=12, patience=2, batch_size=16, lr=5e-3, device="cpu", seed=0)
    assert info["epochs"] <= 12 and info["epochs"] - info["best_epoch"] <= 2
    assert info["epochs"] == 12 or info["epochs"] - info["best_epoch"] == 2
    val_mae = np.mean(np.abs(finetune.predict(model, arrays, val, 16, "cpu") * info["std"] + info["mean"] - df_y[val]))
    assert val_mae == pytest.approx(info["val_mae"], rel=1e-5)
    assert info["val_mae"] < np.mean(np.abs(df_y[val] - df_y[train].mean())), "training beat predicting the mean"


def test_rows_split_into_even_batches():
    parts = finetune.batches(np.arange(65), 64)
    assert [len(p) for p in parts] == [33, 32]
    shuffled = finetune.batches(np.arange(65), 64, np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled)) == list(range(65))
    assert tasks.parse_train_sizes("all") == ["all"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="sees no CUDA device"):
        finetune.main(["--data", str(STRUCTURES_FILE), "--target", "band_gap", "--model", "crystal-twins",
                       "--device", "cuda", "--out", str(tmp_path)])
