"""SSLRegressor and SSLClassifier: the scikit-learn contract, determinism, saving without pickles, bad input."""

import json
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from matssl_featurizers import SSLClassifier, SSLRegressor, SSLStructureFeaturizer
from tests.conftest import flat_cell

QUICK = {"max_epochs": 2, "batch_size": 16, "random_state": 0, "n_threads": 1}


@pytest.fixture(scope="module")
def labelled(rows, structures):
    """The 100 Materials Project fixture structures and their formation energies (eV/atom)."""
    pairs = [(s, r["formation_energy_per_atom"]) for r, s in zip(rows, structures) if "formation_energy_per_atom" in r]
    X = pd.Series([s for s, _ in pairs], index=[r["id"] for r in rows if "formation_energy_per_atom" in r])
    return X, np.array([e for _, e in pairs])


@pytest.fixture(scope="module")
def fitted(labelled):
    X, y = labelled
    return SSLRegressor(**QUICK).fit(X.iloc[:60], y[:60])


def test_fit_predict_score_and_history(fitted, labelled):
    X, y = labelled
    predictions = fitted.predict(X.iloc[60:])
    assert predictions.shape == (len(y) - 60,) and np.isfinite(predictions).all()
    assert fitted.score(X.iloc[60:], y[60:]) == pytest.approx(1 - ((predictions - y[60:]) ** 2).sum()
                                                              / ((y[60:] - y[60:].mean()) ** 2).sum())
    history = fitted.history_[0]
    assert [h["epoch"] for h in history] == [1, 2] and all(h["val_score"] > 0 for h in history)
    assert fitted.best_epochs_[0] in (1, 2) and fitted.n_outputs_ == 1 and fitted.fit_seconds_ > 0
    assert fitted.y_mean_ == pytest.approx([y[:60].mean()], abs=0.2), "standardised on the training rows"


def test_the_scikit_learn_contract(fitted, labelled):
    X, y = labelled
    params = SSLRegressor().get_params()
    assert SSLRegressor(**params).get_params() == params
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "models_")
    with pytest.raises(NotFittedError):
        copy.predict(X.iloc[:2])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        copy.set_params(batch_size=1)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        SSLRegressor(lr_schedule="step").fit(X.iloc[:10], y[:10])
    search = GridSearchCV(SSLRegressor(**{**QUICK, "max_epochs": 1}), {"hidden": [8, 16]}, cv=2).fit(X.iloc[:24], y[:24])
    assert search.best_params_["hidden"] in (8, 16)
    scores = cross_val_score(make_pipeline(SSLRegressor(**{**QUICK, "max_epochs": 1})), X.iloc[:24], y[:24], cv=2,
                             scoring="neg_mean_absolute_error")
    assert len(scores) == 2 and np.isfinite(scores).all()


def test_a_cpu_fit_is_reproducible_with_a_random_state(fitted, labelled):
    X, y = labelled
    again = SSLRegressor(**QUICK).fit(X.iloc[:60], y[:60])
    np.testing.assert_array_equal(again.predict(X.iloc[60:]), fitted.predict(X.iloc[60:]))
    other = SSLRegressor(**{**QUICK, "random_state": 1}).fit(X.iloc[:60], y[:60])
    assert not np.allclose(other.predict(X.iloc[60:]), fitted.predict(X.iloc[60:]))


def test_save_pretrained_writes_a_weights_folder_without_pickles(fitted, labelled, tmp_path):
    X, y = labelled
    folder = fitted.save_pretrained(tmp_path / "tuned")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "checksums.json", "config.json", "estimator.json",
                                                        "head.safetensors", "metadata.json", "model.safetensors"]
    loaded = SSLRegressor.from_pretrained(folder)
    np.testing.assert_array_equal(loaded.predict(X.iloc[60:]), fitted.predict(X.iloc[60:]))
    assert loaded.get_params()["hidden"] == fitted.hidden and loaded.best_epochs_ == fitted.best_epochs_
    # the featurizer reads the fine-tuned encoder: its vectors, not the bundled model's
    tuned = np.array(SSLStructureFeaturizer(weights=str(folder)).featurize_many(list(X.iloc[:3]), pbar=False))
    bundled = np.array(SSLStructureFeaturizer().featurize_many(list(X.iloc[:3]), pbar=False))
    assert tuned.shape == bundled.shape and not np.allclose(tuned, bundled)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["provenance"]["fine_tuned_from"] == "masked-denoising" and metadata["method"] == "masked-denoising"
    refit = SSLRegressor(**{**QUICK, "weights": str(folder)}).fit(X.iloc[:30], y[:30])  # starts from the fine-tuned encoder
    assert np.isfinite(refit.predict(X.iloc[60:62])).all()
    with pytest.raises(ValueError, match="holds a SSLRegressor, not a SSLClassifier"):
        SSLClassifier.from_pretrained(folder)
    (folder / "head.safetensors").write_bytes((folder / "head.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(OSError, match="head.safetensors does not match"):
        SSLRegressor.from_pretrained(folder)


def test_joblib_round_trip(fitted, labelled, tmp_path):
    X, _ = labelled
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(X.iloc[60:]), fitted.predict(X.iloc[60:]))


def test_bad_input_is_refused_before_training_naming_the_rows(labelled):
    X, y = labelled
    broken = pd.concat([X.iloc[:20], pd.Series([flat_cell()], index=["flat"])])
    targets = np.append(y[:20], 0.0)
    with pytest.raises(ValueError, match="cannot fit row 'flat': the lattice is degenerate.*drop_invalid=True"):
        SSLRegressor(**QUICK).fit(broken, targets)
    with pytest.warns(UserWarning, match="1 row.s. have no crystal graph and are dropped: 'flat'"):
        model = SSLRegressor(**{**QUICK, "drop_invalid": True}).fit(broken, targets)
    with pytest.warns(UserWarning, match="are NaN"):
        predictions = model.predict(broken)
    assert np.isnan(predictions[-1]) and np.isfinite(predictions[:-1]).all()
    bad_y = y[:20].copy()
    bad_y[[3, 7]] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=f"y is NaN or infinite in 2 row.s.: '{X.index[3]}', '{X.index[7]}'"):
        SSLRegressor(**QUICK).fit(X.iloc[:20], bad_y)
    with pytest.raises(ValueError, match="X has 20 rows but y has 19"):
        SSLRegressor(**QUICK).fit(X.iloc[:20], y[:19])
    with pytest.raises(ValueError, match="y must hold numbers"):
        SSLRegressor(**QUICK).fit(X.iloc[:4], ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="one column of Structures"):
        SSLRegressor(**QUICK).fit(pd.DataFrame({"a": X.iloc[:4], "b": X.iloc[:4]}), y[:4])
    with pytest.raises(ValueError, match="sample_weight must be one finite, non-negative number per row"):
        SSLRegressor(**QUICK).fit(X.iloc[:4], y[:4], sample_weight=[1, 1, -1, 1])


