"""scikit-learn's conventions for every featurizer: ``__init__`` only stores, ``get_params``/``set_params`` round trips,
``clone`` gives an equal unfitted copy, checks run at first use and in ``set_params``."""

import numpy as np
import pytest
from sklearn.base import clone

from matssl_featurizers import (AtomVectorFeaturizer, CDSSLFeaturizer, CrysAtomFeaturizer, CrystalCLRFeaturizer,
                                CrystalTwinsFeaturizer, HybridStructureFeaturizer, MaskedDenoisingFeaturizer,
                                ShellAnisotropy, SSLStructureFeaturizer)

# every featurizer, with one good value to set and one bad value with the sentence it gets, for one parameter
CASES = [
    (SSLStructureFeaturizer, {"batch_size": 7}, {"batch_size": 0}, "batch_size must be an integer >= 1"),
    (MaskedDenoisingFeaturizer, {"n_components": 5}, {"n_components": -3}, "n_components must be an integer >= 1"),
    (CrystalTwinsFeaturizer, {"n_threads": 2}, {"n_threads": 0}, "n_threads must be an integer >= 1 or None"),
    (CrystalCLRFeaturizer, {"label_prefix": "clr"}, {"label_prefix": 3}, "label_prefix must be a string or None"),
    (CDSSLFeaturizer, {"n_workers": 0}, {"n_workers": -1}, "n_workers must be an integer >= 0"),
    (HybridStructureFeaturizer, {"anisotropy": True}, {"anisotropy": "yes"}, "anisotropy must be True or False"),
    (AtomVectorFeaturizer, {"stats": ("mean",)}, {"stats": ("median",)}, "stats must be a non-empty list"),
    (CrysAtomFeaturizer, {"stats": ("range", "mean")}, {"vectors": 3}, "vectors must be a table name"),
    (ShellAnisotropy, {"cutoff": 5.0}, {"gaussian_step": 0}, r"gaussian_step must be a number in \(0, inf\]"),
]


@pytest.mark.parametrize("cls, good, bad, message", CASES, ids=[c[0].__name__ for c in CASES])
def test_params_round_trip_clone_and_checks(cls, good, bad, message, structures):
    featurizer = cls()
    params = featurizer.get_params()
    assert cls(**params).get_params() == params, "the constructor stores its arguments under their names"
    assert featurizer.set_params(**good) is featurizer and featurizer.get_params() == {**params, **good}
    copy = clone(featurizer)
    assert copy is not featurizer and copy.get_params() == featurizer.get_params()
    with pytest.raises(ValueError, match=message):
        featurizer.set_params(**bad)
    assert featurizer.get_params() == {**params, **good}, "a refused set_params leaves the featurizer unchanged"
    unchecked = cls(**{**params, **bad})  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        unchecked.featurize(structures[0])


def test_set_params_reaches_the_loaded_model(structures):
    featurizer = SSLStructureFeaturizer()
    first = np.array(featurizer.featurize_many(structures[:3], pbar=False))
    featurizer.set_params(model="crystal-twins", n_components=4)
    second = np.array(featurizer.featurize_many(structures[:3], pbar=False))
    assert second.shape == (3, 4) and featurizer.feature_labels()[0] == "crystal-twins PC 1"
    np.testing.assert_allclose(second, SSLStructureFeaturizer("crystal-twins", n_components=4).featurize_many(
        structures[:3], pbar=False))
    assert first.shape == (3, 809)


def test_a_grid_search_sets_featurizer_parameters(structures, rows):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("features", SSLStructureFeaturizer(n_components=4)),
                     ("forest", RandomForestRegressor(n_estimators=5, random_state=0))])
    search = GridSearchCV(pipe, {"features__n_components": [2, 4]}, cv=2)
    search.fit(structures[:24], [r["formation_energy_per_atom"] for r in rows[:24]])
    assert search.best_params_["features__n_components"] in (2, 4)
