import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Molecule, Structure

from matssl_featurizers.graphs import (
    CUTOFF,
    MAX_NEIGHBORS,
    GaussianDistance,
    collate,
    collate_arrays,
    edge_lengths,
    neighbor_arrays,
    structure_to_graph,
)


def test_neighbours_are_the_nearest_twelve_of_pymatgen(structures):
    for structure in structures[:40:3]:
        graph = structure_to_graph(structure)
        lengths = edge_lengths(graph).numpy()
        centres = graph.edge_index[1].numpy()
        for i in range(len(structure)):
            expected = sorted(n.nn_distance for n in structure.get_neighbors(structure[i], CUTOFF))[:MAX_NEIGHBORS]
            np.testing.assert_allclose(np.sort(lengths[centres == i]), expected, atol=1e-4)


def test_image_offsets_reproduce_pymatgen_distances(structures):
    structure = structures[5]
    graph = structure_to_graph(structure)
    lengths = edge_lengths(graph).numpy()
    images = graph.edge_image.numpy()
    assert graph.edge_image.dtype == torch.int64
    assert np.abs(images).max() >= 1, "a real crystal needs periodic images within 8 Å"
    for e, (j, i) in enumerate(graph.edge_index.T.tolist()):
        assert structure[i].distance(structure[j], jimage=images[e]) == pytest.approx(lengths[e], abs=1e-4)


def test_distances_recomputed_after_strain_equal_a_rebuilt_graph(structures):
    structure = structures[12]
    graph = structure_to_graph(structure)
    strained = structure.copy()
    strained.apply_strain([0.03, -0.02, 0.01])
    graph.lattice = torch.tensor(strained.lattice.matrix, dtype=torch.float32).reshape(1, 3, 3)
    recomputed = edge_lengths(graph).numpy()
    rebuilt = neighbor_arrays(strained)
    rebuilt_by_edge = {
        (j, i, *img): d
        for (j, i), img, d in zip(rebuilt["edge_index"].T.tolist(), rebuilt["edge_image"].tolist(), rebuilt["distances"])
    }
    keys = [(j, i, *img) for (j, i), img in zip(graph.edge_index.T.tolist(), graph.edge_image.tolist())]
    common = [(e, k) for e, k in enumerate(keys) if k in rebuilt_by_edge]
    assert len(common) > 0.8 * len(keys)
    for e, key in common:
        assert recomputed[e] == pytest.approx(rebuilt_by_edge[key], abs=1e-4)


def test_batch_keeps_graphs_apart(structures):
    graphs = [structure_to_graph(s) for s in structures[:4]]
    batch = collate(graphs)
    assert batch.num_graphs == 4
    np.testing.assert_allclose(edge_lengths(batch).numpy(), torch.cat([edge_lengths(g) for g in graphs]).numpy(), atol=1e-5)


def test_collation_matches_pytorch_geometric_batching(structures):
    from torch_geometric.data import Batch, Data

    arrays = [neighbor_arrays(s) for s in structures[:30]]
    batch = collate_arrays(arrays)
    expected = Batch.from_data_list([Data(
        atomic_numbers=torch.from_numpy(a["atomic_numbers"]), frac_coords=torch.from_numpy(a["frac_coords"]).float(),
        lattice=torch.from_numpy(a["lattice"]).float().reshape(1, 3, 3), edge_index=torch.from_numpy(a["edge_index"]),
        edge_image=torch.from_numpy(a["edge_image"]), num_nodes=len(a["atomic_numbers"])) for a in arrays])
    assert batch.num_graphs == expected.num_graphs == 30 and batch.num_nodes == expected.num_nodes
    for key in ("atomic_numbers", "frac_coords", "lattice", "edge_index", "edge_image", "batch", "ptr"):
        assert getattr(batch, key).dtype == getattr(expected, key).dtype, key
        assert torch.equal(getattr(batch, key), getattr(expected, key)), key
    again = collate([structure_to_graph(s) for s in structures[:30]])
    assert all(torch.equal(getattr(again, key), getattr(batch, key)) for key in vars(batch))


def test_gaussians_below_exp_minus_87_are_zero_and_the_rest_exact(structures):
    expansion = GaussianDistance()
    distances = edge_lengths(structure_to_graph(structures[0]))
    exponent = -((distances.unsqueeze(-1) - expansion.centers) ** 2) / expansion.width**2
    out, exact = expansion(distances), torch.exp(exponent)
    kept = exponent >= -87.0
    assert torch.equal(out[kept], exact[kept])
    assert (out[~kept] == 0).all() and (exact[~kept] < 1.7e-38).all() and (~kept).any()


def test_site_without_neighbours_gives_a_valid_graph(structures):
    lonely = Structure(Lattice.cubic(20.0), [structures[0][0].specie], [[0.5, 0.5, 0.5]])
    graph = structure_to_graph(lonely)
    assert graph.num_nodes == 1 and graph.edge_index.shape == (2, 0)


def test_disordered_structure_is_refused(structures):
    disordered = structures[0].copy()
    disordered.replace(0, {"Fe": 0.5, "Co": 0.5})
    with pytest.raises(ValueError, match="disordered"):
        structure_to_graph(disordered)


def test_molecule_is_refused():
    with pytest.raises(TypeError, match="Molecule"):
        structure_to_graph(Molecule(["C", "O"], [[0, 0, 0], [0, 0, 1.13]]))


def test_input_structure_is_not_modified(structures):
    structure = structures[3]
    before = structure.as_dict()
    structure_to_graph(structure)
    assert structure.as_dict() == before


def test_gaussian_expansion_grid():
    expansion = GaussianDistance(0.0, 8.0, 0.2)
    assert expansion.num_features == 41
    features = expansion(torch.tensor([0.0, 4.0]))
    assert features[0, 0] == 1.0 and features[1, 20] == pytest.approx(1.0)
