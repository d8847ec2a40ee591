import warnings

import numpy as np
import pytest
from pymatgen.core import DummySpecies, Lattice, Molecule, Structure

from matssl_featurizers.neighbors import (
    CUTOFF,
    MAX_NEIGHBORS,
    MIN_DISTANCE,
    TIE_TOL,
    graph_arrays,
    graph_batches,
    neighbor_arrays,
    site_arrays,
    worker_pool,
)


def _from_structure_neighbor_list(structure):
    """The graph arrays as built from ``Structure.get_neighbor_list`` itself: per centre the twelve nearest,
    distances closer than ``TIE_TOL`` counting as equal and ties going to the lower neighbour index, then image."""
    centers, neighbors, images, distances = structure.get_neighbor_list(r=CUTOFF)
    kept = []
    for center in range(len(structure)):
        mine = sorted(np.flatnonzero(centers == center), key=lambda e: distances[e])
        rank, ranks = 0, {}
        for previous, e in zip([None, *mine], mine):
            rank += previous is None or distances[e] - distances[previous] > TIE_TOL
            ranks[e] = rank
        kept += sorted(mine, key=lambda e: (ranks[e], neighbors[e], *images[e]))[:MAX_NEIGHBORS]
    return {"edge_index": np.stack([neighbors[kept], centers[kept]]), "edge_image": np.rint(images[kept]),
            "distances": distances[kept]}


def test_the_search_on_site_arrays_is_bit_for_bit_pymatgens(structures):
    for structure in structures:
        ours, theirs = neighbor_arrays(structure), _from_structure_neighbor_list(structure)
        for key, value in theirs.items():
            np.testing.assert_array_equal(ours[key], value, err_msg=key)
        np.testing.assert_array_equal(ours["atomic_numbers"], [site.specie.Z for site in structure])


def test_equidistant_neighbours_do_not_hang_on_the_last_bits_of_the_coordinates(structures):
    """Most crystals have several neighbours equally far at the twelfth place; which are kept must not change
    when the coordinates are computed a little differently (one unit in the last place here)."""
    rng = np.random.default_rng(0)
    for structure in structures:
        sites = site_arrays(structure)
        ulps = rng.choice([-1, 0, 1], size=sites["cart_coords"].shape) * np.spacing(sites["cart_coords"])
        ours, nudged = graph_arrays(sites), graph_arrays({**sites, "cart_coords": sites["cart_coords"] + ulps})
        for key in ("edge_index", "edge_image"):
            np.testing.assert_array_equal(ours[key], nudged[key], err_msg=key)


def _batch_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, Exception):
            assert type(x) is type(y) and str(x) == str(y)
        else:
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def test_batches_are_read_lazily_and_worker_processes_give_the_same_graphs(structures):
    molecule = Molecule(["C", "O"], [[0, 0, 0], [0, 0, 1.13]])
    entries = [*structures[:20], molecule, *structures[20:45]]
    taken = []

    def counted():
        for entry in entries:
            taken.append(1)
            yield entry

    batches = graph_batches(counted(), batch_size=8)
    first = next(batches)
    assert len(first) == 8 and len(taken) == 8, "one batch read, no more"
    in_process = [first, *batches]
    assert [len(b) for b in in_process] == [8, 8, 8, 8, 8, 6]
    assert isinstance(in_process[2][4], TypeError) and "Molecule" in str(in_process[2][4])
    with worker_pool(2) as pool:
        in_workers = list(graph_batches(iter(entries), batch_size=8, pool=pool, in_flight=3))
    for a, b in zip(in_process, in_workers):
        _batch_equal(a, b)


