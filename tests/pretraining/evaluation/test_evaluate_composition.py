import json

import numpy as np

from matssl_featurizers.atom_vectors import load_atom_vectors
from pretraining.evaluation import evaluate_composition
from tests.conftest import FIXTURES


def test_two_featurizers_two_folds_on_real_compositions(tmp_path, monkeypatch):
    calls = []
    original = evaluate_composition.forest_maes

    def spy(features, y, folds, train_sizes, seed, **kwargs):
        calls.append((sorted(features), len(y)))
        return original(features, y, folds, train_sizes, seed, **kwargs)

    monkeypatch.setattr(evaluate_composition, "forest_maes", spy)
    task = f"{FIXTURES / 'compositions.jsonl.gz'}:gap_expt"
    out = tmp_path / "eval"
    assert evaluate_composition.main(["--task", task, "--featurizers", "crysatom,random", "--folds", "2",
                                      "--max-features", "0.33", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    records = result["results"]
    assert result["data"] == [str(FIXTURES / "compositions.jsonl.gz")]
    assert result["settings"]["task"] == [task] and result["settings"]["max_features"] == 0.33
    assert {r["featurizer"] for r in records} == {"crysatom", "random"} and len(records) == 4
    assert all(np.isfinite(r["mae"]) and r["mae"] > 0 for r in records)
    # identical folds: the same test-set sizes for both featurizers, fold by fold
    by_fold = {(r["featurizer"], r["fold"]): r["n_train"] for r in records}
    assert by_fold[("crysatom", 0)] == by_fold[("random", 0)] and by_fold[("crysatom", 1)] == by_fold[("random", 1)]
    assert result["features"]["crysatom"]["n_features"] == 5 * load_atom_vectors().shape[1]
    assert result["features"]["random"]["n_features"] == 5 * evaluate_composition.RANDOM_DIM
    text = (out / "results.md").read_text()
    assert "max_features=0.33" in text and "compositions_jsonl: gap_expt" not in text and "compositions: gap_expt" in text
    assert calls[0][0] == ["crysatom", "random"] and calls[0][1] >= 70


def test_control_tables_are_one_hot_and_seeded_random():
    onehot = evaluate_composition.control_table("onehot", 0)
    assert onehot.shape == (103, 103) and (onehot.sum(axis=1) == 1).all() and onehot.loc["Fe", onehot.index.get_loc("Fe")] == 1
    a, b = evaluate_composition.control_table("random", 0), evaluate_composition.control_table("random", 0)
    assert a.shape == (103, 200) and a.equals(b) and not a.equals(evaluate_composition.control_table("random", 1))


def test_control_featurizers_read_their_tables_in_memory():
    from pymatgen.core import Composition

    nacl = Composition("NaCl")
    onehot = evaluate_composition.make_featurizer("onehot", 0)
    values = np.array(onehot.featurize(nacl)).reshape(5, 103)  # mean, std_dev, minimum, maximum, range per column
    table = evaluate_composition.control_table("onehot", 0)
    columns = [table.columns.get_loc(table.index.get_loc(symbol)) for symbol in ("Na", "Cl")]
    assert values[0, columns].tolist() == [0.5, 0.5] and values[0].sum() == 1.0
    random = evaluate_composition.make_featurizer("random", 3)
    table = evaluate_composition.control_table("random", 3)
    np.testing.assert_allclose(random.featurize(nacl)[:200], table.loc[["Na", "Cl"]].mean().to_numpy())
    assert random.featurize(nacl) != evaluate_composition.make_featurizer("random", 4).featurize(nacl)
