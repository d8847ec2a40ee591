import pytest
import torch

from matssl_featurizers.graphs import collate, edge_lengths, structure_to_graph
from pretraining import augmentations as aug
from pretraining.methods import CDSSL, METHODS, CrystalCLR, element_presence


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
    loss, _ = method.loss(batch)
    torch.manual_seed(1)
    noisy = aug.displace(batch, 0.1 * torch.randn(batch.frac_coords.shape))
    prediction = method.head(method.encoder.edge_outputs(noisy))
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(prediction, clean_target))
    noisy_target = method.encoder.distance(edge_lengths(noisy))
    assert not torch.allclose(clean_target, noisy_target, atol=1e-3), "the noise changes the edges"


def test_cdssl_training_lowers_the_denoising_loss(batch):
    torch.manual_seed(0)
    method = CDSSL(noise_std=0.1)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss, _ = method.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_every_method_exports_an_encoder_with_a_config():
    for name, cls in METHODS.items():
        method = cls()
        assert "architecture" in method.encoder.config, name
