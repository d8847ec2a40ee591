import numpy as np
import torch

from matssl_featurizers.graphs import collate, edge_vectors, structure_to_graph
from pretraining import augmentations as aug


def _batch(structures):
    return collate([structure_to_graph(s) for s in structures[:6]])


def _snapshot(batch):
    return {k: v.clone() for k, v in vars(batch).items() if torch.is_tensor(v)}


def test_augmentations_leave_the_input_untouched(structures):
    batch = _batch(structures)
    before = _snapshot(batch)
    torch.manual_seed(0)
    aug.mask_edges(aug.mask_atoms(aug.perturb(batch, 0.05), 0.5), 0.5)
    after = _snapshot(batch)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_perturbation_moves_every_site_by_the_distance(structures):
    batch = _batch(structures)
    torch.manual_seed(0)
    moved = aug.perturb(batch, 0.05)
    lattice = batch.lattice[batch.batch]
    shift = torch.bmm((moved.frac_coords - batch.frac_coords).unsqueeze(1), lattice).squeeze(1)
    torch.testing.assert_close(shift.norm(dim=1), torch.full((batch.num_nodes,), 0.05), atol=1e-4, rtol=0)
    # edges keep their neighbour lists; their lengths change by at most twice the displacement
    delta = (edge_vectors(moved).norm(dim=1) - edge_vectors(batch).norm(dim=1)).abs()
    assert delta.max() <= 0.1 + 1e-4 and delta.max() > 0


def test_atom_masking_hits_about_the_ratio_and_only_masks(structures):
    batch = collate([structure_to_graph(s) for s in structures])
    torch.manual_seed(0)
    masked = aug.mask_atoms(batch, 0.1)
    changed = masked.atomic_numbers != batch.atomic_numbers
    assert (masked.atomic_numbers[changed] == 0).all()
    assert 0.05 < changed.float().mean() < 0.15


def test_edge_masking_sets_a_keep_mask(structures):
    batch = _batch(structures)
    torch.manual_seed(0)
    masked = aug.mask_edges(batch, 0.1)
    assert masked.edge_keep.shape == (batch.edge_index.shape[1],)
    assert 0.05 < (1 - masked.edge_keep).mean() < 0.15
    assert getattr(batch, "edge_keep", None) is None


# -- CrystalCLR ------------------------------------------------------------------------------------

def test_crystalclr_augmentations_leave_the_input_untouched(structures):
    batch = _batch(structures)
    before = _snapshot(batch)
    torch.manual_seed(0)
    aug.supercell(aug.column_replace(aug.strain(aug.perturb_uniform(batch)), aug.column_partners()), 2)
    after = _snapshot(batch)
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_shortest_distance_matches_pymatgen(structures):
    batch = _batch(structures)
    # the neighbour list counts periodic images of a site too, as the shortest edge does
    expected = [min(s.get_neighbor_list(8.0)[3]) for s in structures[:6]]
    np.testing.assert_allclose(aug.min_pair_distances(batch).numpy(), expected, rtol=1e-5)


def test_perturbation_is_bounded_by_half_the_shortest_distance(structures):
    batch = _batch(structures)
    torch.manual_seed(0)
    moved = aug.perturb_uniform(batch, 0.5)
    lattice = batch.lattice[batch.batch]
    shift = torch.bmm((moved.frac_coords - batch.frac_coords).unsqueeze(1), lattice).squeeze(1).norm(dim=1)
    limit = 0.5 * aug.min_pair_distances(batch)[batch.batch]
    assert (shift <= limit + 1e-5).all()
    assert (shift > 0).float().mean() > 0.99 and shift.max() > 0.5 * limit.min()  # not a no-op


def test_perturbation_only_where_applied(structures):
    batch = _batch(structures)
    apply = torch.tensor([True, False, True, False, True, False])
    moved = aug.perturb_uniform(batch, 0.5, apply=apply)
    changed = (moved.frac_coords != batch.frac_coords).any(1)
    assert torch.equal(changed, apply[batch.batch])


def test_strain_scales_each_lattice_vector_by_up_to_five_percent(structures):
    batch = collate([structure_to_graph(s) for s in structures])
    torch.manual_seed(0)
    strained = aug.strain(batch, 0.05)
    ratio = strained.lattice.norm(dim=2) / batch.lattice.norm(dim=2)  # [G, 3]: a, b, c
    assert (ratio >= 1).all() and (ratio <= 1.05 + 1e-6).all()
    assert ratio.std() > 0.005, "anisotropic: the three vectors get different factors"
    assert torch.equal(strained.frac_coords, batch.frac_coords)
    volume = torch.linalg.det(strained.lattice).abs() / torch.linalg.det(batch.lattice).abs()
    torch.testing.assert_close(volume, ratio.prod(1), rtol=1e-5, atol=0)  # tensile: the cell only grows


def test_column_replace_keeps_the_column_and_the_site_count(structures):
    batch = collate([structure_to_graph(s) for s in structures])
    partners = aug.column_partners()
    column_of = {z: name for name, column in aug.PERIODIC_TABLE_COLUMNS.items() for z in column}
    torch.manual_seed(0)
    replaced = aug.column_replace(batch, partners)
    assert replaced.atomic_numbers.shape == batch.atomic_numbers.shape
    changed = (replaced.atomic_numbers != batch.atomic_numbers).nonzero().flatten()
    per_graph = torch.bincount(batch.batch[changed], minlength=batch.num_graphs)
    assert per_graph.max() == 1, "at most one site per structure"
    assert per_graph.sum() >= 0.8 * batch.num_graphs  # only a site of H has no partner
    for i in changed.tolist():
        old, new = int(batch.atomic_numbers[i]), int(replaced.atomic_numbers[i])
        assert column_of[old] == column_of[new] and old != new


def test_column_partners_respect_the_encoder_table():
    known = torch.zeros(119, dtype=torch.bool)
    known[[8, 16, 34]] = True  # O, S, Se
    partners = aug.column_partners(known)
    assert set(partners[8][partners[8] >= 0].tolist()) == {16, 34}
    assert (partners[52] < 0).all(), "Te is not in the table: no partners"


def test_supercell_has_the_neighbours_of_a_pymatgen_supercell(structures):
    structure = structures[3]
    big = aug.supercell(_batch([structure]), 2)
    reference = structure_to_graph(structure * (2, 2, 2))
    assert big.num_nodes == 8 * len(structure)
    ours = np.sort(edge_vectors(big).norm(dim=1).numpy())
    theirs = np.sort(edge_vectors(reference).norm(dim=1).numpy())
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
