import numpy as np
import pytest
import torch

from matssl_featurizers.graphs import collate, edge_lengths, structure_to_graph
from pretraining import augmentations as aug
from pretraining.losses import barlow_twins_loss, connectivity_loss, element_prototype_loss, node_feature_loss
from pretraining.methods import CDSSL, METHODS, CrysAtom, CrystalCLR, MaskedDenoising, element_presence, node_pairs


@pytest.fixture(scope="module")
def batch(structures):
    return collate([structure_to_graph(s) for s in structures[:32]])


def test_element_presence_lists_each_crystal_elements(structures, batch):
    presence = element_presence(batch)
    for row, structure in zip(presence, structures[:32]):
        assert set(row.nonzero().flatten().tolist()) == {el.Z for el in structure.composition.elements}


@pytest.mark.parametrize("loss", ["nt-xent", "nt-xent+cs"])
def test_crystalclr_loss_terms(batch, loss):
    torch.manual_seed(0)
    method = CrystalCLR(loss=loss)
    value, metrics = method.loss(batch)
    assert torch.isfinite(value) and value.requires_grad
    assert ("cs" in metrics) == (loss == "nt-xent+cs")
    assert metrics["loss"] == pytest.approx(metrics["nt_xent"] + metrics.get("cs", 0.0), rel=1e-5)
    with pytest.raises(ValueError, match="nt-xent"):
        CrystalCLR(loss="cs")


def test_crystalclr_views_differ_and_supercell_option_grows_them(batch):
    torch.manual_seed(0)
    method = CrystalCLR(p_augment=1.0)
    a, b = method.view(batch), method.view(batch)
    assert not torch.equal(a.frac_coords, b.frac_coords) and not torch.equal(a.lattice, b.lattice)
    assert method.supercell == 0, "off by default: the paper found it hurts"
    big = CrystalCLR(supercell=2).view(batch)
    assert big.num_nodes == 8 * batch.num_nodes


def test_cdssl_scores_the_noisy_input_against_the_clean_edges(batch):
    torch.manual_seed(0)
    method = CDSSL(noise_std=0.1).eval()
    clean_target = method.encoder.distance(edge_lengths(batch))
    torch.manual_seed(1)
    loss, metrics = method.loss(batch)
    torch.manual_seed(1)
    noisy = aug.displace(batch, 0.1 * torch.randn(batch.frac_coords.shape))
    prediction = method.head(method.encoder.edge_outputs(noisy))
    edges = torch.nn.functional.mse_loss(prediction, clean_target)
    assert metrics["edges"] == pytest.approx(float(edges.detach()), rel=1e-5)
    per_graph = torch.stack([clean_target[batch.batch[batch.edge_index[1]] == g].mean(0) for g in range(batch.num_graphs)])
    graph = torch.nn.functional.mse_loss(method.graph_head(method.encoder(noisy)), per_graph)
    assert metrics["graph"] == pytest.approx(float(graph.detach()), rel=1e-5)
    torch.testing.assert_close(loss, edges + graph)
    noisy_target = method.encoder.distance(edge_lengths(noisy))
    assert not torch.allclose(clean_target, noisy_target, atol=1e-3), "the noise changes the edges"


def _train(method, batch, steps: int, lr: float = 3e-3) -> list[dict]:
    """The metrics of ``steps`` Adam steps of ``method`` on ``batch``."""
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        loss, metrics = method.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(metrics)
    return history


def test_cdssl_training_lowers_the_denoising_loss(batch):
    torch.manual_seed(0)
    losses = [m["loss"] for m in _train(CDSSL(noise_std=0.1), batch, 15)]
    assert losses[-1] < 0.7 * losses[0]


def test_every_method_exports_an_encoder_with_a_config():
    for name, cls in METHODS.items():
        method = cls()
        assert "architecture" in method.encoder.config, name


def _nearest_counts(structure, k=12, cutoff=8.0):
    """Per centre, how many of its ``k`` nearest neighbours (any image) are each site, by pymatgen's
    get_neighbors; ``None`` when the k-th and (k+1)-th distances tie."""
    counts = {}
    for i, neighbours in enumerate(structure.get_all_neighbors(cutoff)):
        neighbours = sorted(neighbours, key=lambda n: n.nn_distance)
        if len(neighbours) > k and neighbours[k].nn_distance - neighbours[k - 1].nn_distance < 1e-4:
            return None
        for n in neighbours[:k]:
            counts[(i, n.index)] = counts.get((i, n.index), 0) + 1
    return counts


