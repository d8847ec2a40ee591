import numpy as np
import pandas as pd

from pretraining import periodic_groups


def test_vectors_that_encode_the_group_score_one_and_scrambled_ones_less():
    symbols = ["Li", "Na", "K", "F", "Cl", "Br", "Fe", "Co", "Mg", "Ca"]
    groups = {"Li": 0, "Na": 0, "K": 0, "F": 1, "Cl": 1, "Br": 1, "Fe": 2, "Co": 3, "Mg": 4, "Ca": 4}
    rng = np.random.default_rng(0)
    exact = pd.DataFrame([np.eye(5)[groups[s]] + 0.01 * rng.normal(size=5) for s in symbols], index=symbols)
    share, count = periodic_groups.same_group_share(exact)
    assert count == 8 and share == 1.0  # Fe and Co are not main-group elements
    swapped = exact.copy()
    swapped.loc["Li"], swapped.loc["F"] = exact.loc["F"].to_numpy(), exact.loc["Li"].to_numpy()
    assert periodic_groups.nearest_neighbours(swapped)["Li"] in {"Cl", "Br"}
    assert periodic_groups.same_group_share(swapped)[0] <= 6 / 8  # Li and F now sit with the wrong group


def test_cgcnn_input_features_know_the_groups_better_than_chance():
    share, count = periodic_groups.same_group_share(periodic_groups.load_table("cgcnn92"))
    assert count >= 40 and share > 0.5
