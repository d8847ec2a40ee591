import gzip
import json

import joblib
import numpy as np
import pandas as pd
import pytest
from matminer.featurizers.utils.stats import PropertyStats
from pymatgen.core import Composition, Molecule

from matssl_featurizers import CrysAtomFeaturizer, load_atom_vectors
from tests.conftest import FIXTURES, flat_cell


@pytest.fixture(scope="module")
def table():
    return load_atom_vectors()


@pytest.fixture(scope="module")
def compositions():
    with gzip.open(FIXTURES / "compositions.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for line in handle]
    return pd.DataFrame({"composition": [Composition(r["formula"]) for r in rows], "gap": [r["gap_expt"] for r in rows]},
                        index=pd.Index([r["id"] for r in rows], name="id"))


def _stats(features, dim):
    return {stat: np.asarray(features[i * dim:(i + 1) * dim]) for i, stat in enumerate(("mean", "std_dev", "minimum", "maximum", "range"))}


def test_two_element_statistics_by_hand(table):
    fe, o = table.loc["Fe"].to_numpy(), table.loc["O"].to_numpy()
    dim = table.shape[1]
    got = _stats(CrysAtomFeaturizer().featurize(Composition("Fe2O3")), dim)
    np.testing.assert_allclose(got["mean"], 0.4 * fe + 0.6 * o)
    # matminer's weighted std_dev of two values with fractions a, b is |x1 - x2| / sqrt(2) for any a, b
    np.testing.assert_allclose(got["std_dev"], np.abs(fe - o) / np.sqrt(2))
    np.testing.assert_allclose(got["minimum"], np.minimum(fe, o))
    np.testing.assert_allclose(got["maximum"], np.maximum(fe, o))
    np.testing.assert_allclose(got["range"], np.abs(fe - o))


def test_statistics_match_matminer_property_stats_on_three_elements(table):
    got = _stats(CrysAtomFeaturizer().featurize(Composition("Li2FeP2O7")), table.shape[1])
    fractions = [2 / 12, 1 / 12, 2 / 12, 7 / 12]
    for k in (0, 7, table.shape[1] - 1):
        values = [table.loc[e].iloc[k] for e in ("Li", "Fe", "P", "O")]
        for stat in ("mean", "std_dev", "minimum", "maximum", "range"):
            assert got[stat][k] == pytest.approx(PropertyStats.calc_stat(values, stat, fractions), rel=1e-9, abs=1e-12)


def test_a_structure_or_oxidation_states_give_the_composition_features(structures):
    featurizer = CrysAtomFeaturizer()
    structure = structures[0]
    np.testing.assert_array_equal(featurizer.featurize(structure), featurizer.featurize(structure.composition))
    oxidised = Composition({"Fe3+": 2, "O2-": 3})
    np.testing.assert_array_equal(featurizer.featurize(oxidised), featurizer.featurize(Composition("Fe2O3")))
    single = _stats(featurizer.featurize(Composition("Si")), load_atom_vectors().shape[1])
    assert not single["std_dev"].any() and not single["range"].any()


def test_every_element_of_the_corpus_fixtures_has_a_vector(structures, table):
    elements = {site.specie.symbol for s in structures for site in s}
    assert elements <= set(table.index)
    assert np.isfinite(table.to_numpy()).all()
    # the bundled vectors (`--layers all`): the averages after the input embedding and 5 convolutions, 200 dims
    # each, every block scaled to unit length
    blocks = table.to_numpy().reshape(len(table), 6, 200)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, atol=1e-6)


def test_labels_metadata_and_preset(table):
    featurizer = CrysAtomFeaturizer.from_preset("crysatom")
    labels = featurizer.feature_labels()
    assert len(labels) == 5 * table.shape[1] == len(featurizer.featurize(Composition("NaCl")))
    assert labels[0] == "CrysAtom mean dim 0" and labels[-1] == f"CrysAtom range dim {table.shape[1] - 1}"
    assert "CrysAtom" in featurizer.citations()[0] and featurizer.implementors()
    assert len(CrysAtomFeaturizer(stats=("mean",)).featurize(Composition("NaCl"))) == table.shape[1]
    with pytest.raises(ValueError, match="unknown preset"):
        CrysAtomFeaturizer.from_preset("magpie")


def test_dataframe_errors_name_the_row_and_element_or_become_nan(compositions):
    featurizer = CrysAtomFeaturizer()
    df = compositions.iloc[:10].copy()
    clean = featurizer.featurize_dataframe(df, "composition", pbar=False)
    bad = df.copy()
    bad["composition"] = [Composition("OgCl") if i == 3 else c for i, c in enumerate(df["composition"])]
    before = bad.copy()
    with pytest.raises(ValueError, match=rf"row '{df.index[3]}'.*no CrysAtom vector for element\(s\) Og"):
        featurizer.featurize_dataframe(bad, "composition", pbar=False)
    pd.testing.assert_frame_equal(bad, before)
    out = featurizer.featurize_dataframe(bad, "composition", ignore_errors=True, return_errors=True, pbar=False)
    labels = featurizer.feature_labels()
    assert out.loc[df.index[3], labels].isna().all() and "Og" in out.loc[df.index[3]].iloc[-1]
    keep = df.index != df.index[3]
    pd.testing.assert_frame_equal(out.loc[keep, labels], clean.loc[keep, labels])


