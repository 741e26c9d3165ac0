import math

import pytest
import torch

from course_utils import toy


def test_ring_and_grid_match_the_pacgan_protocol():
    r = toy.ring()
    assert r.means.shape == (8, 2) and r.std == 0.01
    assert torch.allclose(r.means.norm(dim=1), torch.ones(8))
    assert torch.allclose(r.means[2], torch.tensor([0.0, 1.0]), atol=1e-6)
    g = toy.grid()
    assert g.means.shape == (25, 2) and g.std == 0.05
    assert sorted(set(g.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert sorted(set(g.means[:, 1].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_samples_have_the_right_shape_and_spread():
    g = torch.Generator().manual_seed(0)
    x = toy.ring().sample(4000, generator=g)
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    assert abs(x.norm(dim=1).mean().item() - 1.0) < 0.01
    y = toy.mixture_1d().sample(4000, generator=g)
    assert y.shape == (4000, 1)
    assert abs(y.abs().mean().item() - 2.0) < 0.05


def test_log_prob_and_density_1d_agree_with_the_formula():
    m = toy.mixture_1d(means=(0.0,), std=2.0)
    x = torch.tensor([[0.0], [2.0]])
    expected = [-math.log(2 * math.sqrt(2 * math.pi)), -0.5 - math.log(2 * math.sqrt(2 * math.pi))]
    assert torch.allclose(m.log_prob(x), torch.tensor(expected), atol=1e-6)
    assert toy.density_1d(m, [0.0, 2.0]) == pytest.approx([math.exp(v) for v in expected])


def test_mode_coverage_on_hand_made_samples():
    ring = toy.ring()  # std 0.01, quality radius 0.03
    near = ring.means.repeat_interleave(20, dim=0)[: 20 * 5]  # 20 exact hits on modes 0..4
    near = near + torch.tensor([0.02, 0.0])  # 2 std away: still high quality
    far = torch.zeros(100, 2)  # the centre of the ring: 1.0 from every mode
    res = toy.mode_coverage(torch.cat([near, far]), ring.means, ring.std)
    assert res["modes"] == 5
    assert res["high_quality"] == pytest.approx(0.5)
    assert res["counts"].tolist() == [20] * 5 + [0] * 3


def test_min_count_and_radius():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.0, 0.0]] * 3 + [[10.0, 0.29]] + [[10.0, 0.31]])
    assert toy.modes_covered(x, means, std=0.1, min_count=1) == 2
    assert toy.modes_covered(x, means, std=0.1, min_count=2) == 1
    assert toy.high_quality_share(x, means, std=0.1) == pytest.approx(4 / 5)


def test_collapsed_generator_covers_one_mode():
    ring = toy.ring()
    x = ring.means[3] + 0.01 * torch.randn(2500, 2, generator=torch.Generator().manual_seed(1))
    res = toy.mode_coverage(x, ring.means, ring.std)
    assert res["modes"] == 1 and res["high_quality"] > 0.98


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown toy distribution 'spiral'"):
        toy.make_toy("spiral")
    with pytest.raises(ValueError, match=r"means must have shape \(N, 2\), got \(8, 3\)"):
        toy.mode_coverage(torch.zeros(5, 2), torch.zeros(8, 3), std=0.1)
    with pytest.raises(TypeError, match="floating-point"):
        toy.mode_coverage(torch.zeros(5, 2, dtype=torch.int64), torch.zeros(8, 2), std=0.1)
    with pytest.raises(ValueError, match="std must be a positive number"):
        toy.ring(std=0)
    with pytest.raises(ValueError, match="samples is empty"):
        toy.mode_coverage(torch.zeros(0, 2), torch.zeros(8, 2), std=0.1)
