import json

import numpy as np
import pytest
import torch

from matssl_featurizers.atom_vectors import load_atom_vectors
from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.sources import resolve
from pretraining.evaluation import evaluate, finetune, finetuning_runs, tasks
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
    assert all(r["n_train"] + r["n_test"] == 100 and r["seconds"] > 0 and r["threads"] >= 1 for r in rows)
    assert results["settings"]["lr_schedule"] == "plateau", "the estimator's defaults, recorded"
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


def test_pretrained_starts_from_the_weights_and_random_from_seeded_draws():
    assert finetuning_runs.start_weights("crystal-twins", "pretrained", seed=0) == "crystal-twins"
    random = finetuning_runs.start_weights("crystal-twins", "random", seed=0)
    bundled = PretrainedEncoder.from_pretrained("crystal-twins").state_dict()
    assert not torch.equal(random.state_dict()["convs.0.gate.weight"], bundled["convs.0.gate.weight"])
    again = finetuning_runs.start_weights("crystal-twins", "random", seed=0)
    assert again.fingerprint() == random.fingerprint() != finetuning_runs.start_weights("crystal-twins", "random", 1).fingerprint()
    crysatom = finetuning_runs.start_weights("crystal-twins", "crysatom", seed=0)
    assert crysatom.config["atom_input"] == "crysatom" and crysatom.element_table.shape[1] == load_atom_vectors().shape[1]


def test_runs_skip_duplicate_random_architectures_and_crysatom_on_megnet():
    runs = finetuning_runs.runs_of(["crystal-twins", "masked-denoising", "cdssl"], ["pretrained", "random", "crysatom"])
    assert runs == [("crystal-twins", "pretrained"), ("crystal-twins", "random"), ("crystal-twins", "crysatom"),
                    ("masked-denoising", "pretrained"), ("cdssl", "pretrained"), ("cdssl", "random")]
    with pytest.raises(SystemExit, match="CGCNN"):
        finetuning_runs.runs_of(["cdssl"], ["crysatom"])
    with pytest.raises(SystemExit, match="unknown --init 'frozen'"):
        finetuning_runs.runs_of(["cdssl"], ["frozen"])


def test_extra_training_rows_join_every_fold(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "SPLIT_SIZE", 20)  # test 20 rows, dev 20, and 60 rows of neither split
    assert finetune.main(["--data", str(STRUCTURES_FILE), "--target", "formation_energy_per_atom", "--folds", "2",
                          "--split", "test", "--extra-train", "30", "--model", "crystal-twins", "--init", "pretrained",
                          "--epochs", "1", "--out", str(tmp_path / "ft")]) == 0
    results = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert [r["n_train"] for r in results["results"]] == [10 + 30, 10 + 30]
    assert sum(len(fold) for fold in results["test_ids"]) == 20, "the extra rows are never tested"
    assert "every fold training on 30 more rows of neither split" in (tmp_path / "ft" / "results.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no CUDA support or sees no GPU"):
        finetune.main(["--data", str(STRUCTURES_FILE), "--target", "band_gap", "--model", "crystal-twins",
                       "--device", "cuda", "--out", str(tmp_path)])