def test_several_targets_sample_weights_and_an_ensemble(labelled, rows):
    X, y = labelled
    gaps = np.array([r["band_gap"] for r in rows if "formation_energy_per_atom" in r])
    both = np.column_stack([y, gaps])
    model = SSLRegressor(**{**QUICK, "n_ensemble": 2}).fit(X.iloc[:40], both[:40])
    mean, std = model.predict(X.iloc[40:50], return_std=True)
    assert mean.shape == std.shape == (10, 2) and (std > 0).all() and len(model.models_) == 2
    weighted = SSLRegressor(**QUICK).fit(X.iloc[:40], y[:40], sample_weight=np.r_[np.ones(20), np.zeros(20)])
    plain = SSLRegressor(**QUICK).fit(X.iloc[:40], y[:40])
    assert not np.allclose(weighted.predict(X.iloc[40:45]), plain.predict(X.iloc[40:45]))


def test_warm_start_continues_the_fitted_models(labelled):
    X, y = labelled
    model = SSLRegressor(**{**QUICK, "warm_start": True}).fit(X.iloc[:40], y[:40])
    first, mean = model.models_[0], model.y_mean_.copy()
    before = model.predict(X.iloc[40:45])
    model.fit(X.iloc[:40], y[:40])
    assert model.models_[0] is first and model.y_mean_ == pytest.approx(mean), "the same model and target scaling"
    assert not np.allclose(model.predict(X.iloc[40:45]), before)


def test_the_classifier_predicts_classes_and_probabilities(labelled, tmp_path):
    X, y = labelled
    metal = np.where(y[:60] < -1.5, "stable", "less stable")
    model = SSLClassifier(**QUICK).fit(X.iloc[:60], metal)
    assert list(model.classes_) == ["less stable", "stable"]
    probabilities = model.predict_proba(X.iloc[60:70])
    assert probabilities.shape == (10, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert set(model.predict(X.iloc[60:70])) <= set(model.classes_) and 0 <= model.score(X.iloc[60:], np.where(
        y[60:] < -1.5, "stable", "less stable")) <= 1
    loaded = SSLClassifier.from_pretrained(model.save_pretrained(tmp_path / "classifier"))
    np.testing.assert_array_equal(loaded.predict_proba(X.iloc[60:70]), probabilities)
    with pytest.raises(ValueError, match="one class only"):
        SSLClassifier(**QUICK).fit(X.iloc[:10], ["a"] * 10)


def test_verbose_fits_show_progress(labelled, capsys):
    X, y = labelled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SSLRegressor(**{**QUICK, "max_epochs": 1, "verbose": True}).fit(X.iloc[:20], y[:20])
    assert "fine-tuning" in capsys.readouterr().err


def test_early_stopping_keeps_the_best_epoch(labelled):
    X, y = labelled
    model = SSLRegressor(**{**QUICK, "max_epochs": 12, "n_iter_no_change": 2, "lr": 5e-3}).fit(X.iloc[:60], y[:60])
    history, best = model.history_[0], model.best_epochs_[0]
    assert len(history) <= 12 and (len(history) == 12 or len(history) - best == 2)
    scores = [h["val_score"] for h in history]
    assert scores[best - 1] == min(scores)


def test_rows_split_into_even_batches_never_a_lone_leftover():
    parts = SSLRegressor(batch_size=64)._batches(np.arange(65))
    assert [len(p) for p in parts] == [33, 32]
    shuffled = SSLRegressor(batch_size=64)._batches(np.arange(65), np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled)) == list(range(65))
