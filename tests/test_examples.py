"""The example scripts on the real fixture structures."""

import gzip
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import STRUCTURES_FILE, flat_cell

EXAMPLES = Path(__file__).parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compare_with_magpie():
    return load_example("compare_with_magpie")


@pytest.fixture(scope="module")
def formation_energies(tmp_path_factory, compare_with_magpie):
    """The 100 MP rows of the fixture (the others have no formation_energy_per_atom), plus one row whose cell is
    degenerate, written as a data file the script reads."""
    rows = [json.loads(line) for line in gzip.open(STRUCTURES_FILE, "rt")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its lattice angles, computed again by as_dict
        rows.append({"id": "flat-cell", "structure": flat_cell().as_dict(), "formation_energy_per_atom": -1.0})
    path = tmp_path_factory.mktemp("data") / "mp.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return compare_with_magpie.load(path, "formation_energy_per_atom")


def test_load_keeps_the_rows_with_the_target(formation_energies):
    assert len(formation_energies) == 101
    assert formation_energies.index[-1] == "flat-cell"
    assert formation_energies["target"].between(-5, 5).all()


def test_forests_on_each_table_learn_the_formation_energy_and_skip_the_row_that_failed(formation_energies, compare_with_magpie):
    tables = compare_with_magpie.feature_tables(list(formation_energies["structure"]), "hybrid")
    assert np.isnan(tables["preset:hybrid"][-1]).all()            # the degenerate cell: a NaN row, no exception
    assert np.isfinite(tables["preset:hybrid"][:-1]).all()
    table = compare_with_magpie.compare(tables, formation_energies["target"].to_numpy(), folds=3)
    assert table["rows"].iloc[0] == 100
    assert list(table.index) == ["training mean", "ElementProperty", "preset:hybrid", "preset:hybrid+ElementProperty"]
    assert table.loc["preset:hybrid+ElementProperty", "features"] == tables["preset:hybrid"].shape[1] + 132
    # features aligned with their targets: every forest far below the mean predictor (a shuffled table is not)
    for name in tables:
        assert table.loc[name, "MAE"] < 0.6 * table.loc["training mean", "MAE"], table
    shuffled = {"shuffled": np.random.default_rng(0).permutation(tables["ElementProperty"][:-1])}
    control = compare_with_magpie.compare(shuffled, formation_energies["target"].to_numpy()[:-1], folds=3)
    assert control.loc["shuffled", "MAE"] > 0.8 * control.loc["training mean", "MAE"], control
    lower = table["folds lower than ElementProperty"]
    assert lower["training mean"] == 0 and lower["ElementProperty"] == 0 and lower.between(0, 3).all()
    assert "ElementProperty alone" in compare_with_magpie.verdict(table, "hybrid")
    assert "folds lower than ElementProperty" not in control


def test_the_verdict_names_the_gain_its_folds_and_whether_it_exceeds_a_fold_std(compare_with_magpie):
    table = pd.DataFrame({"MAE": [0.30, 0.25], "fold std": [0.02, 0.03], "folds lower than ElementProperty": [0, 4],
                          "folds": 5}, index=["ElementProperty", "preset:p+ElementProperty"])
    assert compare_with_magpie.verdict(table, "p").endswith("by 0.05, on 4 of 5 folds (more than a fold std of either).")
    table.loc["preset:p+ElementProperty", "MAE"] = 0.28
    assert compare_with_magpie.verdict(table, "p").endswith("by 0.02, on 4 of 5 folds (within a fold std: not a clear gain).")
    table.loc["preset:p+ElementProperty", "MAE"] = 0.31
    assert compare_with_magpie.verdict(table, "p").endswith("is not lower than ElementProperty alone here.")


def test_atom_vectors_pca_prints_its_usage_on_help_and_writes_the_image_it_is_given(tmp_path, monkeypatch, capsys):
    atom_vectors_pca = load_example("atom_vectors_pca")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        atom_vectors_pca.main(["--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out
    assert not list(tmp_path.iterdir()), "--help writes nothing"
    atom_vectors_pca.main(["pca.png"])
    assert [p.name for p in tmp_path.iterdir()] == ["pca.png"]


def test_finetune_your_model_pretrains_fine_tunes_saves_and_reloads(tmp_path, capsys):
    load_example("finetune_your_model").main(["--out", str(tmp_path / "mine"), "--pretrain-epochs", "1",
                                              "--max-epochs", "2"])
    out = capsys.readouterr().out
    assert "fine-tuned on 30 structures" in out and "test MAE" in out
    assert (tmp_path / "mine" / "finetuned" / "head.safetensors").is_file()
    assert "its encoder gives 809 features per structure" in out