def test_node_pairs_count_the_edges_between_every_connected_pair(structures):
    chosen = [s for s in structures[:40] if _nearest_counts(s) is not None][:6]
    assert len(chosen) >= 3
    batch = collate([structure_to_graph(s) for s in chosen])
    centre, other, multiplicity = node_pairs(batch, generator=torch.Generator().manual_seed(0))
    half = centre.shape[0] // 2
    found = {(int(c), int(o)): int(m) for c, o, m in zip(centre[:half], other[:half], multiplicity[:half])}
    expected = {}
    for g, structure in enumerate(chosen):
        offset = int(batch.ptr[g])
        expected.update({(offset + i, offset + j): m for (i, j), m in _nearest_counts(structure).items()})
    assert found == expected
    assert sum(found.values()) == batch.edge_index.shape[1] and max(found.values()) > 1, "periodic images add up"
    # the random partners lie in their centre's crystal and carry their true multiplicity (mostly 0)
    node_graph = batch.batch
    assert torch.equal(node_graph[centre[half:]], node_graph[other[half:]])
    for c, o, m in zip(centre[half:].tolist(), other[half:].tolist(), multiplicity[half:].tolist()):
        assert m == found.get((c, o), 0)
    assert (multiplicity[half:] == 0).float().mean() > 0.2


def test_crysatom_loss_is_the_weighted_sum_of_its_terms_on_the_clean_targets(batch):
    torch.manual_seed(0)
    method = CrysAtom(atom_dim=32, feature_weight=0.2, connectivity_weight=0.3, barlow_weight=0.5)
    assert method.encoder.config["n_conv"] == 5 and method.encoder.out_features == 32
    torch.manual_seed(1)
    loss, metrics = method.loss(batch)
    assert loss.requires_grad and torch.isfinite(loss)
    assert metrics["loss"] == pytest.approx(0.2 * metrics["feature"] + 0.3 * metrics["connectivity"]
                                            + 0.5 * metrics["barlow_twins"], rel=1e-5)
    # the same views by hand: every site masked in view A is still scored against its true element
    torch.manual_seed(1)
    masked = aug.mask_atoms(batch, 0.1)
    assert (masked.atomic_numbers == 0).any()
    h_a = method.encoder.node_embeddings(masked)
    h_b = method.encoder.node_embeddings(aug.mask_edges(batch, 0.1))
    targets = method.feature_targets[batch.atomic_numbers]
    feature = (node_feature_loss(method.feature_decoder(h_a), targets) + node_feature_loss(method.feature_decoder(h_b), targets)) / 2
    assert metrics["feature"] == pytest.approx(feature.item(), rel=1e-5)
    pooled = [torch.zeros(batch.num_graphs, 32).index_add_(0, batch.batch, h) / torch.bincount(batch.batch).unsqueeze(1)
              for h in (h_a, h_b)]
    assert metrics["barlow_twins"] == pytest.approx(barlow_twins_loss(*pooled).item(), rel=1e-4)


def test_crysatom_training_lowers_both_reconstruction_losses(batch):
    torch.manual_seed(0)
    history = _train(CrysAtom(atom_dim=32), batch, 20)
    assert history[-1]["feature"] < 0.5 * history[0]["feature"]
    assert history[-1]["connectivity"] < 0.8 * history[0]["connectivity"]
    chance = connectivity_loss(torch.zeros(1, 13), torch.tensor([0])).item()
    assert history[-1]["connectivity"] < chance


def test_crysatom_element_term_is_off_by_default_and_adds_the_prototype_loss_of_the_masked_view(batch):
    assert "element" not in CrysAtom(atom_dim=32).weights
    assert not hasattr(CrysAtom(atom_dim=32), "element_prototypes"), "the paper's method keeps its checkpoint layout"
    torch.manual_seed(0)
    method = CrysAtom(atom_dim=32, element_weight=0.4, element_temperature=0.2)
    torch.manual_seed(1)
    loss, metrics = method.loss(batch)
    assert metrics["loss"] == pytest.approx(0.25 * metrics["feature"] + 0.25 * metrics["connectivity"]
                                            + 0.5 * metrics["barlow_twins"] + 0.4 * metrics["element"], rel=1e-5)
    torch.manual_seed(1)
    h_a = method.encoder.node_embeddings(aug.mask_atoms(batch, 0.1))
    by_hand = element_prototype_loss(h_a, method.element_prototypes, batch.atomic_numbers, 0.2)
    assert metrics["element"] == pytest.approx(by_hand.item(), rel=1e-5)
    loss.backward()
    assert method.element_prototypes.grad[batch.atomic_numbers.unique()].abs().sum(1).min() > 0


