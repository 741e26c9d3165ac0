import pytest
import torch

from course_utils.unet import MLPDenoiser, UNet, count_parameters, time_embedding

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


def tiny_unet(**kw):
    torch.manual_seed(0)
    return UNet(channels=(4, 8, 8), emb_dim=16, groups=2, **kw)


def test_lecture_unet_shapes_and_parameter_count():
    m = UNet(channels=(16, 32, 64), n_classes=10)
    assert count_parameters(m) == 276_753  # the lecture's network (printed in its section 4)
    x = torch.randn(3, 1, 28, 28)
    out = m(x, torch.rand(3), torch.tensor([0, 9, 10]))
    assert out.shape == (3, 1, 28, 28)
    assert torch.all(out == 0)  # the output convolution starts at zero


def test_shapes_other_sizes_and_unconditional():
    m = tiny_unet()
    with torch.no_grad():
        torch.nn.init.normal_(m.out.weight)
    for hw in [(8, 8), (12, 16)]:
        out = m(torch.randn(2, 1, *hw), torch.rand(2))
        assert out.shape == (2, 1, *hw) and torch.isfinite(out).all()
    rgb = UNet(channels=(4, 8, 8), in_channels=3, emb_dim=16, groups=2)
    assert rgb(torch.randn(2, 3, 8, 8), torch.rand(2)).shape == (2, 3, 8, 8)


def test_labels_change_the_output_and_none_means_no_label():
    m = tiny_unet(n_classes=3)
    with torch.no_grad():
        torch.nn.init.normal_(m.out.weight)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    a = m(x, t, torch.tensor([0, 0]))
    b = m(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(m(x, t, None), m(x, t, torch.tensor([3, 3])))  # 3 = no label


def test_time_changes_the_output():
    m = tiny_unet()
    with torch.no_grad():
        torch.nn.init.normal_(m.out.weight)
    x = torch.randn(1, 1, 8, 8)
    assert not torch.allclose(m(x, torch.tensor([0.1])), m(x, torch.tensor([0.9])))


def test_time_embedding():
    e = time_embedding(torch.tensor([0.0, 0.5]), 8)
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos 0, sin 0
    with pytest.raises(ValueError, match="even"):
        time_embedding(torch.rand(2), 7)


def test_bad_input_errors():
    m = tiny_unet(n_classes=3)
    t = torch.rand(2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, N, N\), got \(2, 8, 8\)"):
        m(torch.randn(2, 8, 8), t)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, N, N\), got \(2, 3, 8, 8\)"):
        m(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match="divisible by 4, got \\(10, 8\\)"):
        m(torch.randn(2, 1, 10, 8), t)
    with pytest.raises(ValueError, match=r"t must have shape \(2\), got \(3,\)"):
        m(torch.randn(2, 1, 8, 8), torch.rand(3))
    with pytest.raises(TypeError, match="floating-point times"):
        m(torch.randn(2, 1, 8, 8), torch.tensor([3, 4]))
    with pytest.raises(ValueError, match=r"labels must lie in 0..3 \(3 = no label\), got values in 0..4"):
        m(torch.randn(2, 1, 8, 8), t, torch.tensor([0, 4]))
    with pytest.raises(TypeError, match="int64"):
        m(torch.randn(2, 1, 8, 8), t, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_unet()(torch.randn(2, 1, 8, 8), t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="three widths"):
        UNet(channels=(4, 8))
    with pytest.raises(ValueError, match="channels\\[1\\] must be a positive int"):
        UNet(channels=(4, 0, 8))
    with pytest.raises(ValueError, match="n_classes must be an int >= 0"):
        UNet(n_classes=-1)


def test_mlp_denoiser():
    torch.manual_seed(0)
    m = MLPDenoiser(dim=5, hidden=16, depth=2, n_classes=4, emb_dim=8)
    out = m(torch.randn(3, 5), torch.rand(3), torch.tensor([0, 1, 4]))
    assert out.shape == (3, 5) and torch.all(out == 0)  # zero-initialised output layer
    with pytest.raises(ValueError, match=r"x must have shape \(N, 5\), got \(3, 6\)"):
        m(torch.randn(3, 6), torch.rand(3))
    with pytest.raises(ValueError, match="depth must be a positive int"):
        MLPDenoiser(depth=0)


def test_backward_reaches_every_parameter():
    m = tiny_unet(n_classes=2)
    with torch.no_grad():
        torch.nn.init.normal_(m.out.weight)
    m(torch.randn(4, 1, 8, 8), torch.rand(4), torch.tensor([0, 1, 2, 1])).pow(2).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing
