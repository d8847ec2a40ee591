import numpy as np
import pytest

from pretraining.evaluation import tasks
from tests.conftest import STRUCTURES_FILE


@pytest.fixture(scope="module")
def labelled():
    return tasks.load_labelled([STRUCTURES_FILE], ["formation_energy_per_atom", "band_gap"])


def test_only_rows_with_every_target_are_loaded(labelled, rows):
    expected = [r["id"] for r in rows if r.get("formation_energy_per_atom") is not None and r.get("band_gap") is not None]
    assert sorted(labelled.index) == sorted(expected) and len(expected) < len(rows)
    assert labelled.loc[expected[0], "band_gap"] == next(r["band_gap"] for r in rows if r["id"] == expected[0])
    assert labelled["structure"].map(lambda s: s.num_sites).gt(0).all()


def test_limit_draws_the_same_rows_for_a_seed(labelled):
    a = tasks.load_labelled([STRUCTURES_FILE], ["band_gap"], limit=20, seed=3)
    b = tasks.load_labelled([STRUCTURES_FILE], ["band_gap"], limit=20, seed=3)
    c = tasks.load_labelled([STRUCTURES_FILE], ["band_gap"], limit=20, seed=4)
    assert list(a.index) == list(b.index) and list(a.index) != list(c.index) and len(a) == 20


def test_folds_partition_the_rows_and_follow_the_seed():
    splits = tasks.cv_splits(23, 4, seed=0)
    tests = np.concatenate([test for _, test in splits])
    assert sorted(tests) == list(range(23))
    for train, test in splits:
        assert not set(train) & set(test) and len(train) + len(test) == 23
    again = tasks.cv_splits(23, 4, seed=0)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again))
    assert any((a[1] != b[1]).any() for a, b in zip(splits, tasks.cv_splits(23, 4, seed=1)))
    with pytest.raises(SystemExit, match="--folds"):
        tasks.cv_splits(3, 5, seed=0)


def test_training_subsets_are_drawn_from_the_fold_and_nest_by_size():
    train = np.arange(100, 180)
    small, large = tasks.training_rows(train, 10, 0, 1), tasks.training_rows(train, 40, 0, 1)
    assert set(small) <= set(large) <= set(train) and len(small) == 10 and len(set(large)) == 40
    assert (tasks.training_rows(train, "all", 0, 1) == train).all()
    assert not (tasks.training_rows(train, 10, 0, 2) == small).all()
    with pytest.raises(SystemExit, match="exceeds"):
        tasks.training_rows(train, 81, 0, 1)
    assert tasks.parse_train_sizes("100, 500,all") == [100, 500, "all"]


def test_fingerprint_changes_with_any_structure(labelled):
    first = labelled.head(5)
    assert tasks.fingerprint(first) == tasks.fingerprint(first.copy())
    structures = list(first["structure"])
    structures[2] = structures[2].copy()
    structures[2].perturb(0.01, min_distance=0.01)
    changed = first.assign(structure=structures)
    assert tasks.fingerprint(changed) != tasks.fingerprint(first)


def test_the_headline_verdicts_read_their_targets_from_the_tasks():
    shared, sensitive = tasks.targets_of("shared"), tasks.targets_of("structure_sensitive")
    assert len(shared) == 7 and ("mp_cgcnn", "efermi") in shared and ("jarvis_dft3d", "epsx") not in shared
    assert sensitive == {("castelli_perovskites", "e_form"), ("carbon24", "energy_per_atom"), ("jarvis_dft3d", "epsx"),
                         ("jarvis_dft3d", "exfoliation_energy"), ("jarvis_dft3d", "max_efg")}
    assert all(task.shared or task.structure_sensitive for task in tasks.TASKS.values())  # each feeds a verdict