def test_crysatom_element_term_against_the_input_embeddings_of_the_elements_in_the_batch(batch):
    torch.manual_seed(0)
    method = CrysAtom(atom_dim=32, element_weight=1.0, element_prototypes="inputs")
    assert not hasattr(method, "element_prototypes"), "no free vectors: the encoder's input embeddings are the prototypes"
    torch.manual_seed(1)
    loss, metrics = method.loss(batch)
    torch.manual_seed(1)
    h_a = method.encoder.node_embeddings(aug.mask_atoms(batch, 0.1))
    present = sorted(set(batch.atomic_numbers.tolist()))
    prototypes = method.encoder.embed_atoms(torch.tensor(present))
    index = torch.tensor([present.index(z) for z in batch.atomic_numbers.tolist()])
    assert metrics["element"] == pytest.approx(element_prototype_loss(h_a, prototypes, index, 0.1).item(), rel=1e-5)
    method.encoder.zero_grad()
    method.element_loss(h_a.detach(), batch).backward()
    assert method.encoder.embedding.weight.grad.abs().sum() > 0, "the term shapes the input embedding too"
    with pytest.raises(ValueError, match="one of learned, inputs"):
        CrysAtom(atom_dim=32, element_weight=1.0, element_prototypes="table")


def test_crysatom_element_term_learns_to_name_the_elements(batch):
    torch.manual_seed(0)
    history = _train(CrysAtom(atom_dim=32, element_weight=1.0), batch, 20)
    assert history[-1]["element"] < 0.5 * history[0]["element"]


def test_masked_denoising_composition_term_is_off_by_default_and_scores_the_clean_element_statistics(structures, batch):
    from matssl_featurizers.elements import element_table

    torch.manual_seed(0)
    assert "composition" not in MaskedDenoising().loss(batch)[1]
    method = MaskedDenoising(composition_weight=0.5)
    torch.manual_seed(1)
    loss, metrics = method.loss(batch)
    assert metrics["loss"] == pytest.approx(metrics["element"] + metrics["noise"] + metrics["strain"]
                                            + 0.5 * metrics["composition"], rel=1e-5)
    # by hand: the head reads the last layer of the corrupted crystal, the target is the clean crystal's table rows
    torch.manual_seed(1)
    corrupted, hit, _, _ = method.corrupt(batch)
    assert hit.any()
    h = method.encoder.node_layers(corrupted)[0][-1]
    table = element_table("cgcnn92").numpy()
    expected = []
    for graph, structure in enumerate(structures[:32]):
        rows = table[[site.specie.Z for site in structure]]
        h_graph = h[batch.batch == graph]
        pooled = torch.cat([h_graph.mean(0), h_graph.max(0).values, h_graph.std(0, unbiased=False)])
        target = torch.tensor(np.concatenate([rows.mean(0), rows.std(0)]), dtype=torch.float32)
        expected.append(((method.composition_head(pooled) - target) ** 2).sum())
    assert metrics["composition"] == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)


def test_masked_denoising_composition_term_learns_the_element_statistics(batch):
    torch.manual_seed(0)
    method = MaskedDenoising(composition_weight=1.0, element_weight=0.0, noise_weight=0.0, strain_weight=0.0)
    history = _train(method, batch, 30)
    assert set(history[0]) == {"composition", "loss"}
    assert history[-1]["composition"] < 0.3 * history[0]["composition"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_step_trains_every_weight_that_feeds_the_exported_vector(batch, name):
    """Every parameter of the exported encoder gets a non-zero gradient from the pretext in one step."""
    torch.manual_seed(0)
    method = METHODS[name]()
    loss, _ = method.loss(batch)
    loss.backward()
    untrained = [k for k, p in method.encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert untrained == []


@pytest.mark.parametrize("readout", ["head", "layers"])
def test_every_cgcnn_method_trains_every_weight_with_either_readout(batch, readout):
    for method_class in (METHODS["crystal-twins"], METHODS["crystalclr"], METHODS["masked-denoising"]):
        torch.manual_seed(0)
        method = method_class(readout=readout)
        method.loss(batch)[0].backward()
        assert [k for k, p in method.encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_cdssl_paper_loss_alone_leaves_the_readout_untrained(batch):
    """Why CDSSL has its graph head: with ``graph_weight=0`` (the paper's loss only) the last block's node and
    state updates and both Set2Set readouts get no gradient."""
    torch.manual_seed(0)
    method = CDSSL(graph_weight=0.0)
    method.loss(batch)[0].backward()
    untrained = {".".join(k.split(".")[:2 if k.startswith("readout.") else 1])
                 for k, p in method.encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    assert untrained == {"blocks", "readout.nodes", "readout.edges"}


def test_every_method_has_its_papers_citation_for_the_card():
    from matssl_featurizers.citations import METHOD_CITATIONS
    from pretraining.methods import METHODS

    assert set(METHOD_CITATIONS) == set(METHODS)
    assert all(entry.startswith("@") for entries in METHOD_CITATIONS.values() for entry in entries)
