import shutil

import joblib
import numpy as np
import pytest

from matssl_featurizers import AtomVectorFeaturizer, HybridStructureFeaturizer, PretrainedEncoder, SSLStructureFeaturizer
from matssl_featurizers.hybrid import PRESETS
from matssl_featurizers.sources import resolve
from pretraining.evaluation import readout_pca
from tests.conftest import STRUCTURES_FILE, flat_cell


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    directory = shutil.copytree(resolve("crystal-twins").directory, tmp_path_factory.mktemp("hybrid") / "ct")
    readout_pca.main([str(directory), "--data", str(STRUCTURES_FILE), "--sample", "120", "--components", "8",
                      "--cache-dir", str(directory.parent / "cache"), "--no-progress"])
    return str(directory)


def test_features_are_the_composition_block_then_the_structure_components(model, structures):
    hybrid = HybridStructureFeaturizer(weights=model, n_components=6)
    rows = np.array(hybrid.featurize_many(structures[:5], pbar=False))
    composition = np.array(AtomVectorFeaturizer("cgcnn92").featurize_many(structures[:5], pbar=False))
    structure = np.array(SSLStructureFeaturizer(weights=model, n_components=6).featurize_many(structures[:5], pbar=False))
    np.testing.assert_allclose(rows, np.hstack([composition, structure]))
    labels = hybrid.feature_labels()
    assert len(labels) == rows.shape[1] == 5 * 92 + 6 and labels[0] == "CGCNN92 mean dim 0" and labels[-1].endswith(" PC 6")
    np.testing.assert_allclose(hybrid.featurize(structures[0]), rows[0], rtol=1e-4, atol=1e-4)  # batch of 1 vs 5
    assert any("Crystal Graph Convolutional" in c for c in hybrid.citations())


def test_a_bad_row_is_named_or_becomes_nan(model, structures_df):
    import pandas as pd
    from pymatgen.core import Lattice, Structure

    df = structures_df.iloc[:4].copy()
    df.loc["broken", "structure"] = Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]])  # no CGCNN input vector
    # a flat cell: the composition block could featurize it, the structure block cannot; the whole row is NaN
    df.loc["flat", "structure"] = flat_cell()
    hybrid = HybridStructureFeaturizer(weights=model, n_components=4)
    with pytest.raises(ValueError, match="row 'broken'"):
        hybrid.featurize_dataframe(df, "structure", pbar=False)
    out = hybrid.featurize_dataframe(df, "structure", ignore_errors=True, return_errors=True, pbar=False)
    labels = hybrid.feature_labels()
    assert out.loc[["broken", "flat"], labels].isna().all().all()
    assert out.drop(index=["broken", "flat"])[labels].notna().all().all()
    assert "Og" in out.loc["broken"].iloc[-1] and "degenerate" in out.loc["flat"].iloc[-1]
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(df.index)


def test_joblib_round_trip_keeps_the_features_and_pins_the_weights(model, structures, tmp_path):
    hybrid = HybridStructureFeaturizer(weights=model, n_components=4)
    before = hybrid.featurize_many(structures[:3], pbar=False)
    joblib.dump(hybrid, tmp_path / "h.joblib")
    assert joblib.load(tmp_path / "h.joblib").featurize_many(structures[:3], pbar=False) == before
    copy = shutil.copytree(model, tmp_path / "moved")
    (copy / "checksums.json").unlink()
    moved = HybridStructureFeaturizer(weights=str(copy), n_components=4)
    moved.featurize(structures[0])
    joblib.dump(moved, tmp_path / "m.joblib")
    from safetensors.torch import load_file, save_file

    state = load_file(copy / "model.safetensors")  # other weights of the same shapes
    save_file({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, copy / "model.safetensors")
    with pytest.raises(OSError, match="changed since this featurizer first used them"):
        joblib.load(tmp_path / "m.joblib").featurize(structures[0])


def test_presets_name_bundled_models_that_keep_enough_components():
    for name, (model_name, composition, n_components, anisotropy, magpie) in PRESETS.items():
        assert PretrainedEncoder.from_pretrained(model_name).n_components >= n_components, name
        preset = HybridStructureFeaturizer.from_preset(name)
        assert (preset.n_components, preset.anisotropy, preset.magpie) == (n_components, anisotropy, magpie)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        HybridStructureFeaturizer.from_preset("nope")


def test_the_anisotropy_preset_appends_the_shell_anisotropy_block(structures):
    from matssl_featurizers import ShellAnisotropy

    picked = structures[:5]
    plain = np.array(HybridStructureFeaturizer.from_preset("hybrid").featurize_many(picked, pbar=False))
    shells = np.array(ShellAnisotropy().featurize_many(picked, pbar=False))
    featurizer = HybridStructureFeaturizer.from_preset("hybrid-anisotropy")
    both = np.array(featurizer.featurize_many(picked, pbar=False))
    np.testing.assert_array_equal(both, np.hstack([plain, shells]))
    assert featurizer.feature_labels()[-len(shells[0]):] == ShellAnisotropy().feature_labels()
    assert featurizer.n_features == both.shape[1]
    errors = featurizer.featurize_many([picked[0], "not a structure"], ignore_errors=True, return_errors=True, pbar=False)
    assert np.isnan(errors[1][:-1]).all() and "got str" in errors[1][-1]


def test_the_magpie_preset_is_the_best_recipe_in_one_object_with_matminers_own_element_property(structures):
    from matminer.featurizers.composition import ElementProperty

    picked = structures[:6]
    anisotropy = np.array(HybridStructureFeaturizer.from_preset("hybrid-anisotropy").featurize_many(picked, pbar=False))
    magpie = ElementProperty.from_preset("magpie", impute_nan=True)
    expected = np.hstack([anisotropy, [magpie.featurize(s.composition) for s in picked]])
    featurizer = HybridStructureFeaturizer.from_preset("hybrid-anisotropy-magpie")
    # the columns, in order, of the headline row preset:hybrid-anisotropy+ElementProperty
    np.testing.assert_array_equal(np.array(featurizer.featurize_many(picked, pbar=False)), expected)
    assert featurizer.feature_labels()[-len(magpie.feature_labels()):] == magpie.feature_labels()
    assert any("Ward" in c for c in featurizer.citations()), "magpie's citation comes with it"


def test_a_multiple_featurizer_with_structure_composition_gives_the_same_columns(structures):
    from matminer.featurizers.base import MultipleFeaturizer
    from matminer.featurizers.composition import ElementProperty
    from matminer.featurizers.structure import StructureComposition

    picked = structures[:4]
    combined = MultipleFeaturizer([HybridStructureFeaturizer.from_preset("hybrid-anisotropy"),
                                   StructureComposition(ElementProperty.from_preset("magpie", impute_nan=True))])
    combined.set_n_jobs(1)
    rows = np.array(combined.featurize_many(picked, pbar=False))
    preset = HybridStructureFeaturizer.from_preset("hybrid-anisotropy-magpie")
    np.testing.assert_allclose(rows, preset.featurize_many(picked, pbar=False), rtol=1e-5, atol=1e-5)


def test_n_threads_reaches_every_block_that_runs_torch(structures):
    import torch

    featurizer = HybridStructureFeaturizer.from_preset("hybrid-anisotropy", n_threads=1)
    composition, structure, anisotropy = featurizer._parts()
    assert structure.n_threads == anisotropy.n_threads == 1
    seen = []
    structure.encoder().register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    featurizer.featurize_many(structures[:3], pbar=False)
    assert seen == [1] and torch.get_num_threads() == before
