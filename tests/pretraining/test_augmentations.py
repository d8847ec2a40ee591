import torch

from matssl_featurizers.graphs import collate, edge_vectors, structure_to_graph
from pretraining import augmentations as aug


def _batch(structures):
    return collate([structure_to_graph(s) for s in structures[:6]])


def _snapshot(batch):
    return {k: v.clone() for k, v in batch.to_dict().items() if torch.is_tensor(v)}


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