@pytest.mark.parametrize("value, reason", [
    (None, "got NoneType"), (float("nan"), "got float"), ("Fe2O3", "parse a formula"),
    (Molecule(["C", "O"], [[0, 0, 0], [0, 0, 1.13]]), "got Molecule"), (Composition(), "empty"),
])
def test_bad_entries_are_refused_with_the_reason(value, reason):
    with pytest.raises((TypeError, ValueError), match=reason):
        CrysAtomFeaturizer().featurize(value)


def test_a_disordered_structure_gives_its_average_composition(structures):
    disordered = structures[0].copy()
    before = disordered.as_dict()
    element = disordered[0].specie.symbol
    disordered.replace(0, {element: 0.5, "Co" if element != "Co" else "Ni": 0.5})
    snapshot = disordered.as_dict()
    features = CrysAtomFeaturizer().featurize(disordered)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(features, CrysAtomFeaturizer().featurize(disordered.composition))
    assert disordered.as_dict() == snapshot and snapshot != before


def test_pipeline_random_forest_and_joblib_round_trip(tmp_path, compositions):
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    X, y = list(compositions["composition"]), compositions["gap"].to_numpy()
    pipe = make_pipeline(CrysAtomFeaturizer(), RandomForestRegressor(n_estimators=20, random_state=0)).fit(X[:60], y[:60])
    predicted = pipe.predict(X[60:])
    assert np.isfinite(predicted).all()
    assert clone(pipe).get_params()["crysatomfeaturizer__vectors"] == "crysatom"
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    assert "_cached_table" not in joblib.load(tmp_path / "pipe.joblib").steps[0][1].__dict__
    np.testing.assert_array_equal(joblib.load(tmp_path / "pipe.joblib").predict(X[60:]), predicted)


def test_other_tables_load_from_a_csv(tmp_path, table):
    from matssl_featurizers.atom_vectors import save_atom_vectors

    path = save_atom_vectors(table.loc[["Na", "Cl"]] * 2, tmp_path / "mine.csv")
    featurizer = CrysAtomFeaturizer(vectors=str(path))
    np.testing.assert_allclose(featurizer.featurize(Composition("NaCl")), 2 * np.array(CrysAtomFeaturizer().featurize(Composition("NaCl"))),
                               atol=1e-9)  # the CSV keeps 10 significant digits; range and std difference them
    assert featurizer.feature_labels()[0] == "AtomVectors mean dim 0"
    with pytest.raises(ValueError, match="no AtomVectors vector for element.s. O"):
        featurizer.featurize(Composition("Na2O"))


def test_structures_the_structure_models_refuse_still_have_a_composition(structures, structures_df):
    """CrysAtom needs only the composition: a degenerate lattice or a 1,000+ site supercell gives the vector
    of its composition; an empty DataFrame gives an empty frame with the feature columns."""
    featurizer = CrysAtomFeaturizer()
    flat = flat_cell()
    np.testing.assert_array_equal(featurizer.featurize(flat), featurizer.featurize(Composition("NaCl")))
    big = structures[0] * (10, 10, 10)
    assert len(big) >= 1000
    np.testing.assert_allclose(featurizer.featurize(big), featurizer.featurize(structures[0]), rtol=1e-12, atol=1e-12)
    empty = featurizer.featurize_dataframe(structures_df.iloc[:0].copy(), "structure", pbar=False)
    assert len(empty) == 0 and list(empty.columns)[-1] == featurizer.feature_labels()[-1]


def test_cgcnn92_statistics_are_those_of_cgcnn_input_table():
    import json
    from importlib import resources

    from pymatgen.core import Composition

    from matssl_featurizers import AtomVectorFeaturizer

    raw = json.loads((resources.files("matminer.utils.data_files") / "cgcnn_atom_feature.json").read_text())
    fe, o = np.array(raw["26"]), np.array(raw["8"])
    featurizer = AtomVectorFeaturizer("cgcnn92")
    values = np.array(featurizer.featurize(Composition("Fe2O3")))
    np.testing.assert_allclose(values[:92], 0.4 * fe + 0.6 * o)
    np.testing.assert_allclose(values[2 * 92:3 * 92], np.minimum(fe, o))
    np.testing.assert_allclose(values[4 * 92:], np.abs(fe - o))
    assert featurizer.feature_labels()[0] == "CGCNN92 mean dim 0" and len(featurizer.feature_labels()) == 5 * 92
    assert any("Crystal Graph Convolutional" in c for c in featurizer.citations())
    with pytest.raises(ValueError, match="unknown preset"):
        AtomVectorFeaturizer.from_preset("magpie")
