"""A refactor changes no numbers: every bundled model, preset and parameter-free featurizer, the random-weight
controls and a readout variant give the vectors release 0.2.1 gave on 30 fixture structures (to 1e-6), and the
folders that release and release 0.1 wrote still load and give them too."""

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.fixtures.release_vectors import EVALUATION_ROWS, featurizers, sample

RELEASE = np.load(FIXTURES / "vectors-0.2.1.npz")


@pytest.fixture(scope="module")
def structures():
    return sample()


@pytest.mark.parametrize("name", sorted(featurizers()))
def test_featurizers_give_the_vectors_of_release_0_2_1(name, structures):
    expected = RELEASE[name]
    rows = featurizers()[name].featurize_many(structures[: len(expected)], pbar=False)
    np.testing.assert_allclose(np.array(rows), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EVALUATION_ROWS))
def test_evaluation_rows_give_the_vectors_of_release_0_2_1(name, structures):
    from pretraining.evaluation.features import featurize

    features = featurize(name.split(" ")[0], structures, EVALUATION_ROWS[name], progress=False)
    np.testing.assert_allclose(features, RELEASE[name], rtol=0, atol=1e-6)


def test_a_folder_of_release_0_2_1_loads_and_gives_its_vectors(structures):
    from matssl_featurizers import SSLStructureFeaturizer

    folder = str(FIXTURES / "masked-denoising-0.2.1")
    for components, key in ((None, "masked-denoising"), (64, "masked-denoising#64")):
        rows = SSLStructureFeaturizer(weights=folder, n_components=components).featurize_many(structures, pbar=False)
        np.testing.assert_allclose(np.array(rows), RELEASE[key], rtol=0, atol=1e-6)
