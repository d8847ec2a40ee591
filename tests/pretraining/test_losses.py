import torch

import math

import pytest

from pretraining.losses import (barlow_twins_loss, composition_similarity_loss, connectivity_loss, cross_correlation,
                                element_prototype_loss, node_feature_loss, nt_xent_loss)


def test_identical_views_have_unit_diagonal_and_lower_loss_than_unrelated_views():
    torch.manual_seed(0)
    z = torch.randn(256, 16)
    c = cross_correlation(z, z)
    torch.testing.assert_close(torch.diagonal(c), torch.ones(16), atol=1e-4, rtol=0)
    same = barlow_twins_loss(z, z)
    unrelated = barlow_twins_loss(z, torch.randn(256, 16))
    assert same < 0.1 * unrelated
    # on-diagonal terms vanish; what is left is lambda times the views' own redundancy
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    torch.testing.assert_close(same, 0.0051 * off, atol=1e-4, rtol=1e-3)


def test_decorrelated_identical_views_reach_zero():
    z = torch.linalg.qr(torch.randn(64, 8))[0]  # orthogonal columns
    z = z - z.mean(0)
    assert barlow_twins_loss(z, z) < 0.05


def test_loss_is_symmetric_and_gives_gradients():
    torch.manual_seed(1)
    a, b = torch.randn(32, 8, requires_grad=True), torch.randn(32, 8)
    loss = barlow_twins_loss(a, b)
    torch.testing.assert_close(loss, barlow_twins_loss(b, a))
    loss.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def _orthogonal_views(n, dim=16):
    """``n`` crystals whose two views coincide and point in mutually orthogonal directions."""
    z = torch.eye(dim)[:n]
    return z, z.clone()


def test_nt_xent_by_hand_for_coinciding_views_orthogonal_to_the_others():
    t = 0.5
    z_a, z_b = _orthogonal_views(4)
    # every view: partner at cosine 1, the other 2N - 2 views at cosine 0
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 6))
    torch.testing.assert_close(nt_xent_loss(z_a, z_b, t), torch.tensor(expected), atol=1e-5, rtol=0)


def test_nt_xent_is_minimal_when_views_coincide_and_others_differ():
    torch.manual_seed(0)
    z_a, z_b = _orthogonal_views(8)
    best = nt_xent_loss(z_a, z_b, 0.1)
    assert best < nt_xent_loss(z_a, z_b + 0.3 * torch.randn_like(z_b), 0.1)  # views disagree
    assert best < nt_xent_loss(z_a, z_b.roll(1, dims=0), 0.1)  # each view paired with another crystal
    collapsed = torch.ones(8, 16)
    assert best < nt_xent_loss(collapsed, collapsed, 0.1)  # everything alike
    torch.testing.assert_close(nt_xent_loss(collapsed, collapsed, 0.1), torch.tensor(math.log(15.0)), atol=1e-5, rtol=0)


def test_composition_similarity_positives_by_hand():
    """Crystals 0 (Fe, O) and 1 (O) share O; crystal 2 (Na, Cl) shares nothing."""
    t = 1.0
    elements = torch.zeros(3, 119)
    elements[0, [26, 8]] = 1
    elements[1, 8] = 1
    elements[2, [11, 17]] = 1
    torch.manual_seed(1)
    z_a, z_b = torch.randn(3, 5), torch.randn(3, 5)
    z = torch.nn.functional.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = torch.exp(z @ z.T / t)
    positives = {0: [3, 1, 4], 1: [4, 0, 3], 2: [5], 3: [0, 1, 4], 4: [1, 0, 3], 5: [2]}
    expected = 0.0
    for i, pos in positives.items():
        denominator = sim[i].sum() - sim[i, i]
        expected += -torch.log(torch.stack([sim[i, p] / denominator for p in pos]).mean())
    torch.testing.assert_close(composition_similarity_loss(z_a, z_b, elements, t), expected / 6, atol=1e-5, rtol=1e-5)


def test_composition_similarity_with_disjoint_elements_is_nt_xent():
    torch.manual_seed(2)
    elements = torch.eye(119)[[3, 11, 19, 37]]  # Li, Na, K, Rb: no crystal shares an element
    z_a, z_b = torch.randn(4, 8), torch.randn(4, 8)
    torch.testing.assert_close(composition_similarity_loss(z_a, z_b, elements, 0.2), nt_xent_loss(z_a, z_b, 0.2))


@pytest.mark.parametrize("loss", [nt_xent_loss, composition_similarity_loss])
def test_contrastive_gradients_are_finite(loss):
    z_a = torch.randn(6, 8, requires_grad=True)
    args = (z_a, torch.randn(6, 8)) + ((torch.ones(6, 119),) if loss is composition_similarity_loss else ())
    loss(*args).backward()
    assert torch.isfinite(z_a.grad).all()


def test_node_feature_loss_is_binary_cross_entropy_written_out_and_skips_unknown_elements():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0], [9.0, 9.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [float("nan"), float("nan")]])
    p = torch.sigmoid(logits[:2])
    by_hand = -(target[:2] * p.log() + (1 - target[:2]) * (1 - p).log()).mean()
    torch.testing.assert_close(node_feature_loss(logits, target), by_hand)
    assert node_feature_loss(torch.tensor([[30.0, -30.0]]), torch.tensor([[1.0, 0.0]])) < 1e-6, "perfect reconstruction"


def test_connectivity_loss_is_the_log_probability_of_the_true_multiplicity():
    logits = torch.tensor([[0.0, 0.0, 0.0], [3.0, 1.0, 0.0]])
    multiplicity = torch.tensor([2, 0])
    log_p = logits.log_softmax(dim=1)
    by_hand = -(log_p[0, 2] + log_p[1, 0]) / 2
    torch.testing.assert_close(connectivity_loss(logits, multiplicity), by_hand)
    assert math.isclose(connectivity_loss(torch.zeros(1, 13), torch.tensor([5])).item(), math.log(13), rel_tol=1e-6)


def test_element_prototype_loss_by_hand_and_minimal_when_nodes_point_at_their_prototype():
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    h = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    elements = torch.tensor([0, 1])
    cos = torch.tensor([[1.0, 0.0, -1.0], [2**-0.5, 2**-0.5, -(2**-0.5)]])
    by_hand = -(cos / 0.5).log_softmax(1)[[0, 1], [0, 1]].mean()
    torch.testing.assert_close(element_prototype_loss(h, prototypes, elements, temperature=0.5), by_hand)
    aligned = element_prototype_loss(prototypes[elements] * 5, prototypes, elements, 0.1)
    assert aligned < element_prototype_loss(prototypes[[2, 0]], prototypes, elements, 0.1)
