import numpy as np
import pytest

from matssl_featurizers import ShellAnisotropy


def by_id(rows, structures, rid):
    return next(s for r, s in zip(rows, structures) if r["id"] == rid)


# sites of cubic symmetry only (m-3m, -43m): bcc Cs, rocksalt NpS, CeH3, Heusler ScAlNi2
CUBIC_SITES = ["mp-1", "mp-10109", "mp-1008376", "mp-10898"]


@pytest.mark.parametrize("rid", CUBIC_SITES)
def test_sites_of_cubic_symmetry_have_no_anisotropy(rows, structures, rid):
    features = ShellAnisotropy().featurize(by_id(rows, structures, rid))
    assert len(features) == 93 and max(abs(v) for v in features) < 1e-4


def test_lower_site_symmetry_is_seen(rows, structures):
    perovskite = ShellAnisotropy().featurize(by_id(rows, structures, "mp-1016884"))  # CaGeO3: O at 4/mm.m
    wurtzite_like = ShellAnisotropy().featurize(by_id(rows, structures, "mp-1018697"))  # EuCdSn, P6_3mc
    assert max(perovskite) > 0.1 and max(wurtzite_like) > 0.1


def test_cutting_an_equidistant_shell_would_make_a_cubic_site_anisotropic(rows, structures):
    heusler = by_id(rows, structures, "mp-10898")  # ScAlNi2: every site m-3m or -43m; twelve cuts a shell
    assert max(ShellAnisotropy(max_neighbors=12).featurize(heusler)) > 0.1
    assert max(ShellAnisotropy().featurize(heusler)) < 1e-4


def test_rotations_and_supercells_do_not_change_the_features(rows, structures):
    from pymatgen.core.operations import SymmOp

    structure = by_id(rows, structures, "mp-1016884")
    reference = np.array(ShellAnisotropy().featurize(structure))
    rotated = structure.copy()
    rotated.apply_operation(SymmOp.from_axis_angle_and_translation((1, 2, 3), 37.0))
    supercell = structure * (2, 1, 1)
    for other in (rotated, supercell):
        np.testing.assert_allclose(ShellAnisotropy().featurize(other), reference, atol=1e-4)


def test_labels_name_the_statistic_and_shell():
    labels = ShellAnisotropy().feature_labels()
    assert len(labels) == 93 and labels[0] == "shell anisotropy mean 0.0 A" and labels[-1] == "shell anisotropy std 6.0 A"


def test_a_bad_entry_is_named(structures):
    with pytest.raises(TypeError, match="cannot featurize entry 1"):
        ShellAnisotropy().featurize_many([structures[0], "not a structure"], pbar=False)