def test_site_arrays_refuse_what_cannot_become_a_graph(structures):
    disordered = structures[0].copy()
    disordered.replace(0, {"Fe": 0.5, "Co": 0.5})
    with pytest.raises(ValueError, match="disordered"):
        site_arrays(disordered)
    dummy = Structure(Lattice.cubic(4.0), ["Na", DummySpecies("X")], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"^site 1 holds the dummy species X0\+, not a chemical element; crystal graphs need "
                                         "elements H to Og$"):
        site_arrays(dummy)
    sites = site_arrays(structures[3])
    assert set(sites) == {"atomic_numbers", "frac_coords", "cart_coords", "lattice", "pbc"}
    assert graph_arrays(sites)["edge_index"].shape[1] == MAX_NEIGHBORS * len(structures[3])


def test_without_a_neighbour_limit_every_neighbour_within_the_cutoff_is_kept(structures):
    for structure in structures[:20]:
        arrays = neighbor_arrays(structure, cutoff=6.0, max_neighbors=None)
        centers = structure.get_neighbor_list(r=6.0)[0]  # pymatgen's list (no self pairs at distance 0 here)
        np.testing.assert_array_equal(np.bincount(arrays["edge_index"][1], minlength=len(structure)),
                                      np.bincount(centers, minlength=len(structure)))


def _with_a_copy_of_site_0(structure, shift: float):
    """``structure`` with a copy of its site 0 ``shift`` Å away along x (a minimal invalid input)."""
    overlapping = structure.copy()
    overlapping.append(structure[0].specie, structure[0].coords + [shift, 0.0, 0.0], coords_are_cartesian=True)
    return overlapping


def _overlap_warnings(run) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught if "closer than" in str(w.message)]


def test_sites_closer_than_half_an_angstrom_are_found_and_warned_about_in_the_callers_process(structures):
    assert _overlap_warnings(lambda: [neighbor_arrays(s)["overlap"] for s in structures]) == []
    assert all(neighbor_arrays(s)["overlap"] is None for s in structures)
    n = len(structures[3])
    shifted = _with_a_copy_of_site_0(structures[3], 0.3)
    assert graph_arrays(site_arrays(shifted))["overlap"] == (0, n, pytest.approx(0.3))
    assert not shifted.is_valid(MIN_DISTANCE) and _with_a_copy_of_site_0(structures[3], 0.6).is_valid(MIN_DISTANCE)
    assert graph_arrays(site_arrays(_with_a_copy_of_site_0(structures[3], 0.6)))["overlap"] is None
    formula = shifted.composition.reduced_formula
    assert _overlap_warnings(lambda: neighbor_arrays(_with_a_copy_of_site_0(structures[3], 0.0))) == [
        f"sites 0 and {n} of {formula} are 0.000 Å apart, closer than any two atoms can be (0.5 Å): duplicated or "
        "misplaced sites?"]
    other = _with_a_copy_of_site_0(structures[5], 0.1)
    entries = [shifted, *structures[:9], other]
    with worker_pool(2) as pool:
        found = _overlap_warnings(lambda: list(graph_batches(iter(entries), batch_size=4, pool=pool)))
    assert [m.split(" Å")[0] for m in found] == [
        f"sites 0 and {n} of {formula} are 0.300",
        f"sites 0 and {len(structures[5])} of {other.composition.reduced_formula} are 0.100"]


def test_every_featurizer_path_warns_once_per_structure(structures):
    from matssl_featurizers import HybridStructureFeaturizer, SSLStructureFeaturizer

    def overlapping():
        return _with_a_copy_of_site_0(structures[3], 0.2)

    featurizer = SSLStructureFeaturizer()
    hybrid = HybridStructureFeaturizer.from_preset("hybrid-anisotropy")  # two neighbour searches per structure
    for run in (lambda: featurizer.featurize(overlapping()), lambda: featurizer.featurize_many([overlapping()], pbar=False),
                lambda: hybrid.featurize(overlapping()), lambda: hybrid.featurize_many([overlapping()], pbar=False)):
        assert len(_overlap_warnings(run)) == 1
    once = overlapping()
    assert len(_overlap_warnings(lambda: [featurizer.featurize(once), featurizer.featurize(once)])) == 1
