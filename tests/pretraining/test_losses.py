import torch

from pretraining.losses import barlow_twins_loss, cross_correlation


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
